"""A reader's position in a scope's feed: what is new since its cursor, from the
feed's memory or, for a cursor older than its window, from the store."""

from __future__ import annotations

import asyncio
import contextlib

from genwire.delivery.feeds import Feed
from genwire.delivery.reads import read_after
from genwire.store import Store
from genwire.store.entries import LogEntry


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
