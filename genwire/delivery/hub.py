"""The hub: this process's feeds by scope, shared by every reader of a scope; it
starts them, ticks their sinks, asks whether other processes write, and stops the
feeds nobody reads."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from genwire.bus import Bus
from genwire.delivery.backstop import BACKSTOP_S, Backstop
from genwire.delivery.feeds import Feed
from genwire.delivery.followers import Follower
from genwire.delivery.sinks import SINK_TICK_S, FanOutStats, Sink
from genwire.store import Store
from genwire.store.entries import Scope

log = logging.getLogger("genwire.delivery")

LINGER_S = 10.0  #: an unused feed stays this long, for readers that reconnect
RECHECK_S = 1.0  #: how often feeds look for writes the bus cannot announce

#: Whether another process may be writing events this process's bus never hears of
#: (asked by the hub each RECHECK_S while it has feeds; see `FeedHub._recheck`).
OthersWriting = Callable[[], bool]


class FeedHub:
    """The feeds of this process, by scope, shared by every reader of a scope."""

    def __init__(
        self,
        store: Store,
        bus: Bus,
        linger_s: float = LINGER_S,
        others_writing: OthersWriting | None = None,
        backstop_s: float | None = None,
    ) -> None:
        """On a bus that reaches other processes, a `Backstop` looks every
        `backstop_s` (None: BACKSTOP_S) for events nobody announced. On this process's own bus,
        `others_writing` is asked every RECHECK_S, while there are feeds, whether
        another process may append unannounced (None: none can)."""
        self._store = store
        self.bus = bus
        self._others_writing = others_writing
        announced = bus.announced
        self.backstop = (
            Backstop(store, announced, BACKSTOP_S if backstop_s is None else backstop_s)
            if announced is not None
            else None
        )
        self._outages_seen = announced.outages if announced is not None else 0
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
            sum(len(feed.sinks) + len(feed.behind) for feed in feeds),
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
            feed = self._feeds[scope] = Feed(scope, self._store, self.bus, self.fan_out_stats)
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
        while any(feed.sinks or feed.behind for feed in self._feeds.values()):
            await asyncio.sleep(SINK_TICK_S)
            now = loop.time()
            for feed in list(self._feeds.values()):
                if feed.dead:
                    # Its sinks would wait forever; they end and their clients resume.
                    feed.end_sinks("feed stopped")
                    continue
                for sink in feed.attached():
                    try:
                        sink.tick(now)
                    except Exception:
                        feed.end_failed(sink)  # the others still need their ticks

    def _ensure_sweepers(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep(), name="genwire-feed-sweeper")
        rechecks = self.backstop is not None or self._others_writing is not None
        if rechecks and (self._rechecker is None or self._rechecker.done()):
            self._rechecker = asyncio.create_task(self._recheck(), name="genwire-feed-rechecker")

    async def _recheck(self) -> None:
        """Every RECHECK_S while there are feeds, ask once whether events may have
        been appended that no wake-up announced; if so, every feed reads the store
        again (one indexed read per scope). One clock for all feeds, so that no feed
        arms a time-out per event."""
        failing = False
        try:
            while self._feeds:
                await asyncio.sleep(RECHECK_S)
                try:
                    unheard = await self._unheard_events()
                    failing = False
                except Exception:
                    if not failing:  # once a streak, not every second
                        log.exception("the feeds' recheck failed; they look anyway")
                    failing = unheard = True
                if unheard:
                    for feed in list(self._feeds.values()):
                        feed.look_again()
        finally:
            if self.backstop is not None:
                self.backstop.stop()

    async def _unheard_events(self) -> bool:
        """Whether events may have been appended that this process was not told of."""
        announced = self.bus.announced
        if self.backstop is None or announced is None:  # this process's own bus
            return self._others_writing is not None and await asyncio.to_thread(
                self._others_writing
            )
        if not announced.connected:
            await self.backstop.catch_up()
            return True  # cut off from the bus: look every second, as without one
        if announced.outages != self._outages_seen or not self.backstop.watching:
            # Back on the bus (what was announced meanwhile went unheard), or
            # starting: every feed reads as far as the backstop takes as checked.
            self._outages_seen = announced.outages
            await self.backstop.catch_up()
            return True
        return await self.backstop.look_if_due()

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
            feed.wake_readers()
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
