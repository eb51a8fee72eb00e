"""The limits of SPEC §3 on the wire: open streams and long-polls per tenant and per
client address, job creations per tenant per second, queued jobs per tenant. Past
one: 429, `Retry-After` and the problem code SPEC names; and an open stream counts
until its connection ends, however it ends, on the fast path too."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from genwire.api.limits import OpenConnections
from tests.conftest import ThreadedServer
from tests.waiting import eventually
from tests.wire import (
    LiveServer,
    RawStream,
    cancel,
    client_of,
    close_writer,
    direct_sinks,
    idle_job_on_warm_feed,
    idle_running_job,
    job_scope,
    parked_polls,
    poll_path,
    request_bytes,
    serve,
)

KEYS = {"ka": "alice", "kb": "bob"}


def connections(server: ThreadedServer) -> OpenConnections:
    registry: OpenConnections = server.app.state.connections
    return registry


def open_count(server: ThreadedServer) -> int:
    return connections(server).total


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def send_get(
    server: ThreadedServer, path: str, key: str | None = None, source: str | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A GET sent on its own connection, from the address `source` (by default
    127.0.0.1), its answer not read yet."""
    target = httpx.URL(server.url)
    local = (source, 0) if source is not None else None
    reader, writer = await asyncio.open_connection(target.host, target.port, local_addr=local)
    writer.write(request_bytes(server.url, path, bearer(key) if key else None))
    return reader, writer


async def raw_get(
    server: ThreadedServer, path: str, key: str | None = None, source: str | None = None
) -> RawStream:
    """A GET on its own connection, once its answer's head came."""
    return await RawStream.start(*await send_get(server, path, key, source))


async def assert_refused(stream: RawStream, code: str) -> None:
    """A 429 problem with `Retry-After`, with `code`."""
    try:
        assert stream.status == 429, stream.headers
        assert int(stream.headers["retry-after"]) >= 1
        assert stream.headers["content-type"].startswith("application/problem+json")
        body = await stream.next_chunk()
        assert body is not None
        problem = json.loads(body)
        assert (problem["status"], problem["code"]) == (429, code), problem
    finally:
        await stream.close()


def assert_refused_response(response: httpx.Response, code: str) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.text


async def until_open(server: ThreadedServer, count: int) -> None:
    await eventually(lambda: open_count(server), f"{count} connection(s) open", until=count.__eq__)


async def test_a_tenant_past_its_streams_gets_429_while_another_tenant_still_streams(
    live_server: LiveServer,
) -> None:
    server = live_server(api_keys=KEYS, max_streams_per_tenant=2)
    async with asyncio.timeout(60), client_of(server, "ka") as alice:
        job_id, _ = await idle_running_job(alice)
        path = f"/api/jobs/{job_id}/events"
        held = [await raw_get(server, path, "ka") for _ in range(2)]
        try:
            assert [stream.status for stream in held] == [200, 200]
            await eventually(lambda: direct_sinks(server) == 2, "both streams handed off")
            await assert_refused(await raw_get(server, path, "ka"), "too-many-streams")
            await assert_refused(await raw_get(server, "/api/events", "ka"), "too-many-streams")
            other = await raw_get(server, "/api/events", "kb")
            try:
                assert other.status == 200
                assert (await other.next_block() or "").startswith("retry:")
            finally:
                await other.close()
        finally:
            for stream in held:
                await stream.close()
            await cancel(alice, job_id)


async def test_a_stream_whose_client_went_away_frees_its_slot(live_server: LiveServer) -> None:
    server = live_server(max_streams_per_tenant=1)
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, _ = await idle_running_job(client)
        path = f"/api/jobs/{job_id}/events"
        first = await raw_get(server, path)
        await eventually(lambda: direct_sinks(server) == 1, "the stream handed off")
        await assert_refused(await raw_get(server, path), "too-many-streams")
        await first.close()
        await until_open(server, 0)
        second = await raw_get(server, path)
        try:
            assert second.status == 200
        finally:
            await second.close()
            await cancel(client, job_id)


async def test_a_stream_that_ended_with_its_job_frees_its_slot(live_server: LiveServer) -> None:
    server = live_server(max_streams_per_tenant=1)
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, _ = await idle_running_job(client)
        stream = await raw_get(server, f"/api/jobs/{job_id}/events")
        try:
            await eventually(lambda: direct_sinks(server) == 1, "the stream handed off")
            await cancel(client, job_id)
            assert (await stream.read_events())[-1].type == "job-cancelled"
        finally:
            await stream.close()
        await until_open(server, 0)
        tenant_stream = await raw_get(server, "/api/events")
        try:
            assert tenant_stream.status == 200
        finally:
            await tenant_stream.close()


async def test_one_address_past_its_streams_gets_429_while_another_address_still_streams(
    live_server: LiveServer,
) -> None:
    server = live_server(api_keys=KEYS, max_streams_per_address=1)
    async with asyncio.timeout(60):
        held = await raw_get(server, "/api/events", "ka")
        try:
            assert held.status == 200
            await until_open(server, 1)
            # Another key from the same address: the address is at its limit.
            await assert_refused(await raw_get(server, "/api/events", "kb"), "too-many-streams")
            elsewhere = await raw_get(server, "/api/events", "kb", source="127.0.0.2")
            try:
                assert elsewhere.status == 200
            finally:
                await elsewhere.close()
        finally:
            await held.close()
        await until_open(server, 0)


