"""Caught-up SSE streams, written to by their feed (see `EventStream`).

Through ASGI, every event costs every subscriber a task wake-up, a `send` and a
trip through the HTTP protocol's framing. A stream that has caught up needs none of
that. `hand_off_stream` gives its connection to a `StreamSink` and its ASGI app
returns, freeing the app's tasks and coroutines (most of an idle stream's memory):
the feed then hands each new batch to the sink, which writes the batch's frames to
the socket's transport as one HTTP/1.1 chunk, built once per batch and shared by
every sink.

The guarantees stay those of `EventStream` (SPEC §4.6): a reader whose unsent bytes
stay above the high-water mark for the send time-out, or would pass a hard cap, is
dropped at once (reset) and resumes from its cursor. What a client has not taken
is bounded where it would pile up:

- in the kernel, to KERNEL_UNSENT (TCP_NOTSENT_LOWAT), not the megabytes it takes
  by default for a client that does not read;
- in the process: once a write leaves bytes in the transport, the client is
  behind, and the sink steps out of the fan-out (`Feed.fall_behind`). Writing on
  would cost a write request per batch per client (uvloop's: ~700 bytes each,
  whatever the chunk's size) and the fan-out's time. At each tick the sink looks
  again: its client is dropped once what it has not taken, in the transport and in
  the feed's memory after its cursor, passes HARD_LIMIT (or the feed's memory no
  longer reaches back to its cursor). Once the transport drains (`drained`), or is
  found empty at a tick, the sink writes what follows its cursor, HIGH_WATER at a
  time, and steps back in when it has caught up.

Keepalives and the stream's lifetime come from the hub's tick, not from a timer per
stream. A sink that ends cleanly (the stream's last event, its lifetime, shutdown)
writes the body's last chunk and gives the connection back to uvicorn for its next
request.
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
from genwire.store.entries import LogEntry

#: Bytes queued for one client above which it counts as not reading (uvicorn's own
#: high-water mark, where its `send` would start to wait).
HIGH_WATER = 64 * 1024
#: Bytes one client may be behind (in its transport, and in its feed's memory after
#: its cursor) past which it is dropped, whatever the time; no write takes it past.
HARD_LIMIT = 1024 * 1024
#: Unsent bytes the kernel may take for a held stream's client, beyond those in flight.
KERNEL_UNSENT = 128 * 1024

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
    connection.limit_unsent_in_kernel(KERNEL_UNSENT)
    connection.call_on_drain(sink.drained)
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
        "behind",
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
        #: out of the fan-out: the client has not taken all it was sent
        self.behind = False

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
        queued = self.connection.write(data, HARD_LIMIT)
        if queued < 0:  # gone, closing, or past the cap
            self.drop()
            return
        self.wrote = True
        self.cursor = batch.last_seq if end is None else end
        if end is not None:
            self.end(ENDED)
        elif queued:
            self.fall_behind()

    def fall_behind(self) -> None:
        """The socket did not take all of the last write: leave the fan-out until the
        client has taken it (`tick`)."""
        self.behind = True
        self.feed.fall_behind(self)

    def drained(self) -> None:
        """The transport, past its high-water mark, drained: the client reads, and one
        behind catches up at the pace it reads. Called by the transport from within
        its own write handling, where cutting the connection is not safe: the sink
        writes on in a callback of its own."""
        if self.behind and self.ended is None:
            asyncio.get_running_loop().call_soon(self._catch_up_if_behind)

    def _catch_up_if_behind(self) -> None:
        if self.behind and self.ended is None:
            self._catch_up()

    def tick(self, now: float) -> None:
        if self.ended is not None:
            return
        if self.transport.is_closing():
            self.end(DROPPED)
            return
        if self.behind and not self._look_behind():
            return
        if self.wrote:
            self.wrote = False
            self.last_write = now
        if now >= self.closes_at:
            self.end(LIFETIME)
            return
        if self.unsent() > HIGH_WATER:
            if self.stuck_since is None:
                self.stuck_since = now
            elif now - self.stuck_since >= self.send_timeout_s:
                self.drop()
                return
        else:
            self.stuck_since = None
        # A client behind is sent bytes as soon as it takes them: it is not idle.
        if not self.behind and now - self.last_write >= self.keepalive_s:
            queued = self.connection.write(chunk(keepalive_frame()))
            if queued < 0:
                self.drop()
                return
            self.last_write = now
            if queued:
                self.fall_behind()

    def unsent(self) -> int:
        """Bytes the client has not taken: its transport's, and, while it is behind,
        those of the events after its cursor."""
        queued = self.transport.get_write_buffer_size()
        return queued + (self.feed.bytes_after(self.cursor) or 0) if self.behind else queued

    def _look_behind(self) -> bool:
        """At a tick, for a client behind: drop it once it is behind by more than
        HARD_LIMIT, or by more than the feed keeps; write on once its transport is
        empty (a slow reader that did not fill it past its high-water mark, whose
        draining would have called `drained`), or to end its stream. False when the
        stream ended."""
        queued = self.transport.get_write_buffer_size()
        owed = self.feed.bytes_after(self.cursor)
        if owed is None or queued + owed > HARD_LIMIT:
            self.drop()
            return False
        if queued:
            if not (self.ends_with and self.feed.newest_of(self.ends_with) > self.cursor):
                return True  # the client has yet to take what it was sent
            if queued + owed > HIGH_WATER:
                self.drop()  # the stream is over, and ending it would wait on the client
                return False
        return self._catch_up()

    def _catch_up(self) -> bool:
        """Write what follows the cursor, HIGH_WATER at a time, until the transport holds
        more than HIGH_WATER (its draining calls `drained`), and step back into the
        fan-out once it is all written and the transport is empty. False when the
        stream ended."""
        entries = self.feed.since(self.cursor)
        if entries is None:  # behind by more than the feed keeps
            self.drop()
            return False
        queued = self.transport.get_write_buffer_size()
        while entries:
            piece = self._piece(entries)
            entries = entries[len(piece) :]
            queued = self.connection.write(chunk(b"".join(entry.frame for entry in piece)))
            if queued < 0:
                self.drop()
                return False
            self.wrote = True
            self.cursor = piece[-1].seq
            if piece[-1].type in self.ends_with:
                self.end(ENDED)
                return False
            if queued > HIGH_WATER:
                return True
        if not queued:
            self.behind = False
            self.feed.rejoin(self)
        return True

    def _piece(self, entries: list[LogEntry]) -> list[LogEntry]:
        """The first of `entries`, up to HIGH_WATER bytes and through the stream's end."""
        size = 0
        for count, entry in enumerate(entries):
            if count and size + len(entry.frame) > HIGH_WATER:
                return entries[:count]
            size += len(entry.frame)
            if entry.type in self.ends_with:
                return entries[: count + 1]
        return entries

    def end(self, reason: str) -> None:
        """Stop, and end the response unless the client is gone; the client resumes."""
        if self.ended is not None:
            return
        # Events a client behind was not sent yet stay unsent: it resumes from its cursor.
        if reason != DROPPED and self.transport.get_write_buffer_size() > HIGH_WATER:
            self.drop()  # not reading: ending the body would wait on it forever
            return
        self.ended = reason
        self.on_end()  # first: nothing after it may keep the connection counted
        self.feed.detach(self)
        if reason != DROPPED:
            self.connection.finish()

    def drop(self) -> None:
        """Cut the connection (a reset: see `HeldConnection.abort`); the client
        resumes from its cursor."""
        self.connection.abort()
        self.end(DROPPED)
