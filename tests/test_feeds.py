"""Feeds and their sinks, on a real store: a sink never waits on a feed that died."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from genwire.bus import LocalBus
from genwire.delivery.entries import Scope, ScopeKind
from genwire.delivery.feeds import FeedHub, LiveBatch
from genwire.store import Store


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
