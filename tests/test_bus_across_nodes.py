"""Two API nodes on one PostgreSQL and one Redis (SPEC §1, §4.8): what one node
appends reaches the other's readers through the bus; what the bus misses, the
feeds' backstop finds; a cancel reaches a worker on another node at once; and with
Redis down, streams stay correct and the nodes say so.

Each node is a real uvicorn in a thread, with its own data dir, store and bus.
Where a test must show that the bus carried something, the backstop is set to an
hour and the lease renewals far apart, so nothing else could have."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from genwire.bus import LocalBus
from genwire.service import JobService
from genwire.storage import LocalStorage
from genwire.store import SqlStore
from tests import pipelines as test_pipelines
from tests.conftest import ThreadedServer
from tests.redis_servers import PrivateRedis, channel_url
from tests.waiting import eventually
from tests.wire import (
    TERMINAL_TYPES,
    cancel,
    client_of,
    create_job,
    hub_readers,
    idle_running_job,
    read_events,
    wait_for,
)

LiveServer = Callable[..., ThreadedServer]
HOUR_S = 3600.0


def nodes(
    live_server: LiveServer, database: str, bus: str, **first: Any
) -> tuple[ThreadedServer, ThreadedServer]:
    """Node A (with workers, unless told otherwise) and node B (API only)."""
    a = live_server(database_url=database, bus_url=bus, **{"workers": 1, **first})
    b = live_server(database_url=database, bus_url=bus, workers=0, bus_backstop_s=HOUR_S)
    return a, b


async def scraped(client: httpx.AsyncClient) -> dict[str, float]:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f"{key}={value}" for key, value in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


async def test_a_stream_on_another_node_gets_every_event_through_the_bus(
    live_server: LiveServer, postgres_url: str, redis_url: str
) -> None:
    a, b = nodes(live_server, postgres_url, redis_url, bus_backstop_s=HOUR_S)
    async with client_of(a) as on_a, client_of(b) as on_b:
        job_id = await create_job(on_a, "demo.synthetic", steps=20, step_ms=20)
        streamed = await read_events(on_b, f"/api/jobs/{job_id}/events")
        reference = (await on_a.get(f"/api/jobs/{job_id}/poll", params={"wait": "0"})).json()
        metrics = await scraped(on_b)

    assert [event.id for event in streamed] == [event["id"] for event in reference["events"]]
    assert streamed[-1].type == "job-completed"
    assert metrics["genwire_bus_up"] == 1
    assert metrics["genwire_bus_messages_total{direction=received}"] > 0
    assert metrics["genwire_bus_unannounced_events_total"] == 0


async def test_a_long_poll_on_another_node_is_answered_through_the_bus(
    live_server: LiveServer, postgres_url: str, redis_url: str
) -> None:
    a, b = nodes(live_server, postgres_url, redis_url, bus_backstop_s=HOUR_S)
    async with client_of(a) as on_a, client_of(b) as on_b:
        job_id, cursor = await idle_running_job(on_a)
        waiting = asyncio.create_task(
            on_b.get(f"/api/jobs/{job_id}/poll", params={"after": cursor, "wait": "60"})
        )
        await eventually(lambda: hub_readers(b) == 1, "the poll waits on node B")
        await cancel(on_a, job_id)
        answer = (await waiting).json()  # a 30 s client time-out: the wait is 60

    assert answer["events"][-1]["type"] == "job-cancelled"
    assert answer["done"] is True


async def test_the_backstop_finds_an_event_nobody_announced(
    live_server: LiveServer, postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    node = live_server(database_url=postgres_url, bus_url=redis_url, workers=0, bus_backstop_s=1)
    # Another process's service on the same database whose bus reaches nobody: its
    # events are committed and never announced.
    silent_store = SqlStore(postgres_url)
    silent = JobService(
        silent_store, LocalBus(), test_pipelines.test_registry(), LocalStorage(tmp_path / "s")
    )
    try:
        async with client_of(node) as client:
            job_id = await create_job(client, "test.sleeps", seconds=1)  # no worker: queued
            cursor = (await client.get(f"/api/jobs/{job_id}")).json()["last_event_id"]
            waiting = asyncio.create_task(
                client.get(f"/api/jobs/{job_id}/poll", params={"after": cursor, "wait": "60"})
            )
            await eventually(lambda: hub_readers(node) == 1, "the poll waits")
            backstop = node.app.state.hub.backstop
            await eventually(lambda: backstop.watching, "the backstop has caught up")
            await silent.request_cancel(job_id)
            answer = (await waiting).json()
            metrics = await scraped(client)
    finally:
        await silent_store.close()

    assert answer["events"][-1]["type"] == "job-cancelled"
    assert metrics["genwire_bus_unannounced_events_total"] >= 1


async def test_a_cancel_reaches_the_worker_on_another_node_at_once(
    live_server: LiveServer, postgres_url: str, redis_url: str
) -> None:
    # Lease renewals, the worker's other way to hear of a cancel, 100 s apart.
    a, b = nodes(live_server, postgres_url, redis_url, lease_ttl_s=300)
    async with client_of(a) as on_a, client_of(b) as on_b:
        job_id, _ = await idle_running_job(on_b)
        await cancel(on_b, job_id)
        # Without the bus, the job would have slept its 30 s and succeeded first.
        ended = await wait_for(on_a, job_id, lambda job: job["status"] != "running", timeout=20)

    assert ended["status"] == "cancelled"


async def test_with_redis_down_streams_stay_correct_and_the_nodes_say_so(
    live_server: LiveServer, postgres_url: str, private_redis: PrivateRedis
) -> None:
    a, b = nodes(live_server, postgres_url, channel_url(private_redis.url))
    async with client_of(a) as on_a, client_of(b) as on_b:
        assert (await on_b.get("/healthz")).json()["bus"] == "connected"
        private_redis.stop()
        health = await eventually(
            lambda: on_b.get("/healthz"),
            "node B to say the bus is down",
            until=lambda response: response.json()["bus"] == "unreachable",
        )
        job_id = await create_job(on_a, "demo.synthetic", steps=5, step_ms=20)
        streamed = await read_events(on_b, f"/api/jobs/{job_id}/events")
        reference = (await on_a.get(f"/api/jobs/{job_id}/poll", params={"wait": "0"})).json()
        down = await scraped(on_b)

        private_redis.start()
        back = await eventually(
            lambda: on_b.get("/healthz"),
            "node B back on the bus",
            until=lambda response: response.json()["status"] == "ok",
            timeout=20,
        )

    assert health.status_code == 200  # degraded, not dead: a balancer keeps the node
    assert health.json()["status"] == "degraded"
    assert [event.id for event in streamed] == [event["id"] for event in reference["events"]]
    assert streamed[-1].type in TERMINAL_TYPES
    assert down["genwire_bus_up"] == 0
    assert back.json()["bus"] == "connected"
