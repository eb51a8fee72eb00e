"""Feeds take what this process just committed from memory (`genwire.store.recent`),
and go to the store wherever another writer left a hole in what memory holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from genwire.bus import LocalBus
from genwire.delivery import FeedHub
from genwire.models import Event, EventType
from genwire.service import CreateJob, JobService
from genwire.storage import LocalStorage
from genwire.store import SqlStore
from genwire.store.entries import LogEntry, Scope, ScopeKind
from genwire.store.recent import RecentEvents
from genwire.store.transactions import WriteTx
from tests import pipelines as test_pipelines

JOB = Scope(ScopeKind.JOB, "job_a")


def event(seq: int, job_id: str = "job_a", tenant: str = "t") -> Event:
    return Event(seq, tenant, job_id, EventType.STEP_PROGRESS, {"n": seq})


def add(recent: RecentEvents, *events: Event) -> None:
    recent.add(events, [f'{{"n":{e.seq}}}' for e in events])


def seqs(answer: tuple[list[LogEntry], int] | None) -> tuple[list[int], int] | None:
    return None if answer is None else ([entry.seq for entry in answer[0]], answer[1])


def test_it_answers_a_scope_from_memory_through_the_newest_id_it_holds() -> None:
    recent = RecentEvents()
    add(recent, event(5), event(6, "job_b"), event(7), event(8, "job_c", tenant="u"))
    assert seqs(recent.after(JOB, 4)) == ([5, 7], 8)
    assert seqs(recent.after(JOB, 5)) == ([7], 8)
    assert seqs(recent.after(Scope(ScopeKind.TENANT, "u"), 4)) == ([8], 8)
    assert seqs(recent.after(JOB, 8)) == ([], 8)
    assert recent.after(JOB, 3) is None, "id 4 is not held: only the store knows it"


def test_a_hole_in_the_ids_sends_readers_before_it_to_the_store() -> None:
    recent = RecentEvents()
    add(recent, event(1), event(2))
    add(recent, event(4))  # 3: committed by another process
    assert recent.after(JOB, 1) is None
    assert recent.after(JOB, 2) is None
    assert seqs(recent.after(JOB, 3)) == ([4], 4)


def test_trimmed_ids_are_not_answered_for() -> None:
    recent = RecentEvents(capacity=8)
    add(recent, *(event(seq) for seq in range(1, 12)))
    assert recent.after(JOB, 0) is None
    answer = seqs(recent.after(JOB, 10))
    assert answer == ([11], 11)


def test_forgetting_sends_every_reader_to_the_store_until_the_next_commit() -> None:
    recent = RecentEvents()
    add(recent, event(1))
    recent.forget()
    assert recent.after(JOB, 0) is None
    add(recent, event(2))
    assert seqs(recent.after(JOB, 1)) == ([2], 2)


@pytest.fixture
async def two_writers(tmp_path: Path) -> AsyncIterator[tuple[JobService, JobService]]:
    """Two stores on one SQLite file, as a server and a `genwire worker` beside it:
    the server's bus never hears of the other's commits."""
    url = f"sqlite:///{tmp_path / 'genwire.db'}"
    stores = [SqlStore(url), SqlStore(url)]
    await stores[0].migrate()
    services = [
        JobService(
            store, LocalBus(), test_pipelines.test_registry(), LocalStorage(tmp_path / "files")
        )
        for store in stores
    ]
    yield services[0], services[1]
    for store in stores:
        await store.close()


async def append_progress(service: JobService, job_id: str, n: int) -> None:
    def change(tx: WriteTx) -> None:
        job = tx.lock_job(job_id)
        assert job is not None
        tx.append_event(job, EventType.STEP_PROGRESS, {"n": n})
        tx.save_job(job)

    await service.change(change)


async def test_a_feed_misses_nothing_another_writer_appended_before_its_own_commit(
    two_writers: tuple[JobService, JobService],
) -> None:
    here, there = two_writers
    job, _ = await here.create_job("t", CreateJob("test.raises", {}))
    scope = Scope(ScopeKind.JOB, job.id)
    hub = FeedHub(here.store, here.bus, linger_s=60)  # no look for other writers
    received: list[int] = []
    try:
        async with hub.follow(scope) as follower:
            cursor = job.last_event_seq
            for n in range(4):
                await append_progress(there, job.id, n)  # unannounced here
                await append_progress(here, job.id, n)  # announced: the feed reads
                batch: list[LogEntry] = []
                while len(batch) < 2 and (more := await follower.next(cursor, 5)):
                    batch += more
                    cursor = more[-1].seq
                received += [entry.seq for entry in batch]
    finally:
        await hub.close()
    stored = await here.store.entries_after(scope, job.last_event_seq)
    assert len(stored) == 8
    assert received == [entry.seq for entry in stored]


async def test_a_feed_reads_what_its_own_process_committed_from_memory(
    two_writers: tuple[JobService, JobService], monkeypatch: pytest.MonkeyPatch
) -> None:
    here, _ = two_writers
    job, _ = await here.create_job("t", CreateJob("test.raises", {}))
    scope = Scope(ScopeKind.JOB, job.id)
    store_reads: list[int] = []
    read_store = here.store.entries_after

    async def counted(scope: Scope, after_seq: int, limit: int = 500) -> list[LogEntry]:
        batch = await read_store(scope, after_seq, limit)
        if batch:  # events taken from the store, not from memory
            store_reads.append(after_seq)
        return batch

    monkeypatch.setattr(here.store, "entries_after", counted)
    hub = FeedHub(here.store, here.bus, linger_s=60)
    received: list[int] = []
    try:
        async with hub.follow(scope) as follower:
            # A first event, delivered however the feed found it: its first look at the
            # store, as it starts, may come while that event is committed but not yet
            # in memory (the writer thread keeps it just after the commit); the
            # event's own wake-up then comes after, and is let settle.
            await append_progress(here, job.id, -1)
            cursor = (await follower.next(job.last_event_seq, 5))[-1].seq
            await asyncio.sleep(0.1)
            store_reads.clear()
            for n in range(5):
                await append_progress(here, job.id, n)
                batch = await follower.next(cursor, 5)
                received += [entry.seq for entry in batch]
                cursor = batch[-1].seq
    finally:
        await hub.close()
    assert len(received) == 5
    assert store_reads == []
