"""One client follows any number of jobs at once (issue 17, "Hostile clients").

The bug: 150 `events()` at once on one `AsyncClient` left 50 of them with nothing for
45 s, every open stream holding one of httpx's 100 pooled connections, and a plain call
queued behind them too. Streams now have a pool of their own, without a bound, beside
the calls' pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from genwire.client import TERMINAL_EVENT_TYPES, AsyncClient, Client
from tests.conftest import ThreadedServer
from tests.waiting import eventually, wait_until
from tests.wire import hub_readers

LiveServer = Callable[..., ThreadedServer]
#: A job that appends nothing until it is cancelled (2 run, the others stay queued).
IDLE = {"seconds": 600}
#: A ceiling that fails a hung test, never an asserted speed.
WAIT_S = 90.0


async def test_one_async_client_follows_300_jobs_at_once_and_still_answers_a_get(
    live_server: LiveServer,
) -> None:
    server = live_server()
    async with asyncio.timeout(WAIT_S), AsyncClient(server.url, api_key="") as client:
        jobs = [(await client.submit("test.sleeps", IDLE)).id for _ in range(300)]

        async def follow(job_id: str) -> list[str]:
            return [event["type"] async for event in client.events(job_id)]

        followers = [asyncio.create_task(follow(job_id)) for job_id in jobs]
        await eventually(
            lambda: hub_readers(server), "300 streams open at once", until=lambda n: n >= 300
        )

        assert (await client.get(jobs[0])).status in ("queued", "running")
        for job_id in jobs:
            await client.cancel(job_id)
        ended = await asyncio.gather(*followers)

    assert [types[-1] for types in ended] == ["job-cancelled"] * 300
    assert all(type not in TERMINAL_EVENT_TYPES for types in ended for type in types[:-1])


def test_one_sync_client_follows_a_job_in_each_of_150_threads_and_still_answers_a_get(
    live_server: LiveServer,
) -> None:
    server = live_server()
    with Client(server.url, api_key="") as client, ThreadPoolExecutor(150) as threads:
        jobs = [client.submit("test.sleeps", IDLE).id for _ in range(150)]
        followers = [
            threads.submit(lambda job_id=job_id: [e["type"] for e in client.events(job_id)])
            for job_id in jobs
        ]
        wait_until(
            lambda: hub_readers(server),
            "150 streams open at once",
            until=lambda n: n >= 150,
            timeout=WAIT_S,
        )

        assert client.get(jobs[0]).status in ("queued", "running")
        for job_id in jobs:
            client.cancel(job_id)
        ended = [follower.result(timeout=WAIT_S) for follower in followers]

    assert [types[-1] for types in ended] == ["job-cancelled"] * 150
