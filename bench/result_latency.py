"""Result latency: the time from a job's terminal event (its `ts`, taken at append) to
the moment the caller sees that the job has ended.

Three callers follow the same kind of jobs on a real `genwire serve`:

- `sse`: `AsyncClient.events()` with SSE working;
- `sse blocked`: the same client behind a gateway that answers 502 to every
  `…/events` request, so the client gives up SSE and falls back to long-poll;
- `poll 10 s`: what the seeds' apps did: `GET /api/jobs/{id}` every 10 s until the
  status is terminal.

Each run submits `--jobs` `demo.synthetic` jobs at once, of random lengths
(`--min-s`…`--max-s`), so the jobs end at random points of the callers' backoff and
poll cycles, as real jobs do.

    python -m bench.result_latency                  # 8 jobs of 3–12 s per caller
    python -m bench.result_latency --jobs 20 --callers sse "poll 10 s"
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Awaitable, Callable

import httpx

from bench._report import describe_machine, percentile_ms, print_table
from bench._server import running_server
from genwire.client import AsyncClient
from genwire.client._transports import TERMINAL_EVENT_TYPES
from genwire.client.types import TERMINAL_STATUSES, parse_time

STEP_MS = 100
PLAIN_POLL_INTERVAL_S = 10.0

Caller = Callable[[str, str], Awaitable[float]]


class BlockingGateway(httpx.AsyncBaseTransport):
    """A gateway that refuses event streams with 502, as some proxies in front of
    serverless functions do, and passes everything else."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return httpx.Response(502, text="Bad Gateway")
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _timestamp(stamp: str) -> float:
    moment = parse_time(stamp)
    assert moment is not None
    return moment.timestamp()


async def follow_events(url: str, job_id: str, *, blocked: bool) -> float:
    """Follows the job with `events()`; answers the receipt time minus the terminal
    event's `ts`."""
    transport = BlockingGateway() if blocked else None
    async with AsyncClient(url, transport=transport) as client:
        async for event in client.events(job_id):
            if event["type"] in TERMINAL_EVENT_TYPES:
                return time.time() - _timestamp(event["ts"])
    raise RuntimeError(f"{job_id}: events() ended without a terminal event")


async def poll_every_10_s(url: str, job_id: str) -> float:
    """Reads the snapshot every 10 s; answers when it first says terminal minus the
    terminal event's `ts` (read afterwards from the job's log)."""
    async with httpx.AsyncClient(base_url=url) as http:
        while True:
            snapshot = (await http.get(f"/api/jobs/{job_id}")).json()
            if snapshot["status"] in TERMINAL_STATUSES:
                seen = time.time()
                break
            await asyncio.sleep(PLAIN_POLL_INTERVAL_S)
        log = (await http.get(f"/api/jobs/{job_id}/poll", params={"after": "", "wait": 0})).json()
        return seen - _timestamp(log["events"][-1]["ts"])


CALLERS: dict[str, Caller] = {
    "sse": lambda url, job_id: follow_events(url, job_id, blocked=False),
    "sse blocked": lambda url, job_id: follow_events(url, job_id, blocked=True),
    "poll 10 s": poll_every_10_s,
}


async def measure(caller: str, jobs: int, min_s: float, max_s: float) -> list[object]:
    async with running_server(extra=["--workers", str(jobs)]) as (url, _):
        async with httpx.AsyncClient(base_url=url) as http:
            job_ids = []
            for _ in range(jobs):
                steps = round(random.uniform(min_s, max_s) * 1000 / STEP_MS)
                created = await http.post(
                    "/api/jobs",
                    json={
                        "pipeline": "demo.synthetic",
                        "input": {"steps": steps, "step_ms": STEP_MS},
                    },
                )
                created.raise_for_status()
                job_ids.append(created.json()["id"])
        follow = CALLERS[caller]
        latencies = await asyncio.gather(*(follow(url, job_id) for job_id in job_ids))
    return [
        caller,
        jobs,
        percentile_ms(latencies, 50),
        percentile_ms(latencies, 99),
        max(latencies) * 1000,
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=8, help="jobs per caller, run at once")
    parser.add_argument("--min-s", type=float, default=3.0, help="shortest job, seconds")
    parser.add_argument("--max-s", type=float, default=12.0, help="longest job, seconds")
    parser.add_argument("--callers", nargs="*", choices=list(CALLERS), default=list(CALLERS))
    args = parser.parse_args()
    print(f"result_latency; {describe_machine()}")
    rows = [await measure(caller, args.jobs, args.min_s, args.max_s) for caller in args.callers]
    print_table(["caller", "jobs", "p50 ms", "p99 ms", "max ms"], rows)


if __name__ == "__main__":
    asyncio.run(main())
