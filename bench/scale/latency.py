"""Append → receipt latency with the subscribers of one job spread over API nodes.

Node A runs the job (`--workers 1`); node B (`--workers 0`) only serves streams, so
its subscribers hear of each event through the bus, or, without one, from the
1 s re-read of the store. The job waits, queued, behind a gate job that holds A's
one slot until every subscriber is connected; cancelling the gate starts it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

import httpx

from bench._jobs import HOLD_MS, create_job, running_job
from bench._report import percentile_ms
from bench._sse import Subscriber, subscribe
from bench.scale.deployment import Node, deployment

HEADERS = ["nodes", "bus", "where", "subscribers", "received", "job ev/s", "p50 ms", "p99 ms"]
TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Group:
    """The subscribers of one node."""

    where: str
    node: Node
    subscribers: list[Subscriber]


async def measure(
    database_server: str, bus_server: str, subscribers: int, steps: int, step_ms: float
) -> list[list[object]]:
    """Two nodes with the bus, two nodes without, and one node (the reference)."""
    rows: list[list[object]] = []
    for nodes, bus in ((2, bus_server), (2, None), (1, bus_server)):
        rows += await _run(database_server, bus, nodes, subscribers, steps, step_ms)
    return rows


async def _run(
    database_server: str,
    bus_server: str | None,
    nodes: int,
    subscribers: int,
    steps: int,
    step_ms: float,
) -> list[list[object]]:
    async with deployment(database_server, bus_server) as fleet:
        runner = fleet.serve("a", workers=1)
        groups = [Group("same node" if nodes == 2 else "one node", runner, [])]
        if nodes == 2:
            groups.append(Group("other node", fleet.serve("b", workers=0), []))
        with httpx.Client(base_url=runner.url, timeout=30) as setup:
            gate = running_job(setup, steps=1, step_ms=HOLD_MS)
            job = create_job(setup, steps=steps, step_ms=step_ms)
        path = f"/api/jobs/{job['id']}/events"
        for index in range(subscribers):
            groups[index % len(groups)].subscribers.append(Subscriber())
        ready: list[asyncio.Event] = []
        tasks = []
        for group in groups:
            for subscriber in group.subscribers:
                ready.append(asyncio.Event())
                opened = subscribe(group.node.host, group.node.port, path, subscriber, ready[-1])
                tasks.append(asyncio.create_task(opened))
        async with httpx.AsyncClient(base_url=runner.url, timeout=30) as http:
            try:
                async with asyncio.timeout(120):
                    await asyncio.gather(*(flag.wait() for flag in ready))
                (await http.post(f"/api/jobs/{gate['id']}/cancel")).raise_for_status()
                async with asyncio.timeout(TIMEOUT_S):
                    await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            ran = (await http.get(f"/api/jobs/{job['id']}")).raise_for_status().json()
    ran_s = (_time(ran["finished_at"]) - _time(ran["started_at"])).total_seconds()
    bus = "redis" if bus_server else "none"
    return [_row(nodes, bus, group, ran_s) for group in groups]


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def _row(nodes: int, bus: str, group: Group, ran_s: float) -> list[object]:
    latencies = sorted(value / 1000 for one in group.subscribers for value in one.latencies_ms)
    counts = sorted({one.events for one in group.subscribers})
    return [
        nodes,
        bus,
        group.where,
        len(group.subscribers),
        "/".join(str(count) for count in counts),
        max(one.events for one in group.subscribers) / ran_s,
        percentile_ms(latencies, 50),
        percentile_ms(latencies, 99),
    ]
