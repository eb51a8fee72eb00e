"""Row 8: one `AsyncClient` following many jobs at once: does every stream get its
first event, or do some wait for a pooled connection?"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import httpx

from bench.hostile.report import Row, progress
from bench.hostile.server import serving
from genwire.client import AsyncClient

NAME = "client-pool"
FIRST_WITHIN_S = 5.0
#: Jobs that outlast the measurement: 2 run, the others stay queued; each stream's
#: first event (`job-status` queued) is already in the log when it connects.
LONG_JOB: dict[str, Any] = {"pipeline": "demo.synthetic", "input": {"steps": 1, "step_ms": 120_000}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(NAME)
    group.add_argument("--pool-streams", type=int, default=150, help="events() at once")
    group.add_argument(
        "--pool-window", type=float, default=20.0, help="seconds to wait for first events"
    )


async def run(options: argparse.Namespace) -> list[Row]:
    count: int = options.pool_streams
    async with serving() as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as http:
            ids = [
                (await http.post("/api/jobs", json=LONG_JOB)).raise_for_status().json()["id"]
                for _ in range(count)
            ]
        async with AsyncClient(server.url) as client:
            started = time.monotonic()
            firsts: list[float] = []
            every_first = asyncio.Event()

            async def follow(job_id: str) -> None:
                async for _event in client.events(job_id):
                    firsts.append(time.monotonic() - started)
                    if len(firsts) == count:
                        every_first.set()
                    # Held open, as a follower of a running job is.
                    await asyncio.Event().wait()

            followers = [asyncio.create_task(follow(job_id)) for job_id in ids]
            try:
                await asyncio.wait_for(every_first.wait(), options.pool_window)
            except TimeoutError:
                pass
            finally:
                for follower in followers:
                    follower.cancel()
                await asyncio.gather(*followers, return_exceptions=True)
    within = sum(1 for took in firsts if took <= FIRST_WITHIN_S)
    slowest = f"slowest first event {max(firsts):.2f} s" if firsts else "no first event at all"
    missing = count - len(firsts)
    happened = (
        f"{within} of {count} got their first event within {FIRST_WITHIN_S:g} s; {slowest}"
        + (f"; {missing} got nothing in {options.pool_window:g} s" if missing else "")
    )
    progress(NAME, happened)
    return [
        Row(NAME, f"{count} `events()` at once on one `AsyncClient`, each on its own job", happened)
    ]
