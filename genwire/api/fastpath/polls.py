"""Long-polls parked on their feed, which answers them (see `api.streams.poll_job`).

A long-poll that finds nothing after its cursor must wait. Waiting in its own task
costs the task, its timers and, for the answer, the whole ASGI response path, and a
poller that keeps up pays it at every answer. A poll that has caught up instead
hands its connection to a `ParkedPoll` on its feed (`park_poll`), and its app
returns `PARKED`, which sends nothing: the feed
hands the poll each new batch as it does a stream's sink, and the poll writes its
whole answer, head and body in one write, once its gathering time is up (at once
for the end of a job) or its wait is over. The connection then goes back to uvicorn
for the poller's next request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection

import orjson
from starlette.responses import Response
from starlette.types import Receive, Send
from starlette.types import Scope as ASGIScope

from genwire.api.fastpath.connection import HeldConnection, unanswered_connection
from genwire.delivery import READ_LIMIT, SINK_TICK_S, Feed, FeedHub, Follower, LiveBatch
from genwire.models import EventType, format_event_id
from genwire.store.entries import LogEntry

#: The answer's JSON body for its events and the cursor they end at.
AnswerBody = Callable[[list[LogEntry], int], bytes]

log = logging.getLogger("genwire.delivery")

#: A wait ending within this gets its timer now; later ones at a later tick (two
#: ticks: one may come late on a busy loop).
TIMER_HORIZON_S = 2 * SINK_TICK_S

HEADERS = b"content-type: application/json\r\ncache-control: no-store\r\n"


def park_poll(
    scope: ASGIScope,
    hub: FeedHub,
    follower: Follower,
    cursor: int,
    *,
    wait_s: float,
    gather_s: float,
    ends_with: Collection[EventType],
    body: AnswerBody,
    on_end: Callable[[], None],
) -> bool:
    """Leave a poll that has caught up to its feed, which answers it: True when the
    request's app may return `PARKED` (the poll calls `on_end` once, when answered or
    dropped); False where it cannot (not caught up as far as
    the feed knows, a request body still to come, or a server whose connection the
    poll cannot write to): the poll then waits in its request."""
    connection = unanswered_connection(scope)
    if connection is None:
        return False
    poll = ParkedPoll(
        connection,
        follower.feed,
        cursor,
        body=body,
        wait_s=wait_s,
        gather_s=gather_s,
        ends_with=ends_with,
        on_end=on_end,
    )
    if not hub.attach(follower, poll, cursor):
        return False
    connection.take(poll)
    poll.start()
    return True


class _Parked(Response):
    """What a parked poll's request returns: the poll writes the answer itself."""

    def __init__(self) -> None:
        self.background = None

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        return


PARKED: Response = _Parked()


def poll_body(entries: list[LogEntry], last: int, extra: dict[str, object]) -> bytes:
    """A long-poll answer's JSON: the events as stored, the cursor they end at and
    `extra` (a job poll's status)."""
    tail = orjson.dumps({"last_event_id": format_event_id(last) if last else None, **extra})
    return b'{"events":[' + _joined(entries) + b"]," + tail[1:]


