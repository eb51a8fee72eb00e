"""Shared feeds: one reader of the log per scope per process, however many streams.

A feed tails one scope (a job, a tenant, a project): woken by the bus, it reads the
new events once and keeps the latest of them in memory, encoded once. Every stream
and long-poll of that scope reads from the feed at its own cursor; a cursor older
than the feed's window reads the store instead, so a slow or late reader never
holds anything back and nothing is ever dropped for it.

A stream that has caught up can attach a *sink* instead of waiting for news: the
feed then hands each new batch to every sink itself, in the same step that reads it,
with no task woken per subscriber (`LiveBatch` caches the encoding they share). A
sink whose client falls behind steps out of that (`fall_behind`): it costs the
fan-out nothing while it is behind, catches up from the feed's memory as its client
takes what it was sent (`since`, `bytes_after`), and steps back in (`rejoin`).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass

from genwire.bus import Bus, Subscription, topics
from genwire.delivery.reads import READ_LIMIT, read_after
from genwire.delivery.sinks import FanOutStats, LiveBatch, Sink
from genwire.models import EventType, JobStatus
from genwire.store import Store
from genwire.store.entries import LogEntry, Scope, ScopeKind

log = logging.getLogger("genwire.delivery")

WINDOW = 2048  #: events a feed keeps in memory
RETRY_S = 1.0  #: pause after a failed read of the store
#: the longest a feed under load waits to gather a batch (see `_gather_under_load`)
GATHER_MAX_S = 0.005
#: the share of the loop's time above which fan-outs gather (see `_gather_under_load`)
GATHER_LOAD = 0.8


@dataclass(frozen=True)
class StatusAt:
    """A job's status as read from the store, holding from event `seq` on until a
    newer status event (see `Feed.status_at`)."""

    tenant: str
    status: JobStatus
    seq: int


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
        self.sinks: set[Sink] = set()  #: handed every batch
        self.behind: set[Sink] = set()  #: attached, but behind: handed nothing
        #: cumulative frame bytes of the first entries of `_entries`, made as asked
        self._frame_ends: list[int] = []
        self._newest_of: dict[EventType, int] = {}  #: the seq of each type's newest entry
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
        return self.followers + len(self.sinks) + len(self.behind)

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
        self.behind.discard(sink)
        self.note_if_idle()

    def fall_behind(self, sink: Sink) -> None:
        """Stop handing `sink` each batch: its client is behind, and the sink catches
        up from memory (`since`) when it can; `rejoin` hands it batches again."""
        self.sinks.discard(sink)
        self.behind.add(sink)

    def rejoin(self, sink: Sink) -> None:
        """Hand `sink` each batch again: it has caught up with the feed."""
        self.behind.discard(sink)
        self.sinks.add(sink)

    def note_if_idle(self) -> None:
        if self.readers == 0 and self.idle_since is None:
            self.idle_since = asyncio.get_running_loop().time()

    def end_failed(self, sink: Sink) -> None:
        """Called where a sink raised: it alone ends (its client resumes), and the
        error is logged."""
        log.exception("a sink of %s failed; it ends", self.scope)
        self.sinks.discard(sink)
        self.behind.discard(sink)
        sink.end("failed")

    def attached(self) -> list[Sink]:
        """Every sink, handed batches or behind."""
        return [*self.sinks, *self.behind]

    def end_sinks(self, reason: str) -> None:
        """Detach and end every sink: their streams finish and the clients resume."""
        sinks = self.attached()
        self.sinks, self.behind = set(), set()
        for sink in sinks:
            sink.end(reason)

    def since(self, cursor: int) -> list[LogEntry] | None:
        """The events after `cursor`; None when the cursor is older than the window."""
        if self.floor is None or cursor < self.floor:
            return None
        return self._entries[bisect.bisect_right(self._seqs, cursor) :]

    def bytes_after(self, cursor: int) -> int | None:
        """The bytes of the SSE frames of the events after `cursor`; None when the
        cursor is older than the window. Counted once per event, and only for feeds
        that have a sink behind."""
        if self.floor is None or cursor < self.floor:
            return None
        ends, entries = self._frame_ends, self._entries
        total = ends[-1] if ends else 0
        for entry in entries[len(ends) :]:
            total += len(entry.frame)
            ends.append(total)
        first = bisect.bisect_right(self._seqs, cursor)
        if first == len(entries):
            return 0
        before = ends[first - 1] if first else ends[0] - len(entries[0].frame)
        return total - before

    async def _tail(self) -> None:
        with self._bus.subscribe(topic_of(self.scope)) as woken:
            self._woken = woken
            while self.floor is None:
                try:
                    self.floor = self.head = await self._store.last_seq()
                except Exception:
                    log.exception("starting the feed of %s failed; retrying", self.scope)
                    await asyncio.sleep(RETRY_S)
            self.wake_readers()
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
                    self.wake_readers()
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

    def newest_of(self, types: Collection[EventType]) -> int:
        """The seq of the newest entry the feed read of any of `types`; 0 if none."""
        return max((self._newest_of.get(kind, 0) for kind in types), default=0)

    def _keep(self, batch: list[LogEntry]) -> None:
        self._entries.extend(batch)
        self._seqs.extend(entry.seq for entry in batch)
        self._newest_of.update((entry.type, entry.seq) for entry in batch)
        if self.scope.kind is ScopeKind.JOB:
            self.last_status = next(
                (entry for entry in reversed(batch) if entry.changes_status), self.last_status
            )
        excess = len(self._entries) - WINDOW
        if excess > WINDOW // 4:  # trim in chunks: slicing a list is O(n)
            self.floor = self._seqs[excess - 1]
            del self._entries[:excess]
            del self._seqs[:excess]
            del self._frame_ends[:excess]  # all of them, if they reached no further

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

    def wake_readers(self) -> None:
        """Wake every reader waiting on `changed` (news, or the server is stopping)."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
