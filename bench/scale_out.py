"""Scale-out on PostgreSQL and Redis: API nodes, worker processes and writers as
separate OS processes on one database (issue 16).

    python -m bench.scale_out                                   # every scenario, ~3 min
    python -m bench.scale_out --scenarios latency --subscribers 100
    python -m bench.scale_out --scenarios idle,appends --streams 200

- latency: append → receipt with the subscribers of one job spread over two API
  nodes (the job runs on node A), with the bus and without; one node as reference.
- idle: PostgreSQL transactions per second caused by idle streams, with and without
  the bus, and the API node's CPU.
- appends: events appended per second by 1, 2, 4 writer processes at once.
- jobs: jobs per second with 1, 2, 4 `genwire worker` processes on the bus.

Every process here (servers, workers, writers, the Python load client) shares the
machine's cores: the figures are the deployment's on this machine, not one node's.
Each run gets a fresh database on the server `--database` names and a fresh Redis
channel, and stops its processes and drops its database on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import sys
from collections.abc import Sequence

from bench._report import describe_machine, print_table
from bench.scale import appends, idle, jobs, latency
from bench.scale.deployment import BUS_SERVER, DATABASE_SERVER

SCENARIOS = ("latency", "idle", "appends", "jobs")


def _counts(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def _scenarios(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown scenario(s) {unknown}; choose from {SCENARIOS}")
    return chosen


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--scenarios", type=_scenarios, default=list(SCENARIOS), help="comma-separated"
    )
    parser.add_argument("--database", default=DATABASE_SERVER, help="a PostgreSQL server URL")
    parser.add_argument("--bus", default=BUS_SERVER, help="a Redis server URL")
    latency_options = parser.add_argument_group("latency")
    latency_options.add_argument("--subscribers", type=int, default=1000)
    latency_options.add_argument("--steps", type=int, default=200, help="events of the job")
    latency_options.add_argument("--step-ms", type=float, default=20.0)
    idle_options = parser.add_argument_group("idle")
    idle_options.add_argument("--streams", type=int, default=1000, help="one per queued job")
    idle_options.add_argument("--window", type=float, default=10.0, help="seconds counted")
    append_options = parser.add_argument_group("appends")
    append_options.add_argument("--writers", type=_counts, default=[1, 2, 4], help="e.g. 1,2,4")
    append_options.add_argument("--append-window", type=float, default=5.0, help="seconds")
    job_options = parser.add_argument_group("jobs")
    job_options.add_argument("--workers", type=_counts, default=[1, 2, 4], help="e.g. 1,2,4")
    job_options.add_argument("--concurrency", type=int, default=4, help="slots per worker")
    job_options.add_argument("--jobs", type=int, default=300)
    job_options.add_argument("--job-steps", type=int, default=0)
    job_options.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    args = parser.parse_args(argv)
    if not args.database.startswith(("postgresql://", "postgres://")):
        parser.error("--database takes a postgresql:// URL")
    return args


def _raise_file_limit(needed: int) -> None:
    """Each stream is a descriptor in the client (and one in a server)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if needed > hard:
        sys.exit(f"{needed} connections need more descriptors than the hard limit ({hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _title(text: str) -> None:
    print(f"\n{text}", flush=True)


async def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every process started here is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    _raise_file_limit(max(args.subscribers, args.streams) + 1024)
    print(f"scale_out on PostgreSQL + Redis; {describe_machine()}", flush=True)
    cores = os.cpu_count()
    if "latency" in args.scenarios:
        _title(
            f"latency: {args.subscribers} SSE subscribers of one job ({args.steps} steps of "
            f"{args.step_ms:g} ms), split evenly over the nodes; the job runs on node A. "
            f"The load client is Python and shares the {cores} cores with the servers."
        )
        rows = await latency.measure(
            args.database, args.bus, args.subscribers, args.steps, args.step_ms
        )
        print_table(latency.HEADERS, rows)
    if "idle" in args.scenarios:
        _title(
            f"idle: transactions on the bench's database with {args.streams} idle streams "
            f"(one per queued job) on one API node, over {args.window:g} s"
        )
        print_table(
            idle.HEADERS, await idle.measure(args.database, args.bus, args.streams, args.window)
        )
    if "appends" in args.scenarios:
        _title("appends: writer processes appending through the fenced path at once, one job each")
        print_table(
            appends.HEADERS,
            await appends.measure(args.database, args.writers, args.append_window),
        )
    if "jobs" in args.scenarios:
        _title(
            f"jobs: {args.jobs} jobs of {args.job_steps} step(s) created up front through one "
            f"API node; `genwire worker` processes of {args.concurrency} slots on the bus"
        )
        rows = await jobs.measure(
            args.database,
            args.bus,
            args.workers,
            args.concurrency,
            args.jobs,
            args.job_steps,
            args.timeout,
        )
        print_table(jobs.HEADERS, rows)


if __name__ == "__main__":
    asyncio.run(main())
