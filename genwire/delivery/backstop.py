"""The feeds' backstop on a cross-process bus: a slow check that every committed
event was announced.

Redis pub/sub delivers at most once: a message lost, or a process that died between
its commit and its announcement, would leave a feed asleep. Every `interval_s` the
backstop counts the events committed since its last look and compares the count
with the ids the bus carried; a shortfall wakes every feed once, and is counted
for `/metrics`. It checks only events committed at least one interval before, so
that an announcement still on its way is not taken for a lost one. Two indexed
reads per process per interval, however many streams: an idle stream costs the
store nothing.
"""

from __future__ import annotations

import asyncio

from genwire.bus import AnnouncedEvents
from genwire.store import Store

BACKSTOP_S = 5.0  #: how often, by default, the backstop looks


class Backstop:
    def __init__(
        self, store: Store, announced: AnnouncedEvents, interval_s: float = BACKSTOP_S
    ) -> None:
        self._store = store
        self._announced = announced
        self._interval_s = interval_s
        self._due_at = 0.0  #: the loop's time of the next look
        self._checked_through: int | None = None  #: every id up to here was checked
        self._next_through: int | None = None  #: the newest id at the last look
        #: events found committed but never announced, since the process started
        self.unannounced = 0

    @property
    def watching(self) -> bool:
        """Whether it has caught up and counts what it finds from here on."""
        return self._checked_through is not None

    def stop(self) -> None:
        """The feeds went away: nothing to check, nothing to keep."""
        self._checked_through = self._next_through = None
        self._announced.stop_tracking()

    async def catch_up(self) -> None:
        """Take every event committed so far as checked. The caller then wakes every
        feed, which reads at least that far: for when the backstop starts, and each
        second while the bus is down (nothing is heard then; the feeds look anyway)."""
        self._announced.tracking = True  # an id announced while this reads is kept
        self._due_at = asyncio.get_running_loop().time() + self._interval_s
        newest = await self._store.last_seq()
        self._checked_through = self._next_through = newest
        self._announced.forget_through(newest)

    async def look_if_due(self) -> bool:
        """`look()` once its interval has passed since the last; else False."""
        now = asyncio.get_running_loop().time()
        if now < self._due_at:
            return False
        self._due_at = now + self._interval_s
        return await self.look()

    async def look(self) -> bool:
        """Check the events committed before the previous look; True when some were
        never announced (every feed should read the store again)."""
        checked, through = self._checked_through, self._next_through
        if checked is None or through is None:
            await self.catch_up()
            return True
        newest = await self._store.last_seq()
        self._next_through = newest
        if through <= checked:
            return False
        committed = await self._store.count_events_between(checked, through)
        heard = self._announced.count_between(checked, through)
        self._announced.forget_through(through)
        self._checked_through = through
        missed = max(0, committed - heard)
        self.unannounced += missed
        return missed > 0
