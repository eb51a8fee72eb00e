"""Jobs per second through `demo.synthetic` with zero-time steps, end to end in process.

Each run gets a fresh database, a `JobService` and a `WorkerPool`; one task creates
the jobs one after another through `service.create_job` while the pool works them
off, and the clock stops when every job is terminal. Latency is a job's own
`finished_at - created_at`, queueing behind the other jobs included.

    python -m bench.jobs_throughput --jobs 500 --steps 0 5 --concurrency 2 8
    python -m bench.jobs_throughput --database postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench._jobs import CHECK_EVERY_S, ended_count
from bench._report import describe_machine, percentile_ms, print_table, scratch_database
from genwire.bus import LocalBus, topics
from genwire.models import Job, JobStatus
from genwire.pipelines import default_registry
from genwire.service import CreateJob, JobService
from genwire.storage import LocalStorage
from genwire.store import SqlStore
from genwire.worker import WorkerPool, WorkerSettings

TENANT = "bench"


@dataclass(frozen=True)
class RunResult:
    steps: int
    concurrency: int
    jobs: int
    events: int
    submit_s: float
    wall_s: float
    latencies_s: list[float]

    def row(self) -> list[object]:
        return [
            self.steps,
            self.concurrency,
            self.jobs,
            self.events,
            self.submit_s,
            self.wall_s,
            self.jobs / self.wall_s,
            self.events / self.wall_s,
            percentile_ms(self.latencies_s, 50),
            percentile_ms(self.latencies_s, 99),
        ]


HEADERS = [
    "steps",
    "workers",
    "jobs",
    "events",
    "submit s",
    "wall s",
    "jobs/s",
    "events/s",
    "p50 ms",
    "p99 ms",
]


async def run_once(
    server_url: str | None, jobs: int, steps: int, concurrency: int, timeout: float
) -> RunResult:
    async with scratch_database(server_url) as database:
        store = SqlStore(database.url)
        await store.migrate()
        service = JobService(
            store, LocalBus(), default_registry(), LocalStorage(database.folder / "files")
        )
        pool = WorkerPool(service, WorkerSettings(concurrency=concurrency))
        await pool.start()
        request = CreateJob("demo.synthetic", {"steps": steps, "step_ms": 0})
        try:
            with service.bus.subscribe(topics.tenant(TENANT)) as activity:
                started = time.perf_counter()
                for _ in range(jobs):
                    await service.create_job(TENANT, request)
                submitted = time.perf_counter()
                async with asyncio.timeout(timeout):
                    while await ended_count(store) < jobs:
                        await activity.wait(None)
                        await asyncio.sleep(CHECK_EVERY_S)
                ended = time.perf_counter()
            finished = await _all_jobs(service)
        finally:
            await pool.stop()
            await store.close()
    failed = [job for job in finished if job.status is not JobStatus.SUCCEEDED]
    if failed:
        raise SystemExit(f"{len(failed)} job(s) did not succeed, e.g. {failed[0].to_json()}")
    return RunResult(
        steps=steps,
        concurrency=concurrency,
        jobs=jobs,
        # Event ids are global and the database is fresh, so the highest is the count.
        events=max(job.last_event_seq for job in finished),
        submit_s=submitted - started,
        wall_s=ended - started,
        latencies_s=[
            (job.finished_at - job.created_at).total_seconds()
            for job in finished
            if job.finished_at is not None
        ],
    )


async def _all_jobs(service: JobService) -> list[Job]:
    jobs: list[Job] = []
    cursor: str | None = None
    while True:
        page = await service.list_jobs(TENANT, limit=200, cursor=cursor)
        jobs.extend(page.items)
        if page.next_cursor is None:
            return jobs
        cursor = page.next_cursor


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=500, help="jobs per run (default 500)")
    parser.add_argument(
        "--steps", type=int, nargs="+", default=[0, 5], help="steps per job (default 0 5)"
    )
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[2, 8], help="worker slots (default 2 8)"
    )
    parser.add_argument(
        "--database",
        metavar="URL",
        help="a PostgreSQL server (postgresql://user@host:port/db) to create a scratch "
        "database on; default: SQLite in a temp folder",
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run")
    args = parser.parse_args(argv)
    if args.database is not None and not args.database.startswith(("postgresql://", "postgres://")):
        parser.error("--database takes a postgresql:// URL")

    backend = "PostgreSQL" if args.database else "SQLite"
    print(f"jobs_throughput on {backend}; {describe_machine()}")
    results = [
        await run_once(args.database, args.jobs, steps, concurrency, args.timeout)
        for steps in args.steps
        for concurrency in args.concurrency
    ]
    print_table(HEADERS, [result.row() for result in results])


if __name__ == "__main__":
    asyncio.run(main())
