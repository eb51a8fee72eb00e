"""Reading a scope's events after a cursor, for feeds and their readers: from what
this process committed lately where that answers, else from the store."""

from __future__ import annotations

from genwire.store import Store
from genwire.store.entries import LogEntry, Scope

READ_LIMIT = 500  #: events read from the store at once


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
