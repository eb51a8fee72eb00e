"""A long-poll of a job whose feed is live reads nothing from the store: the job's
status comes from the feed's snapshot and the status events it has seen since."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.test_streams import (
    LiveServer,
    cancel,
    client_of,
    idle_running_job,
    poll,
)


async def test_long_polls_of_a_live_feed_read_no_job_yet_see_its_status_change(
    live_server: LiveServer,
) -> None:
    server = live_server()
    store = server.app.state.service.store
    read_job = store.get_job
    reads: list[str] = []

    async def counted(job_id: str, tenant: str | None = None) -> Any:
        reads.append(job_id)
        return await read_job(job_id, tenant)

    async with asyncio.timeout(60), client_of(server) as client:
        job_id, cursor = await idle_running_job(client)
        store.get_job = counted
        try:
            # The feed starts, then keeps the job's status once it has its floor.
            for _ in range(20):
                warming = reads.count(job_id)
                await poll(client, job_id, cursor, 0)
                if reads.count(job_id) == warming:
                    break
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
        finally:
            del store.get_job
    assert polls_after == polls_before, "polls of a live feed read the job"
    idle = {"events": [], "last_event_id": cursor, "status": "running", "done": False}
    assert answers == [idle] * 5
    assert reads_at_end == reads_before_end
    assert [e["type"] for answer in ending for e in answer["events"]][-1] == "job-cancelled"
    assert [(a["status"], a["done"]) for a in ending][-1] == ("cancelled", True)
    assert not any(a["done"] for a in ending[:-1])
    assert (again["events"], again["status"], again["done"]) == ([], "cancelled", True)
