"""Shared feeds: one reader of the log per scope per process, however many streams.

A feed tails one scope (a job, a tenant, a project): woken by the bus, it reads the
new events once and keeps the latest of them in memory, encoded once. Every stream
and long-poll of that scope reads from the feed at its own cursor; a cursor older
than the feed's window reads the store instead, so a slow or late reader never
holds anything back and nothing is ever dropped for it.

A stream that has caught up can attach a *sink* instead of waiting for news: the
feed then hands each new batch to every sink itself, in the same step that reads it,
with no task woken per subscriber (`LiveBatch` caches the encoding they share).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from genwire.bus import Bus, Subscription, topics
from genwire.metrics import Histogram
from genwire.models import EventType, JobStatus
from genwire.store import Store
from genwire.store.entries import LogEntry, Scope, ScopeKind

log = logging.getLogger("genwire.delivery")

WINDOW = 2048  #: events a feed keeps in memory
READ_LIMIT = 500  #: events read from the store at once
LINGER_S = 10.0  #: an unused feed stays this long, for readers that reconnect
RETRY_S = 1.0  #: pause after a failed read of the store
RECHECK_S = 1.0  #: how often feeds look for writes the bus cannot announce
#: the longest a feed under load waits to gather a batch (see `_gather_under_load`)
GATHER_MAX_S = 0.005
#: the share of the loop's time above which fan-outs gather (see `_gather_under_load`)
GATHER_LOAD = 0.8
SINK_TICK_S = 0.25  #: how often sinks are ticked (keepalive and time-out precision)

#: Whether another process may be writing events this process's bus never hears of
#: (asked by the hub each RECHECK_S while it has feeds; see `FeedHub._recheck`).
OthersWriting = Callable[[], bool]


class LiveBatch:
    """Events a feed has just read, as its sinks need them: encoded once for all."""

    __slots__ = ("_ends", "encoded", "entries", "first_seq", "gathering", "last_seq")

    def __init__(self, entries: list[LogEntry]) -> None:
        self.entries = entries
        self.first_seq = entries[0].seq
        self.last_seq = entries[-1].seq
        #: the whole batch as the sinks write it, made by the first sink that needs it
        self.encoded: bytes | None = None
        #: what the sinks that start gathering at this batch share (`api.parked`)
        self.gathering: object | None = None
        self._ends: dict[int, int | None] = {}

    def after(self, cursor: int) -> list[LogEntry]:
        """The entries a sink at `cursor` has not had (all of them, nearly always)."""
        if cursor < self.first_seq:
            return self.entries
        return [entry for entry in self.entries if entry.seq > cursor]

    def end_of(self, ends_with: Collection[EventType]) -> int | None:
        """The seq of the first entry whose type ends a stream, if any."""
        if not ends_with:
            return None
        # Streams of one kind share their `ends_with`: look once per batch, not per sink.
        key = id(ends_with)
        if key not in self._ends:
            self._ends[key] = next(
                (entry.seq for entry in self.entries if entry.type in ends_with), None
            )
        return self._ends[key]


class FanOutStats:
    """What a hub's feeds handed their sinks, for `GET /metrics`."""

    __slots__ = ("batches", "delay", "seconds")

    def __init__(self) -> None:
        self.batches = 0  #: batches handed to a sink, one per sink
        self.seconds = Histogram()  #: how long each fan-out took, every sink of a feed
        #: from the append of a batch's first event to the end of its fan-out
        self.delay = Histogram()


@dataclass(frozen=True)
class StatusAt:
    """A job's status as read from the store, holding from event `seq` on until a
    newer status event (see `Feed.status_at`)."""

    tenant: str
    status: JobStatus
    seq: int