class _JoinedEvents:
    """The events of the last answer, joined: made once for the run of parked polls a
    feed answers with the same events, one after another (each entry is encoded once
    anyway)."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: tuple[LogEntry, LogEntry, int, bytes] | None = None

    def __call__(self, entries: list[LogEntry]) -> bytes:
        if not entries:
            return b""
        last = self.last  # one read: another server's thread may replace it
        if (
            last is not None
            and last[0] is entries[0]
            and last[1] is entries[-1]
            and last[2] == len(entries)
        ):
            return last[3]
        joined = ",".join(entry.json for entry in entries).encode()
        self.last = (entries[0], entries[-1], len(entries), joined)
        return joined


_joined = _JoinedEvents()


class ParkedPoll:
    """One waiting long-poll, written to by its feed; it answers once, then detaches."""

    __slots__ = (
        "_timer",
        "body",
        "connection",
        "cursor",
        "deadline",
        "done",
        "ends_with",
        "entries",
        "feed",
        "gather_s",
        "on_end",
        "transport",
    )

    def __init__(
        self,
        connection: HeldConnection,
        feed: Feed,
        cursor: int,
        *,
        body: AnswerBody,
        wait_s: float,
        gather_s: float,
        ends_with: Collection[EventType],
        on_end: Callable[[], None],
    ) -> None:
        self.connection = connection
        self.transport = connection.transport
        self.feed = feed
        self.cursor = cursor
        self.body = body
        self.gather_s = gather_s
        self.ends_with = ends_with
        self.entries: list[LogEntry] = []
        self.done = False
        self.on_end = on_end
        self.deadline = asyncio.get_running_loop().time() + wait_s
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Once attached. A wait longer than a tick gets its timer from the hub's tick
        (`tick`) as its end nears: most polls are answered well before, so they
        never make one."""
        if self.deadline - asyncio.get_running_loop().time() <= TIMER_HORIZON_S:
            self._answer_at(self.deadline)

    def _answer_at(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(when, self.answer)

    def deliver(self, batch: LiveBatch) -> None:
        if self.done:
            return
        if self.entries:
            # Gathering: a later batch of the feed is all new (one per event, at every
            # parked poll: kept short).
            self.entries += batch.entries
        else:
            fresh = batch.after(self.cursor)
            if not fresh:
                return
            self.entries = list(fresh)
            if self.gather_s > 0:
                self._gather(batch)
        if (
            self.gather_s <= 0
            or len(self.entries) >= READ_LIMIT
            or batch.end_of(self.ends_with) is not None
        ):
            self.answer()

    def _gather(self, batch: LiveBatch) -> None:
        """Answer after the gathering time, with what follows the first event: one
        timer for all the polls whose first event came in this batch (at every
        event, at every poller that keeps up), unless the wait ends sooner."""
        loop = asyncio.get_running_loop()
        if loop.time() + self.gather_s > self.deadline:
            self._answer_at(self.deadline)
            return
        _rounds.join(self, batch, loop)

    def tick(self, now: float) -> None:
        if self.done:
            return
        if self.transport.is_closing():
            self.drop()
        elif self._timer is None and self.deadline - now <= TIMER_HORIZON_S:
            self._answer_at(self.deadline)

    def end(self, reason: str) -> None:
        """The feed is going away (shutdown, or it failed): answer with what came."""
        self.answer()

    def answer(self) -> None:
        if self.done:
            return
        self._stop()
        try:
            body = self.body(self.entries, self.entries[-1].seq if self.entries else self.cursor)
        except Exception:
            # Never leave the client waiting on a held connection: it asks again.
            log.exception("answering a long-poll of %s failed", self.feed.scope)
            self.transport.abort()
            return
        self.connection.finish(self.connection.head(200, HEADERS, len(body)) + body)

    def drop(self) -> None:
        """The client went away: no answer; it asks again from its cursor."""
        if self.done:
            return
        self._stop()
        if not self.transport.is_closing():
            self.transport.abort()

    def _stop(self) -> None:
        """The one end point of every way a poll ends."""
        self.done = True
        self.on_end()
        if self._timer is not None:
            self._timer.cancel()
        self.feed.detach(self)


class _Round:
    """Parked polls whose first new event came in the same batch: answered together."""

    __slots__ = ("batch", "gather_s", "polls")

    def __init__(self, loop: asyncio.AbstractEventLoop, batch: LiveBatch, gather_s: float) -> None:
        self.batch = batch
        self.gather_s = gather_s
        self.polls: list[ParkedPoll] = []
        loop.call_later(gather_s, self.answer)

    def answer(self) -> None:
        polls, self.polls = self.polls, []
        _rounds.forget(self)  # nor its polls' connections kept past their answers
        for poll in polls:
            try:
                poll.answer()  # nothing for those answered already (a job's end, a drop)
            except Exception:
                log.exception("answering a long-poll of %s failed", poll.feed.scope)
                poll.drop()


class _Rounds:
    """The round of the batch being handed out. A feed hands a batch to all of its
    sinks in one step of its loop, so the polls that start gathering at that batch
    come here one after another, and only the latest round can be theirs."""

    __slots__ = ("latest",)

    def __init__(self) -> None:
        self.latest: _Round | None = None

    def join(self, poll: ParkedPoll, batch: LiveBatch, loop: asyncio.AbstractEventLoop) -> None:
        round_ = self.latest  # one read: another server's thread may replace it
        if round_ is None or round_.batch is not batch or round_.gather_s != poll.gather_s:
            round_ = self.latest = _Round(loop, batch, poll.gather_s)
        round_.polls.append(poll)

    def forget(self, round_: _Round) -> None:
        if self.latest is round_:
            self.latest = None


_rounds = _Rounds()
