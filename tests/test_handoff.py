"""Caught-up streams hand their connection to their feed's sink (`genwire.api.fastpath`):
the ASGI request is over, yet the stream goes on, ends cleanly, and the connection
serves the next request."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from genwire.config import Settings
from tests.conftest import ThreadedServer
from tests.waiting import eventually
from tests.wire import (
    LiveServer,
    RawStream,
    cancel,
    caught_up_streams,
    client_of,
    create_job,
    direct_sinks,
    hub_readers,
    idle_running_job,
    request_bytes,
    server_end_established,
    serving_with_small_buffers,
    stalled_subscriber,
    wait_for,
)


async def test_handed_off_streams_hold_no_asgi_task_yet_still_deliver(
    live_server: LiveServer,
) -> None:
    server = live_server()
    async with (
        asyncio.timeout(60),
        client_of(server) as client,
        caught_up_streams(server, client, 20) as (job_id, streams),
    ):
        # Every stream's app returns once it has handed off: no request task is left.
        await eventually(lambda: not server.server.server_state.tasks, "the apps returned")
        assert hub_readers(server) == 20
        await cancel(client, job_id)
        endings = [(await stream.read_events())[-1].type for stream in streams]
    assert endings == ["job-cancelled"] * 20


async def test_a_handed_off_stream_ends_its_body_and_its_connection_serves_the_next_request(
    live_server: LiveServer,
) -> None:
    server = live_server()
    async with asyncio.timeout(60), client_of(server) as client:
        async with caught_up_streams(server, client, 1) as (job_id, [stream]):
            await cancel(client, job_id)
            events = await stream.read_events()  # to the body's last (empty) chunk
            # The same connection, kept alive by uvicorn once the sink ended the body.
            stream._writer.write(request_bytes(server.url, f"/api/jobs/{job_id}"))
            answer = await RawStream.start(stream._reader, stream._writer)
            await answer.next_chunk()
        await eventually(lambda: hub_readers(server) == 0, "the stream released its feed")
    assert events[-1].type == "job-cancelled"
    assert answer.status == 200
    assert b'"status":"cancelled"' in answer.body


async def test_a_client_gone_from_a_handed_off_stream_releases_it(
    live_server: LiveServer,
) -> None:
    server = live_server()
    async with asyncio.timeout(60), client_of(server) as client:
        async with caught_up_streams(server, client, 1) as (job_id, [stream]):
            await stream.close()
            # Noticed when uvicorn loses the connection, without a write or a tick.
            await eventually(lambda: direct_sinks(server) == 0, "the sink detached")
            assert hub_readers(server) == 0
        await cancel(client, job_id)


async def test_a_request_sent_on_a_held_stream_cuts_it_instead_of_being_answered_inside_it(
    live_server: LiveServer,
) -> None:
    server = live_server()
    async with asyncio.timeout(60), client_of(server) as client:
        async with caught_up_streams(server, client, 1) as (job_id, [stream]):
            stream._writer.write(request_bytes(server.url, f"/api/jobs/{job_id}"))
            await eventually(lambda: direct_sinks(server) == 0, "the held stream was cut")
            rest = b""
            with contextlib.suppress(ConnectionError):
                rest = await stream._reader.read()  # to the end of the connection
        await cancel(client, job_id)
    assert b"HTTP/1.1" not in rest, "a response was written inside the stream"


@pytest.fixture
def patient_small_buffer_server(tmp_path: Path) -> Iterator[ThreadedServer]:
    """One worker slot, small socket buffers, and send and peer time-outs longer than
    any test: only the end of a stream can let go of a client that stopped reading."""
    settings = Settings(
        data_dir=tmp_path / "patient",
        workers=1,
        stream_send_timeout_s=300.0,
        peer_timeout_s=300.0,
    )
    with serving_with_small_buffers(settings) as server:
        yield server


@pytest.mark.skipif(sys.platform != "linux", reason="reads the kernel's table of TCP sockets")
async def test_a_held_stream_whose_client_stopped_reading_is_cut_when_it_ends(
    patient_small_buffer_server: ThreadedServer,
) -> None:
    server = patient_small_buffer_server
    async with asyncio.timeout(90), client_of(server) as client:
        gate, _ = await idle_running_job(client)  # holds the one worker slot
        # ~1 000 events: far past the 64 KiB mark queued for the client, under 1 MiB.
        job_id = await create_job(client, "demo.synthetic", steps=1000, step_ms=0)
        stalled = stalled_subscriber(server, f"/api/jobs/{job_id}/events")
        try:
            await eventually(lambda: direct_sinks(server) == 1, "the stream caught up")
            await cancel(client, gate)
            await wait_for(client, job_id, lambda job: job["status"] == "succeeded")
            await eventually(lambda: hub_readers(server) == 0, "the stream ended")
            # Closing would wait forever on bytes the client never takes.
            await eventually(
                lambda: not server_end_established(server, stalled),
                "the server lets go of the connection",
            )
        finally:
            stalled.close()
