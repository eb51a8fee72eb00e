"""Caught-up streams hand their connection to their feed's sink (`genwire.api.direct`):
the ASGI request is over, yet the stream goes on, ends cleanly, and the connection
serves the next request."""

from __future__ import annotations

import asyncio

from tests.test_streams import (
    LiveServer,
    RawStream,
    cancel,
    client_of,
    direct_sinks,
    eventually,
    hub_readers,
    idle_running_job,
    request_bytes,
)


async def test_handed_off_streams_hold_no_asgi_task_yet_still_deliver(
    live_server: LiveServer,
) -> None:
    server = live_server()
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, _ = await idle_running_job(client)
        streams = [
            await RawStream.open(server.url, f"/api/jobs/{job_id}/events") for _ in range(20)
        ]
        try:
            await eventually(lambda: direct_sinks(server) == 20, "20 streams caught up")
            # Every stream's app has returned: uvicorn runs no request task for them.
            assert len(server.server.server_state.tasks) == 0
            assert hub_readers(server) == 20
            await cancel(client, job_id)
            endings = [(await stream.read_events())[-1].type for stream in streams]
        finally:
            for stream in streams:
                await stream.close()
    assert endings == ["job-cancelled"] * 20


async def test_a_handed_off_stream_ends_its_body_and_its_connection_serves_the_next_request(
    live_server: LiveServer,
) -> None:
    server = live_server()
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, _ = await idle_running_job(client)
        stream = await RawStream.open(server.url, f"/api/jobs/{job_id}/events")
        try:
            await eventually(lambda: direct_sinks(server) == 1, "the stream caught up")
            await cancel(client, job_id)
            events = await stream.read_events()  # to the body's last (empty) chunk
            # The same connection, kept alive by uvicorn once the sink ended the body.
            stream._writer.write(request_bytes(server.url, f"/api/jobs/{job_id}"))
            answer = await RawStream.start(stream._reader, stream._writer)
            await answer.next_chunk()
        finally:
            await stream.close()
        await eventually(lambda: hub_readers(server) == 0, "the stream released its feed")
    assert events[-1].type == "job-cancelled"
    assert answer.status == 200
    assert b'"status":"cancelled"' in answer.body


async def test_a_client_gone_from_a_handed_off_stream_releases_it(
    live_server: LiveServer,
) -> None:
    server = live_server()
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, _ = await idle_running_job(client)
        stream = await RawStream.open(server.url, f"/api/jobs/{job_id}/events")
        await eventually(lambda: direct_sinks(server) == 1, "the stream caught up")
        await stream.close()
        # Noticed when uvicorn loses the connection, without a write or a tick.
        await eventually(lambda: direct_sinks(server) == 0, "the sink detached")
        assert hub_readers(server) == 0
        await cancel(client, job_id)
