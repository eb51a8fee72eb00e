"""Feeds and their sinks, on a real store: a sink never waits on a feed that died,
and feeds hear of what another process appended."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from genwire.bus import LocalBus
from genwire.delivery import FeedHub, LiveBatch
from genwire.models import EventType
from genwire.service import CreateJob, JobService
from genwire.storage import LocalStorage
from genwire.store import SqlStore, Store
from genwire.store.entries import Scope, ScopeKind
from tests.pipelines import test_registry as pipelines_for_tests


@dataclass(eq=False)
class RecordingSink:
    """A sink that keeps what the feed told it."""

    ended: list[str] = field(default_factory=list)
    ticks: int = 0

    def deliver(self, batch: LiveBatch) -> None:
        pass

    def tick(self, now: float) -> None:
        self.ticks += 1

    def end(self, reason: str) -> None:
        self.ended.append(reason)


async def attached_sink(hub: FeedHub, scope: Scope) -> RecordingSink:
    sink = RecordingSink()
    async with hub.follow(scope) as follower:
        while follower.feed.floor is None:  # the feed finds where it starts
            await asyncio.wait_for(follower.feed.changed.wait(), 10)
        assert hub.attach(follower, sink, follower.feed.head)
    return sink


async def kill_feed(hub: FeedHub, scope: Scope) -> None:
    async with hub.follow(scope) as follower:
        await follower.feed.stop()
        assert follower.feed.dead


async def test_a_feed_replaced_after_it_died_ends_its_sinks(store: Store) -> None:
    hub = FeedHub(store, LocalBus(), linger_s=60)
    scope = Scope(ScopeKind.JOB, "job_x")
    try:
        sink = await attached_sink(hub, scope)
        await kill_feed(hub, scope)
        async with hub.follow(scope) as follower:
            assert not follower.feed.dead
        assert sink.ended == ["feed stopped"]
    finally:
        await hub.close()


async def test_the_tick_ends_the_sinks_of_a_dead_feed_and_then_stops(store: Store) -> None:
    hub = FeedHub(store, LocalBus(), linger_s=60)
    scope = Scope(ScopeKind.TENANT, "t")
    try:
        sink = await attached_sink(hub, scope)
        assert hub._ticker is not None
        await kill_feed(hub, scope)
        await asyncio.wait_for(asyncio.shield(hub._ticker), 10)
        assert sink.ended == ["feed stopped"]
    finally:
        await hub.close()


async def test_shutdown_ends_every_sink(store: Store) -> None:
    hub = FeedHub(store, LocalBus(), linger_s=60)
    sinks = [await attached_sink(hub, Scope(ScopeKind.JOB, f"job_{n}")) for n in range(3)]
    hub.begin_shutdown()
    assert all(sink.ended == ["shutdown"] for sink in sinks)
    await hub.close()
    assert all(sink.ended == ["shutdown"] for sink in sinks)


async def test_feeds_read_what_another_process_appended_when_the_hub_says_to_look(
    store: SqlStore, tmp_path: Path
) -> None:
    """Another process's appends wake no feed here (its bus is its own): the hub asks
    once a second whether anyone else writes, and then every feed reads again."""
    elsewhere = SqlStore(store.url)  # a `genwire worker` on the same database
    other = JobService(elsewhere, LocalBus(), pipelines_for_tests(), LocalStorage(tmp_path))
    asked: list[float] = []

    def others_writing() -> bool:
        asked.append(time.monotonic())
        return True

    hub = FeedHub(store, LocalBus(), linger_s=60, others_writing=others_writing)
    quiet = [Scope(ScopeKind.TENANT, f"quiet-{n}") for n in range(10)]  # feeds with no news
    try:
        job, _ = await other.create_job("t", CreateJob("demo.synthetic", {"steps": 1}))
        scopes = [Scope(ScopeKind.JOB, job.id), Scope(ScopeKind.TENANT, "t"), *quiet]
        async with contextlib.AsyncExitStack() as stack:
            followers = [await stack.enter_async_context(hub.follow(scope)) for scope in scopes]
            for follower in followers:
                await follower.started(10)
            cursor = followers[0].feed.head
            await other.request_cancel(job.id)  # appended elsewhere, after the feeds began
            seen = [await follower.next(cursor, 10) for follower in followers[:2]]
    finally:
        await hub.close()
        await elsewhere.close()

    assert [[entry.type for entry in batch] for batch in seen] == [[EventType.JOB_CANCELLED]] * 2
    # One clock for the hub, not one per feed: a second or two, an ask each.
    assert 1 <= len(asked) < len(scopes)
