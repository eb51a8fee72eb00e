"""Caught-up SSE streams, written to by their feed (see `EventStream`).

Through ASGI, every event costs every subscriber a task wake-up, a `send` and a
trip through the HTTP protocol's framing. A stream that has caught up needs none of
that. `hand_off_stream` gives its connection to a `StreamSink` and its ASGI app
returns, freeing the app's tasks and coroutines (most of an idle stream's memory):
the feed then hands each new batch to the sink, which writes the batch's frames to
the socket's transport as one HTTP/1.1 chunk, built once per batch and shared by
every sink.

The guarantees stay those of `EventStream` (SPEC §4.6): a reader whose queued bytes
stay above the high-water mark for the send time-out, or pass a hard cap, is dropped
at once and resumes from its cursor. Keepalives and the stream's lifetime come from
the hub's tick, not from a timer per stream. A sink that ends cleanly (the stream's
last event, its lifetime, shutdown) writes the body's last chunk and gives the
connection back to uvicorn for its next request.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime

from genwire.api.fastpath.connection import HeldConnection, chunk
from genwire.delivery import Feed, FeedHub, Follower, LiveBatch
from genwire.models import EventType

#: Bytes queued for one client above which it counts as not reading (uvicorn's own
#: high-water mark, where its `send` would start to wait).
HIGH_WATER = 64 * 1024
#: Bytes queued for one client above which it is dropped at once, whatever the time.
HARD_LIMIT = 1024 * 1024

ENDED = "ended"  #: the stream's last event went out
DROPPED = "dropped"  #: the client went away or stopped reading
LIFETIME = "lifetime"  #: the stream reached its maximum lifetime


def hand_off_stream(
    hub: FeedHub,
    follower: Follower,
    connection: HeldConnection,
    cursor: int,
    *,
    ends_with: Collection[EventType],
    keepalive_s: float,
    send_timeout_s: float,
    closes_at: float,
    on_end: Callable[[], None],
) -> bool:
    """Give a stream's connection to a `StreamSink` at `cursor`: True when the sink
    now writes the rest of the response, and calls `on_end` once when it ends; False
    when the stream has not caught up with the feed yet (it goes on through ASGI).
    Attaching and taking the connection happen in one step of the loop: no event,
    disconnect or tick falls between."""
    sink = StreamSink(
        connection,
        follower.feed,
        cursor,
        ends_with=ends_with,
        keepalive_s=keepalive_s,
        send_timeout_s=send_timeout_s,
        closes_at=closes_at,
        now=asyncio.get_running_loop().time(),
        on_end=on_end,
    )
    if not hub.attach(follower, sink, cursor):
        return False
    connection.take(sink)
    return True


def keepalive_frame() -> bytes:
    """`: keepalive <time>`, formatted once per second however many streams send it."""
    return _keepalive_at(int(time.time()))


@functools.lru_cache(maxsize=1)
def _keepalive_at(second: int) -> bytes:
    stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f": keepalive {stamp}\n\n".encode()


class StreamSink:
    """One caught-up stream, written to by its feed; it detaches itself when it ends
    (`ended` says why), and calls `on_end` then, once (the connection's count)."""

    __slots__ = (
        "closes_at",
        "connection",
        "cursor",
        "ended",
        "ends_with",
        "feed",
        "keepalive_s",
        "last_write",
        "on_end",
        "send_timeout_s",
        "stuck_since",
        "transport",
        "wrote",
    )

    def __init__(
        self,
        connection: HeldConnection,
        feed: Feed,
        cursor: int,
        *,
        ends_with: Collection[EventType],
        keepalive_s: float,
        send_timeout_s: float,
        closes_at: float,
        now: float,
        on_end: Callable[[], None],
    ) -> None:
        self.connection = connection
        self.transport = connection.transport  #: at hand: the fan-out uses it per event
        self.feed = feed
        self.cursor = cursor
        self.ends_with = ends_with
        self.keepalive_s = keepalive_s
        self.send_timeout_s = send_timeout_s
        self.closes_at = closes_at
        self.last_write = now
        self.wrote = False  #: since the last tick (cheaper than reading a clock per event)
        self.stuck_since: float | None = None
        self.ended: str | None = None
        self.on_end = on_end

    def deliver(self, batch: LiveBatch) -> None:
        if self.ended is not None:
            return
        end = batch.end_of(self.ends_with)
        if self.cursor < batch.first_seq and (end is None or end == batch.last_seq):
            data = batch.encoded
            if data is None:
                data = batch.encoded = chunk(b"".join(entry.frame for entry in batch.entries))
        else:
            entries = [e for e in batch.after(self.cursor) if end is None or e.seq <= end]
            if not entries:
                return
            data = chunk(b"".join(entry.frame for entry in entries))
        queued = self.connection.write(data)
        if queued < 0:  # the transport is closing, or the client is gone
            self.drop()
            return
        self.wrote = True
        self.cursor = batch.last_seq if end is None else end
        if end is not None:
            self.end(ENDED)
        elif queued > HARD_LIMIT:
            self.drop()

    def tick(self, now: float) -> None:
        if self.ended is not None:
            return
        if self.transport.is_closing():
            self.end(DROPPED)
            return
        if self.wrote:
            self.wrote = False
            self.last_write = now
        if now >= self.closes_at:
            self.end(LIFETIME)
            return
        if self.transport.get_write_buffer_size() > HIGH_WATER:
            if self.stuck_since is None:
                self.stuck_since = now
            elif now - self.stuck_since >= self.send_timeout_s:
                self.drop()
                return
        else:
            self.stuck_since = None
        if now - self.last_write >= self.keepalive_s:
            self.transport.write(chunk(keepalive_frame()))
            self.last_write = now

    def end(self, reason: str) -> None:
        """Stop, and end the response unless the client is gone; the client resumes."""
        if self.ended is not None:
            return
        if reason != DROPPED and self.transport.get_write_buffer_size() > HIGH_WATER:
            self.drop()  # not reading: ending the body would wait on it forever
            return
        self.ended = reason
        self.on_end()  # first: nothing after it may keep the connection counted
        self.feed.detach(self)
        if reason != DROPPED:
            self.connection.finish()

    def drop(self) -> None:
        """Cut the connection; the client resumes from its cursor."""
        # Abort, not close: close waits for queued bytes a stalled client never takes.
        if not self.transport.is_closing():
            self.transport.abort()
        self.end(DROPPED)