class Sink(Protocol):
    """A caught-up reader that the feed writes to directly (see `Feed.attach`)."""

    def deliver(self, batch: LiveBatch) -> None:
        """Take the batch at once, without waiting: the feed's other sinks are next."""

    def tick(self, now: float) -> None:
        """Called about every `SINK_TICK_S`: keepalives, lifetime, a stuck reader."""

    def end(self, reason: str) -> None:
        """The feed is going away (shutdown, or it failed): finish; the client resumes."""


async def read_after(
    store: Store, scope: Scope, cursor: int, known_through: int | None = None
) -> tuple[list[LogEntry], int]:
    """The scope's events after `cursor` (at most READ_LIMIT) and the id through which
    that answer is complete: from what this process committed lately when that holds
    new events of the scope, or shows it has none up to `known_through` (no read, no
    thread); else from the store."""
    known = store.recent.after(scope, cursor) if store.recent is not None else None
    if known is not None:
        entries, through = known
        if len(entries) > READ_LIMIT:
            entries = entries[:READ_LIMIT]
            through = entries[-1].seq
        if entries or (known_through is not None and through >= known_through):
            return entries, through
    batch = await store.entries_after(scope, cursor, READ_LIMIT)
    return batch, batch[-1].seq if batch else cursor


def topic_of(scope: Scope) -> str:
    if scope.kind is ScopeKind.JOB:
        return topics.job(scope.key)
    if scope.kind is ScopeKind.PROJECT:
        return topics.project(scope.key)
    return topics.tenant(scope.key)


