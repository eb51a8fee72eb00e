"""What idle streams cost the database: PostgreSQL transactions per second on the
bench's database, with no stream open and with N idle ones, with and without a bus.

One API node (`--workers 0`) and N jobs that stay queued (no worker runs anywhere),
one stream per job: each job's stream has a feed of its own, so without a bus the
node re-reads the store N times a second (streams of one job would share one feed
and cost one read a second). The count is the change of `xact_commit +
xact_rollback` in `pg_stat_database` over the window, read from another database.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg  # type: ignore[import-untyped]
import httpx

from bench._jobs import HOLD_MS
from bench._server import cpu_seconds
from bench._sse import Subscriber, subscribe
from bench.scale.deployment import Node, deployment

HEADERS = ["bus", "streams", "window s", "transactions", "tx/s", "server CPU %"]
#: before each window: a backend that goes idle within 1 s of its last report holds
#: its counters up to 10 s (PostgreSQL's PGSTAT_IDLE_INTERVAL), so the jobs' creation
#: and the streams' first reads would land in the window
SETTLE_S = 11.0
CREATING_AT_ONCE = 8


async def measure(
    database_server: str, bus_server: str, streams: int, window_s: float
) -> list[list[object]]:
    rows: list[list[object]] = []
    for bus in (None, bus_server):
        rows += await _run(database_server, bus, streams, window_s)
    return rows


async def _run(
    database_server: str, bus_server: str | None, streams: int, window_s: float
) -> list[list[object]]:
    bus = "redis" if bus_server else "none"
    async with deployment(database_server, bus_server) as fleet:
        node = fleet.serve("a", workers=0)
        job_ids = await _queued_jobs(node, streams)
        stats = await asyncpg.connect(database_server)
        try:
            name = fleet.database.url.rsplit("/", 1)[1]

            async def window() -> list[object]:
                await asyncio.sleep(SETTLE_S)
                cpu, count = cpu_seconds(node.pid), await _transactions(stats, name)
                started = time.perf_counter()
                await asyncio.sleep(window_s)
                count = await _transactions(stats, name) - count
                cpu, wall = cpu_seconds(node.pid) - cpu, time.perf_counter() - started
                return [count, count / wall, 100.0 * cpu / wall]

            quiet = [bus, 0, window_s, *await window()]
            tasks, ready = _open_streams(node, job_ids)
            try:
                async with asyncio.timeout(120):
                    await asyncio.gather(*(flag.wait() for flag in ready))
                busy = [bus, streams, window_s, *await window()]
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await stats.close()
    return [quiet, busy]


async def _queued_jobs(node: Node, count: int) -> list[str]:
    """`count` jobs that stay queued: no process here runs workers."""
    body = {"pipeline": "demo.synthetic", "input": {"steps": 1, "step_ms": HOLD_MS}}
    slots = asyncio.Semaphore(CREATING_AT_ONCE)
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as http:

        async def create() -> str:
            async with slots:
                response = await http.post("/api/jobs", json=body)
            response.raise_for_status()
            job_id: str = response.json()["id"]
            return job_id

        return list(await asyncio.gather(*(create() for _ in range(count))))


def _open_streams(
    node: Node, job_ids: list[str]
) -> tuple[list[asyncio.Task[None]], list[asyncio.Event]]:
    ready = [asyncio.Event() for _ in job_ids]
    tasks = [
        asyncio.create_task(
            subscribe(node.host, node.port, f"/api/jobs/{job_id}/events", Subscriber(), flag)
        )
        for job_id, flag in zip(job_ids, ready, strict=True)
    ]
    return tasks, ready


async def _transactions(stats: asyncpg.Connection, database: str) -> int:
    """Committed and rolled-back transactions of `database` so far."""
    count = await stats.fetchval(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", database
    )
    return int(count)
