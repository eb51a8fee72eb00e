"""Jobs per second, end to end, with 1, 2, 4… `genwire worker` processes on one
PostgreSQL database and the Redis bus.

One API node (`--workers 0`) takes every request. So that the clock times the
workers and not their start or the submissions, every worker slot is first held by a
gate job (a step of 10 min); then the measured jobs are created, queued behind the
gates. The clock starts when the gates are cancelled, all at once, and stops when
every job is terminal (the store counted every 20 ms, as `jobs_throughput` does).
"""

from __future__ import annotations

import asyncio
import time

import httpx

from bench._jobs import CHECK_EVERY_S, HOLD_MS, create_job, ended_count, running_job
from bench.scale.deployment import deployment
from genwire.bus import bus_for, topics
from genwire.models import JobStatus
from genwire.store import SqlStore

TENANT = "default"  #: every request's tenant on a server without API keys
HEADERS = ["workers", "slots", "jobs", "events", "wall s", "jobs/s", "events/s"]


async def measure(
    database_server: str,
    bus_server: str,
    workers: list[int],
    concurrency: int,
    jobs: int,
    steps: int,
    timeout_s: float,
) -> list[list[object]]:
    return [
        await _run(database_server, bus_server, count, concurrency, jobs, steps, timeout_s)
        for count in workers
    ]


async def _run(
    database_server: str,
    bus_server: str,
    workers: int,
    concurrency: int,
    jobs: int,
    steps: int,
    timeout_s: float,
) -> list[object]:
    slots = workers * concurrency
    async with deployment(database_server, bus_server) as fleet:
        api = fleet.serve("api", workers=0)
        fleet.workers(workers, concurrency)
        with httpx.Client(base_url=api.url, timeout=30) as http:
            gates = [running_job(http, steps=1, step_ms=HOLD_MS)["id"] for _ in range(slots)]
            for _ in range(jobs):
                create_job(http, steps=steps, step_ms=0)
        store = SqlStore(fleet.database.url)
        assert fleet.bus is not None
        bus = bus_for(fleet.bus)
        await bus.start()
        try:
            first_event = await store.last_seq()
            with bus.subscribe(topics.tenant(TENANT)) as activity:
                async with httpx.AsyncClient(base_url=api.url, timeout=30) as http_async:
                    started = time.perf_counter()
                    cancels = [http_async.post(f"/api/jobs/{gate}/cancel") for gate in gates]
                    for answer in await asyncio.gather(*cancels):
                        answer.raise_for_status()
                async with asyncio.timeout(timeout_s):
                    while await ended_count(store) < jobs + slots:
                        # A wake-up lost on the bus costs a second, not the run.
                        await activity.wait(1.0)
                        await asyncio.sleep(CHECK_EVERY_S)
                wall = time.perf_counter() - started
            events = await store.last_seq() - first_event
            succeeded = (await store.count_by_status()).get(JobStatus.SUCCEEDED.value, 0)
        finally:
            await bus.close()
            await store.close()
    if succeeded != jobs:
        raise SystemExit(f"{jobs - succeeded} of {jobs} job(s) did not succeed")
    return [workers, slots, jobs, events, wall, jobs / wall, events / wall]
