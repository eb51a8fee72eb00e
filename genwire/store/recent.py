"""The events this process committed lately, so its feeds need not read them back.

On SQLite one writer thread commits, and event ids are allocated in commit order
with no gaps (a rolled-back insert gives its id back). So after each commit the
writer thread adds the committed events here, in order, and a feed woken by that
commit takes its new events from memory instead of a read of the store.

Another process writing the same database (a `genwire worker`) leaves a hole in the
ids held here, which the log notices: it answers only for a stretch it holds whole,
from the reader's cursor on, and the reader goes to the store otherwise. It never
answers for ids past the newest it holds. Not used on PostgreSQL, whose sequences
have gaps.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence

from genwire.models import Event
from genwire.store.entries import LogEntry, Scope, ScopeKind

CAPACITY = 4096  #: events held; older ones are read from the store


class _Held:
    """One committed event, with the keys a scope is matched on."""

    __slots__ = ("entry", "job_id", "project_id", "tenant")

    def __init__(self, event: Event, stored: str) -> None:
        self.tenant = event.tenant
        self.job_id = event.job_id
        self.project_id = event.project_id
        self.entry = LogEntry(event.seq, event.type, event.job_id, stored)

    def key_for(self, kind: ScopeKind) -> str | None:
        if kind is ScopeKind.JOB:
            return self.job_id
        if kind is ScopeKind.TENANT:
            return self.tenant
        return self.project_id


class RecentEvents:
    """Committed events in id order; every id from `_whole_from` to the newest is held."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()  # the writer thread adds, the event loop reads
        self._seqs: list[int] = []
        self._held: list[_Held] = []
        self._whole_from = 0

    def add(self, events: Sequence[Event], payloads: Sequence[str]) -> None:
        """Called by the writer thread once the transaction that appended `events`
        (with their `payloads` as stored) has committed."""
        if not events:
            return
        held = [_Held(event, stored) for event, stored in zip(events, payloads, strict=True)]
        with self._lock:
            for item in held:
                seq = item.entry.seq
                if not self._seqs or seq != self._seqs[-1] + 1:
                    self._whole_from = seq  # a hole: ids someone else committed
                self._seqs.append(seq)
                self._held.append(item)
            excess = len(self._seqs) - self._capacity
            if excess > self._capacity // 4:  # trim in chunks: slicing a list is O(n)
                del self._seqs[:excess]
                del self._held[:excess]
                self._whole_from = max(self._whole_from, self._seqs[0])

    def forget(self) -> None:
        """Hold nothing (after a failure to add): readers go to the store until the
        next commit starts a new stretch."""
        with self._lock:
            self._seqs, self._held = [], []

    def after(self, scope: Scope, cursor: int) -> tuple[list[LogEntry], int] | None:
        """The scope's events after `cursor` and the id through which that answer is
        complete; None when some id after `cursor` is not held here."""
        with self._lock:
            if not self._seqs or cursor + 1 < self._whole_from:
                return None
            newest = self._seqs[-1]
            if cursor >= newest:
                return [], cursor
            held = self._held[bisect.bisect_right(self._seqs, cursor) :]
        kind, key = scope.kind, scope.key
        return [item.entry for item in held if item.key_for(kind) == key], newest
