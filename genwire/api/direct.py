"""Writing a caught-up SSE stream straight to its connection (see `EventStream`).

Through ASGI, every event costs every subscriber a task wake-up, a `send` and a
trip through the HTTP protocol's framing. A stream that has caught up needs none of
that. The feed hands each new batch to a `DirectSink`, which writes the batch's
frames to the socket's transport as one HTTP/1.1 chunk. That chunk is built once
per batch and shared by every sink. The guarantees stay those of `EventStream`
(SPEC §4.6): a reader whose queued bytes stay above the high-water mark for the
send time-out, or pass a hard cap, is dropped at once and resumes from its cursor.
Keepalives and the stream's lifetime come from the hub's tick, not from a timer
per stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import UTC, datetime

from starlette.types import Scope

from genwire.delivery.feeds import LiveBatch
from genwire.models import EventType

#: Set by `GenwireApp` on each HTTP scope: uvicorn's request cycle, when it has one.
CYCLE_KEY = "genwire.cycle"
CHUNK_CACHE_KEY = "http1-chunk"
#: Bytes queued for one client above which it counts as not reading (uvicorn's own
#: high-water mark, where its `send` would start to wait).
HIGH_WATER = 64 * 1024
#: Bytes queued for one client above which it is dropped at once, whatever the time.
HARD_LIMIT = 1024 * 1024

TRANSPORT_CALLS = ("write", "get_write_buffer_size", "abort", "is_closing")

ENDED = "ended"  #: the stream's last event went out
DROPPED = "dropped"  #: the client stopped reading; the connection was aborted
LIFETIME = "lifetime"  #: the stream reached its maximum lifetime


def direct_transport(scope: Scope) -> asyncio.Transport | None:
    """The connection's transport, if frames can be written to it as chunks of the
    response already started; None where only ASGI `send` can be used."""
    cycle = scope.get(CYCLE_KEY)
    if cycle is None or getattr(cycle, "chunked_encoding", None) is not True:
        return None
    transport = getattr(cycle, "transport", None)
    # uvloop's transports do not subclass asyncio.Transport: check what is used.
    usable = all(hasattr(transport, name) for name in TRANSPORT_CALLS)
    return transport if usable else None


def chunk(data: bytes) -> bytes:
    """`data` as one chunk of a chunked HTTP/1.1 body."""
    return b"%x\r\n%b\r\n" % (len(data), data)


_keepalive_cache: tuple[int, bytes] = (0, b"")


def keepalive_frame() -> bytes:
    """`: keepalive <time>`, formatted once per second however many streams send it."""
    global _keepalive_cache
    now = datetime.now(UTC)
    second = int(now.timestamp())
    if _keepalive_cache[0] != second:
        _keepalive_cache = (
            second,
            f": keepalive {now.strftime('%Y-%m-%dT%H:%M:%SZ')}\n\n".encode(),
        )
    return _keepalive_cache[1]


class DirectSink:
    """One caught-up stream, written to by its feed; `done` answers why it ended."""

    def __init__(
        self,
        transport: asyncio.Transport,
        cursor: int,
        *,
        ends_with: Collection[EventType],
        keepalive_s: float,
        send_timeout_s: float,
        closes_at: float,
        now: float,
    ) -> None:
        self.transport = transport
        self.cursor = cursor
        self.ends_with = ends_with
        self.keepalive_s = keepalive_s
        self.send_timeout_s = send_timeout_s
        self.closes_at = closes_at
        self.last_write = now
        self.wrote = False  #: since the last tick (cheaper than reading a clock per event)
        self.stuck_since: float | None = None
        self.done: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def deliver(self, batch: LiveBatch) -> None:
        if self.done.done():
            return
        end = batch.end_of(self.ends_with)
        if self.cursor < batch.first_seq and (end is None or end == batch.last_seq):
            data = batch.cache.get(CHUNK_CACHE_KEY)
            if data is None:
                data = batch.cache[CHUNK_CACHE_KEY] = chunk(
                    b"".join(entry.frame for entry in batch.entries)
                )
        else:
            entries = [e for e in batch.after(self.cursor) if end is None or e.seq <= end]
            if not entries:
                return
            data = chunk(b"".join(entry.frame for entry in entries))
        self.transport.write(data)
        self.wrote = True
        self.cursor = batch.last_seq if end is None else end
        if end is not None:
            self._finish(ENDED)
        elif self.transport.get_write_buffer_size() > HARD_LIMIT:
            self._drop()

    def tick(self, now: float) -> None:
        if self.done.done():
            return
        if self.transport.is_closing():
            self._finish(DROPPED)
            return
        if self.wrote:
            self.wrote = False
            self.last_write = now
        if now >= self.closes_at:
            self._finish(LIFETIME)
            return
        if self.transport.get_write_buffer_size() > HIGH_WATER:
            if self.stuck_since is None:
                self.stuck_since = now
            elif now - self.stuck_since >= self.send_timeout_s:
                self._drop()
                return
        else:
            self.stuck_since = None
        if now - self.last_write >= self.keepalive_s:
            self.transport.write(chunk(keepalive_frame()))
            self.last_write = now

    def end(self, reason: str) -> None:
        self._finish(reason)

    def _drop(self) -> None:
        # Abort, not close: close waits for queued bytes a stalled client never takes.
        self.transport.abort()
        self._finish(DROPPED)

    def _finish(self, reason: str) -> None:
        if not self.done.done():
            self.done.set_result(reason)
