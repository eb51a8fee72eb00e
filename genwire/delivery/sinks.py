"""What a feed hands its sinks: caught-up readers it writes to itself, in the same
step that reads a batch, with no task woken per reader (the fast path's streams
and parked polls, `genwire.api.fastpath`)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from genwire.metrics import Histogram
from genwire.models import EventType
from genwire.store.entries import LogEntry

SINK_TICK_S = 0.25  #: how often sinks are ticked (keepalive and time-out precision)


class LiveBatch:
    """Events a feed has just read, as its sinks need them: encoded once for all."""

    __slots__ = ("_ends", "encoded", "entries", "first_seq", "last_seq")

    def __init__(self, entries: list[LogEntry]) -> None:
        self.entries = entries
        self.first_seq = entries[0].seq
        self.last_seq = entries[-1].seq
        #: the whole batch as the sinks write it, made by the first sink that needs it
        self.encoded: bytes | None = None
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


class Sink(Protocol):
    """A caught-up reader that the feed writes to directly (see `Feed.attach`)."""

    def deliver(self, batch: LiveBatch) -> None:
        """Take the batch at once, without waiting: the feed's other sinks are next."""

    def tick(self, now: float) -> None:
        """Called about every `SINK_TICK_S`: keepalives, lifetime, a stuck reader."""

    def end(self, reason: str) -> None:
        """The feed is going away (shutdown, or it failed): finish; the client resumes."""


class FanOutStats:
    """What a hub's feeds handed their sinks, for `GET /metrics`."""

    __slots__ = ("batches", "delay", "seconds")

    def __init__(self) -> None:
        self.batches = 0  #: batches handed to a sink, one per sink
        self.seconds = Histogram()  #: how long each fan-out took, every sink of a feed
        #: from the append of a batch's first event to the end of its fan-out
        self.delay = Histogram()