@pytest.mark.parametrize("way", ["parked", "in-request"])
async def test_long_polls_count_as_open_connections_until_answered(
    live_server: LiveServer, way: str
) -> None:
    server = serve(live_server, way, max_streams_per_tenant=1)
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, cursor = await idle_job_on_warm_feed(server, client)
        waiting = asyncio.create_task(client.get(poll_path(job_id, cursor, 30)))
        await until_open(server, 1)
        if way == "parked":
            await eventually(lambda: parked_polls(server, job_scope(job_id)), "the poll parked")
        assert_refused_response(await client.get(poll_path(job_id, cursor, 30)), "too-many-streams")
        await assert_refused(
            await raw_get(server, f"/api/jobs/{job_id}/events"), "too-many-streams"
        )
        await cancel(client, job_id)
        answer = await waiting
        assert answer.status_code == 200, answer.text
        assert answer.json()["done"] is True
        await until_open(server, 0)


async def test_creations_past_the_bucket_get_429_and_make_no_job(live_server: LiveServer) -> None:
    server = live_server(workers=0, api_keys=KEYS, create_rate_per_s=0.001, create_burst=2)
    body = {"pipeline": "test.sleeps", "input": {"seconds": 1}}
    async with (
        asyncio.timeout(60),
        client_of(server, "ka") as alice,
        client_of(server, "kb") as bob,
    ):
        for _ in range(2):
            assert (await alice.post("/api/jobs", json=body)).status_code == 201
        assert_refused_response(await alice.post("/api/jobs", json=body), "rate-limited")
        project = {"clips": [body]}
        assert_refused_response(await alice.post("/api/projects", json=project), "rate-limited")
        assert len((await alice.get("/api/jobs")).json()["items"]) == 2
        # Each tenant has its own bucket.
        assert (await bob.post("/api/jobs", json=body)).status_code == 201


async def test_creations_past_the_queued_jobs_cap_get_429_until_one_leaves_the_queue(
    live_server: LiveServer,
) -> None:
    server = live_server(workers=0, api_keys=KEYS, max_queued_per_tenant=2)
    body = {"pipeline": "test.sleeps", "input": {"seconds": 1}}
    async with (
        asyncio.timeout(60),
        client_of(server, "ka") as alice,
        client_of(server, "kb") as bob,
    ):
        created = [(await alice.post("/api/jobs", json=body)).json()["id"] for _ in range(2)]
        assert_refused_response(await alice.post("/api/jobs", json=body), "too-many-queued")
        assert_refused_response(
            await alice.post("/api/projects", json={"clips": [body]}), "too-many-queued"
        )
        assert len((await alice.get("/api/jobs")).json()["items"]) == 2
        assert (await bob.post("/api/jobs", json=body)).status_code == 201
        await cancel(alice, created[0])
        assert (await alice.post("/api/jobs", json=body)).status_code == 201


async def test_the_count_returns_to_zero_when_held_streams_and_polls_lose_their_clients(
    live_server: LiveServer,
) -> None:
    server = live_server()
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, cursor = await idle_job_on_warm_feed(server, client)
        streams = [await raw_get(server, f"/api/jobs/{job_id}/events") for _ in range(5)]
        polls = [await send_get(server, poll_path(job_id, cursor, 30)) for _ in range(3)]
        await eventually(lambda: direct_sinks(server) == 8, "every reader held by its feed")
        assert open_count(server) == 8
        for stream in streams:
            await stream.close()
        for _, writer in polls:
            await close_writer(writer)
        await until_open(server, 0)
        assert (connections(server).by_tenant, connections(server).by_address) == ({}, {})
        await cancel(client, job_id)


async def test_a_held_stream_whose_client_sends_bytes_is_cut_and_counted_out(
    live_server: LiveServer,
) -> None:
    server = live_server()
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, _ = await idle_running_job(client)
        reader, writer = await send_get(server, f"/api/jobs/{job_id}/events")
        stream = await RawStream.start(reader, writer)
        try:
            await eventually(lambda: direct_sinks(server) == 1, "the stream handed off")
            writer.write(b"GET / HTTP/1.1\r\n\r\n")  # nothing may be answered mid-stream
            await until_open(server, 0)
        finally:
            await stream.close()
            await cancel(client, job_id)


async def test_the_count_returns_to_zero_when_the_server_ends_its_streams_at_shutdown(
    live_server: LiveServer,
) -> None:
    server = live_server(shutdown_grace_s=0.5)
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, _ = await idle_running_job(client)
        streams = [await raw_get(server, f"/api/jobs/{job_id}/events") for _ in range(3)]
        await eventually(lambda: direct_sinks(server) == 3, "the streams handed off")
        assert open_count(server) == 3
        await asyncio.to_thread(server.__exit__)
        assert open_count(server) == 0
        for stream in streams:
            await stream.close()
