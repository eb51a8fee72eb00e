"""SSE fan-out: append → receipt latency with N subscribers of one job, and idle
connections held by one server process with their memory.

Starts a real `genwire serve` (SQLite, one worker) on a free port, opens N raw
asyncio SSE connections to one `demo.synthetic` job, and measures, for every event
each subscriber receives, the time from the event's `ts` (taken when it was
appended, before commit) to its arrival. Then it opens idle streams on a job that
sleeps, and reads the server's RSS before and after.

    python -m bench.sse_fanout                       # 1, 100, 1000 subscribers; 2000 idle
    python -m bench.sse_fanout --subscribers 100 --events 200 --idle 0

The load client is Python too, on the same 2 cores: at 1000 subscribers it competes
with the server for CPU, so its figures are an upper bound on the server's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time

import httpx

from bench._report import describe_machine, percentile_ms, print_table
from bench._server import rss_kib, running_server
from bench._sse import Subscriber, subscribe


async def measure_latency(url: str, subscribers: int, events: int, step_ms: float) -> list[str]:
    host, port = url.removeprefix("http://").split(":")
    async with httpx.AsyncClient(base_url=url) as client:
        created = await client.post(
            "/api/jobs",
            json={"pipeline": "demo.synthetic", "input": {"steps": events, "step_ms": step_ms}},
        )
        job_id = created.json()["id"]
    started = time.perf_counter()
    readers = [Subscriber() for _ in range(subscribers)]
    ready = [asyncio.Event() for _ in range(subscribers)]
    tasks = [
        asyncio.create_task(subscribe(host, int(port), f"/api/jobs/{job_id}/events", reader, flag))
        for reader, flag in zip(readers, ready, strict=True)
    ]
    async with asyncio.timeout(600):
        await asyncio.gather(*tasks)
    wall = time.perf_counter() - started
    latencies = sorted(value / 1000 for reader in readers for value in reader.latencies_ms)
    counts = {reader.events for reader in readers}
    return [
        f"{subscribers}",
        f"{events}",
        f"{'/'.join(str(count) for count in sorted(counts))}",
        f"{percentile_ms(latencies, 50):.1f}",
        f"{percentile_ms(latencies, 99):.1f}",
        f"{sum(reader.events for reader in readers) / wall:,.0f}",
    ]


async def measure_idle(url: str, pid: int, connections: int, hold_s: float) -> list[str]:
    host, port = url.removeprefix("http://").split(":")
    async with httpx.AsyncClient(base_url=url) as client:
        created = await client.post(
            "/api/jobs",
            json={"pipeline": "demo.synthetic", "input": {"steps": 1, "step_ms": 600_000}},
        )
        job_id = created.json()["id"]
        before = rss_kib(pid)
        readers = [Subscriber() for _ in range(connections)]
        ready = [asyncio.Event() for _ in range(connections)]
        tasks = [
            asyncio.create_task(subscribe(host, int(port), f"/api/jobs/{job_id}/events", r, f))
            for r, f in zip(readers, ready, strict=True)
        ]
        async with asyncio.timeout(120):
            for flag in ready:
                await flag.wait()
        await asyncio.sleep(hold_s)
        after = rss_kib(pid)
        await client.post(f"/api/jobs/{job_id}/cancel")
    async with asyncio.timeout(60):
        await asyncio.gather(*tasks, return_exceptions=True)
    keepalives = sorted(reader.keepalives for reader in readers)
    return [
        f"{connections}",
        f"{before / 1024:.1f}",
        f"{after / 1024:.1f}",
        f"{(after - before) / connections:.1f}",
        f"{keepalives[0]}–{keepalives[-1]} in {hold_s:g} s",
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, nargs="*", default=[1, 100, 1000])
    parser.add_argument("--events", type=int, default=500, help="events per run (50 ev/s)")
    parser.add_argument("--step-ms", type=float, default=20.0)
    parser.add_argument("--idle", type=int, default=2000, help="idle connections (0: skip)")
    parser.add_argument("--hold", type=float, default=12.0, help="seconds to hold them")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"sse_fanout; {describe_machine()}")
    rows = []
    for count in args.subscribers:
        async with running_server(keepalive=5.0, extra=["--workers", "1"]) as (url, _):
            rows.append(await measure_latency(url, count, args.events, args.step_ms))
    print_table(["subscribers", "events", "received", "p50 ms", "p99 ms", "deliveries/s"], rows)
    if args.idle:
        print()
        async with running_server(keepalive=5.0, extra=["--workers", "1"]) as (url, pid):
            idle = await measure_idle(url, pid, args.idle, args.hold)
        print_table(
            ["idle streams", "RSS before MiB", "RSS after MiB", "KiB/stream", "keepalives"], [idle]
        )


if __name__ == "__main__":
    asyncio.run(main())
