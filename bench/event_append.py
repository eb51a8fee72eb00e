"""Events appended per second on SQLite through the real fenced path.

Jobs are created and claimed by fake worker ids; then each appends step-progress
events through `service.reporter(job_id, worker_id).step_progress(...)` as fast as it
can (each append: lock the job, check the lease, insert the event, update the
snapshot, commit, publish). Once with one job appending alone, once with K jobs
appending at once, each under `synchronous=NORMAL` (the default) and `FULL`.

    python -m bench.event_append --events 5000 --jobs 8
    python -m bench.event_append --events 2000 --profile
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

from bench._appends import append_steps, claimed_reporter
from bench._report import describe_machine, percentile_ms, print_table, scratch_database
from genwire.bus import LocalBus
from genwire.pipelines import default_registry
from genwire.service import JobService
from genwire.storage import LocalStorage
from genwire.store import SqlStore


@dataclass(frozen=True)
class RunResult:
    synchronous: str
    jobs: int
    latencies_s: list[float]
    wall_s: float

    def row(self) -> list[object]:
        return [
            self.synchronous,
            self.jobs,
            len(self.latencies_s),
            self.wall_s,
            len(self.latencies_s) / self.wall_s,
            percentile_ms(self.latencies_s, 50),
            percentile_ms(self.latencies_s, 99),
        ]


HEADERS = ["synchronous", "jobs", "events", "wall s", "events/s", "p50 ms", "p99 ms"]


async def run_once(synchronous: str, jobs: int, events: int) -> RunResult:
    """`events` appends in all, split evenly over `jobs` jobs appending at once."""
    async with scratch_database(None) as database:
        store = SqlStore(database.url, sqlite_synchronous=synchronous)
        await store.migrate()
        service = JobService(
            store, LocalBus(), default_registry(), LocalStorage(database.folder / "files")
        )
        try:
            reporters = [await claimed_reporter(service, index) for index in range(jobs)]
            latencies: list[float] = []
            started = time.perf_counter()
            await asyncio.gather(
                *(
                    append_steps(reporter, len(range(index, events, jobs)), latencies)
                    for index, reporter in enumerate(reporters)
                )
            )
            wall = time.perf_counter() - started
        finally:
            await store.close()
    return RunResult(synchronous, jobs, latencies, wall)


@contextmanager
def profiling_all_threads() -> Iterator[list[cProfile.Profile]]:
    """cProfile the calling thread and every thread started inside the block (the
    SQLite driver runs each connection in a thread of its own)."""
    profiles = [cProfile.Profile()]

    def start_in_new_thread(frame: FrameType, event: str, arg: Any) -> None:
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.enable()  # replaces this hook for the rest of the thread

    threading.setprofile(start_in_new_thread)
    profiles[0].enable()
    try:
        yield profiles
    finally:
        profiles[0].disable()
        threading.setprofile(None)


def print_profile(profiles: list[cProfile.Profile], top: int) -> None:
    stats = pstats.Stats(profiles[0])
    for profile in profiles[1:]:
        stats.add(profile)
    print(f"\nTop {top} by own time, {len(profiles)} thread(s) merged:")
    stats.sort_stats(pstats.SortKey.TIME).print_stats(top)
    print(f"Top {top} by cumulative time:")
    stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(top)


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=5000, help="appends per run (default 5000)")
    parser.add_argument("--jobs", type=int, default=8, help="jobs appending at once (default 8)")
    parser.add_argument(
        "--synchronous",
        nargs="+",
        default=["NORMAL", "FULL"],
        choices=["OFF", "NORMAL", "FULL", "EXTRA"],
        help="SQLite synchronous modes to compare (default NORMAL FULL)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead, cProfile one sequential run (the first mode) and print the top costs",
    )
    args = parser.parse_args(argv)

    print(f"event_append on SQLite; {describe_machine()}")
    if args.profile:
        with profiling_all_threads() as profiles:
            result = await run_once(args.synchronous[0], 1, args.events)
        print_table(HEADERS, [result.row()])
        print_profile(profiles, top=15)
        return
    results = [
        await run_once(synchronous, jobs, args.events)
        for synchronous in args.synchronous
        for jobs in dict.fromkeys([1, args.jobs])
    ]
    print_table(HEADERS, [result.row() for result in results])


if __name__ == "__main__":
    asyncio.run(main())