class Feed:
    """The tail of one scope's log.

    Invariant: every event of the scope with seq > `floor` is in `_entries` or not
    read yet, and every event with seq <= `floor` was committed before the feed read
    past it — so a reader at or past `floor` can be served from memory alone.
    """

    def __init__(
        self,
        scope: Scope,
        store: Store,
        bus: Bus,
        stats: FanOutStats,
    ) -> None:
        self.scope = scope
        self._stats = stats
        self._store = store
        self._bus = bus
        self._woken: Subscription | None = None  #: the tail's subscription to the bus
        self._entries: list[LogEntry] = []
        self._seqs: list[int] = []
        self.floor: int | None = None  #: None until the feed has found where it starts
        self.head = 0
        self._changed = asyncio.Event()
        self.followers = 0  #: streams and long-polls inside `FeedHub.follow`
        self._task: asyncio.Task[None] | None = None
        self.idle_since: float | None = None
        self.sinks: set[Sink] = set()
        #: a job feed's newest entry that changed the job's status
        self.last_status: LogEntry | None = None
        #: a job feed's snapshot of its job, read once the feed had its floor: with
        #: `last_status`, the job's status without a read (SPEC §3 long-poll answers)
        self.status_at: StatusAt | None = None
        self._fanned_out_s = 0.0  #: how long the last fan-out took
        self._fan_out_ended = 0.0  #: when (`time.perf_counter`: the loop's clock is coarse)

    @property
    def readers(self) -> int:
        """Followers, and sinks (whose streams no longer follow: the feed writes to them)."""
        return self.followers + len(self.sinks)

    @property
    def changed(self) -> asyncio.Event:
        """Set when the feed moves on; take it *before* looking, then wait on it."""
        return self._changed

    def start(self) -> None:
        self._task = asyncio.create_task(self._tail(), name=f"genwire-feed-{self.scope.key}")
        self._task.add_done_callback(self._report_death)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the feed runs on: another thread changes the feed only through
        `loop.call_soon_threadsafe` (tests, a server in its own thread)."""
        assert self._task is not None, "the feed has not started"
        return self._task.get_loop()

    @property
    def dead(self) -> bool:
        """The tail stopped (it never should while in use): the hub replaces the feed."""
        return self._task is not None and self._task.done()

    def _report_death(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("the feed of %s stopped", self.scope, exc_info=task.exception())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def attach(self, sink: Sink, cursor: int) -> bool:
        """Hand the events after `cursor` to `sink` from now on, if `cursor` has
        caught up with the feed (else False: read `since(cursor)` first). No event
        can fall between: checking and attaching happen in one step of the loop."""
        if self.dead or self.since(cursor) != []:
            return False
        self.sinks.add(sink)
        self.idle_since = None
        return True

    def detach(self, sink: Sink) -> None:
        self.sinks.discard(sink)
        self.note_if_idle()

    def note_if_idle(self) -> None:
        if self.readers == 0 and self.idle_since is None:
            self.idle_since = asyncio.get_running_loop().time()

    def end_failed(self, sink: Sink) -> None:
        """Called where a sink raised: it alone ends (its client resumes), and the
        error is logged."""
        log.exception("a sink of %s failed; it ends", self.scope)
        self.sinks.discard(sink)
        sink.end("failed")

    def end_sinks(self, reason: str) -> None:
        """Detach and end every sink: their streams finish and the clients resume."""
        sinks, self.sinks = self.sinks, set()
        for sink in sinks:
            sink.end(reason)

    def since(self, cursor: int) -> list[LogEntry] | None:
        """The events after `cursor`; None when the cursor is older than the window."""
        if self.floor is None or cursor < self.floor:
            return None
        return self._entries[bisect.bisect_right(self._seqs, cursor) :]

    async def _tail(self) -> None:
        with self._bus.subscribe(topic_of(self.scope)) as woken:
            self._woken = woken
            while self.floor is None:
                try:
                    self.floor = self.head = await self._store.last_seq()
                except Exception:
                    log.exception("starting the feed of %s failed; retrying", self.scope)
                    await asyncio.sleep(RETRY_S)
            self._signal()
            while True:
                try:
                    # Nothing new in memory sends it to the store: another process
                    # may have written.
                    batch, through = await read_after(self._store, self.scope, self.head)
                except Exception:
                    log.exception("reading the feed of %s failed; retrying", self.scope)
                    await asyncio.sleep(RETRY_S)
                    continue
                self.head = through
                if batch:
                    self._keep(batch)
                    self._signal()
                    self._fan_out(batch)
                    if len(batch) == READ_LIMIT:
                        continue
                await woken.wait(None)  # the bus, or the hub's `look_again`
                await self._gather_under_load()

    async def _gather_under_load(self) -> None:
        """When fanning out takes most of the loop's time (news comes back within a
        quarter of a fan-out's duration after it ended), wait a little before reading,
        so that the next batch carries several events and each subscriber gets them
        in one write instead of one each. At a steady rate that the fan-outs keep up
        with, the loop is idle between them and nothing waits."""
        busy = self._fanned_out_s
        idle = time.perf_counter() - self._fan_out_ended
        if busy and busy > GATHER_LOAD * (busy + idle):
            await asyncio.sleep(min(busy, GATHER_MAX_S))

    def look_again(self) -> None:
        """Read the store once more: another process may have appended events that
        this process's bus never heard of (`FeedHub`)."""
        if self._woken is not None:
            self._woken.notify()

    def _keep(self, batch: list[LogEntry]) -> None:
        self._entries.extend(batch)
        self._seqs.extend(entry.seq for entry in batch)
        if self.scope.kind is ScopeKind.JOB:
            self.last_status = next(
                (entry for entry in reversed(batch) if entry.changes_status), self.last_status
            )
        excess = len(self._entries) - WINDOW
        if excess > WINDOW // 4:  # trim in chunks: slicing a list is O(n)
            self.floor = self._seqs[excess - 1]
            del self._entries[:excess]
            del self._seqs[:excess]

    def _fan_out(self, batch: list[LogEntry]) -> None:
        if not self.sinks:
            self._fanned_out_s = 0.0
            return
        started = time.perf_counter()
        live = LiveBatch(batch)
        sinks = list(self.sinks)  # a sink may detach itself as it takes the batch
        for sink in sinks:
            try:
                sink.deliver(live)
            except Exception:
                self.end_failed(sink)
        self._fan_out_ended = time.perf_counter()
        self._fanned_out_s = self._fan_out_ended - started
        self._stats.batches += len(sinks)
        self._stats.seconds.observe(self._fanned_out_s)
        appended_at = batch[0].appended_at
        if appended_at is not None:
            self._stats.delay.observe(max(0.0, time.time() - appended_at))

    def _signal(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


class Follower:
    """One reader's position in a scope: what is new since its cursor."""

    def __init__(self, feed: Feed, store: Store, closing: asyncio.Event) -> None:
        self._feed = feed
        self._store = store
        self._closing = closing
        #: where to look in the feed; it can run ahead of the caller's cursor when
        #: the store proved that the scope has no event in between
        self._search_from: int | None = None

    @property
    def feed(self) -> Feed:
        return self._feed

    async def __aenter__(self) -> Follower:
        self._feed.followers += 1
        self._feed.idle_since = None
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._feed.followers -= 1
        self._feed.note_if_idle()

    def caught_up(self, cursor: int) -> int:
        """Where the feed may take over a reader at `cursor`: past the stretch the store
        has shown to hold none of the scope's events."""
        return max(cursor, self._search_from or 0)

    async def started(self, timeout: float) -> None:
        """Wait up to `timeout` for the feed to find where it starts (its floor): only
        then can a reader that has caught up be told so."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self._feed.floor is None and not self._closing.is_set():
                    await self._feed.changed.wait()

    async def next(self, cursor: int, timeout: float) -> list[LogEntry]:
        """The events after `cursor`, waiting up to `timeout` for one; [] on time-out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        search_from = max(cursor, self._search_from or 0)
        while True:
            changed = self._feed.changed
            batch = self._feed.since(search_from)
            if batch is None:
                floor = self._feed.floor
                # Older than the window: memory serves if it reaches the floor.
                batch, _ = await read_after(self._store, self._feed.scope, search_from, floor)
                if not batch and floor is not None:
                    # Nothing of this scope up to `floor`: the feed has the rest.
                    search_from = max(search_from, floor)
            if batch:
                self._search_from = None
                return batch
            self._search_from = search_from
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closing.is_set():
                return []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()


class FeedHub:
    """The feeds of this process, by scope, shared by every reader of a scope."""

    def __init__(
        self,
        store: Store,
        bus: Bus,
        linger_s: float = LINGER_S,
        others_writing: OthersWriting | None = None,
    ) -> None:
        """`others_writing`: None when every writer of the database announces on
        `bus`; else asked every RECHECK_S, while there are feeds, whether they
        should all look again."""
        self._store = store
        self._bus = bus
        self._others_writing = others_writing
        self.fan_out_stats = FanOutStats()
        #: set when the server begins to shut down: streams end at once
        self.closing = asyncio.Event()
        self._linger_s = linger_s
        self._feeds: dict[Scope, Feed] = {}
        self._loop: asyncio.AbstractEventLoop | None = None  #: the loop its feeds run on
        self._sweeper: asyncio.Task[None] | None = None
        self._rechecker: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None

    @property
    def readers(self) -> int:
        return sum(feed.readers for feed in self._feeds.values())

    def census(self) -> tuple[int, int, int]:
        """Live feeds, sinks (readers the feeds write to), and followers (readers
        still in their own request), for `GET /metrics`."""
        feeds = [feed for feed in self._feeds.values() if not feed.dead]
        return (
            len(feeds),
            sum(len(feed.sinks) for feed in feeds),
            sum(feed.followers for feed in feeds),
        )

    def census_from_another_thread(self, timeout_s: float = 10.0) -> tuple[int, int, int]:
        """`census()`, taken on the hub's own loop for a caller in another thread (the
        feeds change under a reader that is not on that loop)."""
        if self._loop is None:
            return (0, 0, 0)
        return asyncio.run_coroutine_threadsafe(self._census(), self._loop).result(timeout_s)

    async def _census(self) -> tuple[int, int, int]:
        return self.census()

    def call_soon_threadsafe(self, callback: Callable[[], object]) -> None:
        """Run `callback` on the hub's loop, from any thread."""
        assert self._loop is not None, "no feed has started yet"
        self._loop.call_soon_threadsafe(callback)

    def live_feed(self, scope: Scope) -> Feed | None:
        feed = self._feeds.get(scope)
        return None if feed is None or feed.dead else feed

    def follow(self, scope: Scope) -> Follower:
        """A reader of the scope's feed, counted while inside `async with`; the first
        starts the feed. (A class, not a generator: every long-poll answer enters one.)"""
        feed = self._feeds.get(scope)
        if feed is None or feed.dead:
            self._loop = asyncio.get_running_loop()  # off the hot path: new feeds only
            if feed is not None:
                feed.end_sinks("feed stopped")  # the tick no longer sees it once replaced
            feed = self._feeds[scope] = Feed(scope, self._store, self._bus, self.fan_out_stats)
            feed.start()
            self._ensure_sweepers()
        return Follower(feed, self._store, self.closing)

    def attach(self, follower: Follower, sink: Sink, cursor: int) -> bool:
        """`Feed.attach` for the follower's feed; the hub then ticks the sink."""
        if self.closing.is_set() or not follower.feed.attach(sink, follower.caught_up(cursor)):
            return False
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(self._tick(), name="genwire-sink-ticker")
        return True

    async def _tick(self) -> None:
        """Tick every sink while there are any; `attach` starts the ticker again."""
        loop = asyncio.get_running_loop()
        while any(feed.sinks for feed in self._feeds.values()):
            await asyncio.sleep(SINK_TICK_S)
            now = loop.time()
            for feed in list(self._feeds.values()):
                if feed.dead:
                    # Its sinks would wait forever; they end and their clients resume.
                    feed.end_sinks("feed stopped")
                    continue
                for sink in list(feed.sinks):
                    try:
                        sink.tick(now)
                    except Exception:
                        feed.end_failed(sink)  # the others still need their ticks

    def _ensure_sweepers(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep(), name="genwire-feed-sweeper")
        if self._others_writing is not None and (self._rechecker is None or self._rechecker.done()):
            self._rechecker = asyncio.create_task(
                self._recheck(self._others_writing), name="genwire-feed-rechecker"
            )

    async def _recheck(self, others_writing: OthersWriting) -> None:
        """Every RECHECK_S while there are feeds, ask once whether another process may
        be appending; if so, every feed reads the store again (one indexed read per
        scope). One clock for all feeds, so that no feed arms a time-out per event."""
        failing = False
        while self._feeds:
            await asyncio.sleep(RECHECK_S)
            try:
                others = await asyncio.to_thread(others_writing)
                failing = False
            except Exception:
                if not failing:  # once a streak, not every second
                    log.exception("asking whether other processes write failed; feeds look anyway")
                failing = others = True
            if others:
                for feed in list(self._feeds.values()):
                    feed.look_again()

    async def _sweep(self) -> None:
        """Stop feeds nobody has read for a while."""
        while self._feeds:
            await asyncio.sleep(self._linger_s / 2)
            now = asyncio.get_running_loop().time()
            for scope, feed in list(self._feeds.items()):
                if feed.idle_since is not None and now - feed.idle_since >= self._linger_s:
                    del self._feeds[scope]
                    await feed.stop()

    def begin_shutdown(self) -> None:
        """Let every stream end now (the server is stopping; clients resume elsewhere)."""
        self.closing.set()
        for feed in self._feeds.values():
            feed._signal()
            feed.end_sinks("shutdown")

    async def close(self) -> None:
        self.begin_shutdown()
        for task in (self._sweeper, self._rechecker, self._ticker):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            await feed.stop()
