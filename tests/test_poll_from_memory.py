"""A long-poll of a job whose feed is live reads nothing from the store: the job's
status comes from the feed's snapshot and the status events it has seen since."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from genwire.bus import LocalBus
from genwire.models import format_event_id
from genwire.service import JobService
from genwire.storage import LocalStorage
from genwire.store import SqlStore
from tests import pipelines as test_pipelines
from tests.conftest import ThreadedServer
from tests.wire import LiveServer, cancel, client_of, idle_running_job, poll

T = TypeVar("T")


@contextlib.contextmanager
def job_reads(server: ThreadedServer) -> Iterator[list[str]]:
    """The id of every job the server's store reads, while inside."""
    store = server.app.state.service.store
    read_job = store.get_job
    reads: list[str] = []

    async def counted(job_id: str, tenant: str | None = None) -> Any:
        reads.append(job_id)
        return await read_job(job_id, tenant)

    store.get_job = counted
    try:
        yield reads
    finally:
        del store.get_job


async def until_answered_without_a_read(
    reads: list[str], job_id: str, ask: Callable[[], Awaitable[T]]
) -> list[T]:
    """Ask until an answer reads no job: the feed has started and keeps the job's
    status (at most 20 times); the answers."""
    answers = []
    for _ in range(20):
        before = reads.count(job_id)
        answers.append(await ask())
        if reads.count(job_id) == before:
            break
    return answers


async def test_long_polls_of_a_live_feed_read_no_job_yet_see_its_status_change(
    live_server: LiveServer,
) -> None:
    server = live_server()
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, cursor = await idle_running_job(client)
        with job_reads(server) as reads:
            await until_answered_without_a_read(
                reads, job_id, lambda: poll(client, job_id, cursor, 0)
            )
            polls_before = reads.count(job_id)
            answers = [await poll(client, job_id, cursor, 0) for _ in range(5)]
            polls_after = reads.count(job_id)
            await cancel(client, job_id)
            reads_before_end = reads.count(job_id)
            # Waits longer than the client's read time-out: answered as events come.
            ending = [await poll(client, job_id, cursor, 60)]
            while not ending[-1]["done"] and len(ending) < 10:
                ending.append(await poll(client, job_id, ending[-1]["last_event_id"], 60))
            again = await poll(client, job_id, ending[-1]["last_event_id"], 60)
            reads_at_end = reads.count(job_id)
    assert polls_after == polls_before, "polls of a live feed read the job"
    idle = {"events": [], "last_event_id": cursor, "status": "running", "done": False}
    assert answers == [idle] * 5
    assert reads_at_end == reads_before_end
    assert [e["type"] for answer in ending for e in answer["events"]][-1] == "job-cancelled"
    assert [(a["status"], a["done"]) for a in ending][-1] == ("cancelled", True)
    assert not any(a["done"] for a in ending[:-1])
    assert (again["events"], again["status"], again["done"]) == ([], "cancelled", True)


async def test_a_cursor_ahead_of_the_feed_still_gets_the_jobs_end(
    live_server: LiveServer, tmp_path: Path
) -> None:
    """The job's end was written by another process, which this server's feed has
    not heard of; a client that saw it elsewhere resumes at it."""
    server = live_server(workers=0)  # the job stays queued until cancelled elsewhere
    settings = server.app.state.settings
    elsewhere = SqlStore(settings.resolved_database_url)
    other = JobService(
        elsewhere, LocalBus(), test_pipelines.test_registry(), LocalStorage(tmp_path)
    )
    async with asyncio.timeout(60), client_of(server) as client:
        created = await client.post("/api/jobs", json={"pipeline": "test.raises", "input": {}})
        job_id, cursor = created.json()["id"], created.json()["last_event_id"]
        for _ in range(3):  # the feed starts and keeps the job's status
            assert (await poll(client, job_id, cursor, 0))["status"] == "queued"
        try:
            await other.request_cancel(job_id)
            ended = await elsewhere.get_job(job_id)
        finally:
            await elsewhere.close()
        assert ended is not None
        end_id = format_event_id(ended.last_event_seq)
        # A wait longer than the client's read time-out: it must not wait at all.
        answer = await poll(client, job_id, end_id, 60)
        stream = await client.get(f"/api/jobs/{job_id}/events", headers={"Last-Event-ID": end_id})
    assert (answer["events"], answer["status"], answer["done"]) == ([], "cancelled", True)
    assert stream.status_code == 204


async def test_long_polls_with_a_stream_token_read_no_job_either(
    live_server: LiveServer,
) -> None:
    server = live_server(api_keys={"k1": "alice"})
    async with (
        asyncio.timeout(60),
        client_of(server, api_key="k1") as alice,
        client_of(server) as anonymous,
    ):
        job_id, cursor = await idle_running_job(alice)
        poll_url = (await alice.get(f"/api/jobs/{job_id}")).json()["urls"]["poll"]
        poll_url += f"&after={cursor}&wait=0"  # after its ?token=
        with job_reads(server) as reads:
            answers = await until_answered_without_a_read(
                reads, job_id, lambda: anonymous.get(poll_url)
            )
            steady = reads.count(job_id)
            answers += [await anonymous.get(poll_url) for _ in range(5)]
            polls_after = reads.count(job_id)
            forged = await anonymous.get(
                f"/api/jobs/{job_id}/poll", params={"after": cursor, "wait": 0, "token": "1.x"}
            )
        await cancel(alice, job_id)
    assert polls_after == steady, "token polls of a live feed read the job"
    assert [a.status_code for a in answers] == [200] * len(answers), answers[0].text
    assert forged.status_code == 401
