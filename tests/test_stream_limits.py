"""`--max-streams` (SPEC §3: too many streams, 429 with Retry-After): once a process
holds that many streams and long-polls, new ones are refused with a problem that says
when to come back; one that ends makes room again."""

from __future__ import annotations

import asyncio

import httpx

from genwire.config import STREAMS_RETRY_AFTER_S
from tests.test_streams import (
    LiveServer,
    RawStream,
    cancel,
    client_of,
    direct_sinks,
    eventually,
    hub_readers,
    idle_running_job,
)


def assert_too_busy(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"] == str(STREAMS_RETRY_AFTER_S)
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "too-many-streams"


async def head_of(client: httpx.AsyncClient, path: str) -> httpx.Response:
    """The answer to a GET, read whole only when it is not an open stream."""
    async with client.stream("GET", path) as response:
        if response.status_code != 200:
            await response.aread()
        return response


async def test_past_the_limit_streams_and_long_polls_get_429_until_one_ends(
    live_server: LiveServer,
) -> None:
    server = live_server(max_streams=2)
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, cursor = await idle_running_job(client)
        path = f"/api/jobs/{job_id}/events"
        first = await RawStream.open(server.url, path)
        second = await RawStream.open(server.url, path)
        try:
            await eventually(lambda: direct_sinks(server) == 2, "two streams held")
            refused = [
                await head_of(client, path),
                await head_of(client, "/api/events"),
                await client.get(f"/api/jobs/{job_id}/poll", params={"after": cursor, "wait": 1}),
                await client.get("/api/poll", params={"after": cursor, "wait": 1}),
            ]
            await first.close()
            await eventually(lambda: hub_readers(server) == 1, "the closed stream let go")
            third = await RawStream.open(server.url, path)
            try:
                admitted = third.status
            finally:
                await third.close()
        finally:
            await first.close()
            await second.close()
            await cancel(client, job_id)

    for response in refused:
        assert_too_busy(response)
    assert admitted == 200


async def test_without_a_limit_nothing_is_refused(live_server: LiveServer) -> None:
    server = live_server()
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, _ = await idle_running_job(client)
        path = f"/api/jobs/{job_id}/events"
        streams = [await RawStream.open(server.url, path) for _ in range(5)]
        try:
            await eventually(lambda: direct_sinks(server) == 5, "five streams held")
            statuses = {stream.status for stream in streams}
        finally:
            for stream in streams:
                await stream.close()
            await cancel(client, job_id)

    assert statuses == {200}
