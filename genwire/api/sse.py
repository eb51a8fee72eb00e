"""Server-Sent Events (SPEC §4): the job, tenant and project streams.

Each stream sends `retry:` first, then the events after its cursor, then the live
tail, with a `: keepalive` comment whenever nothing else was sent for a keepalive
interval. Disconnects are noticed at once (the ASGI `http.disconnect`), not at the
next write; a client that stops reading is dropped when a write waits longer than
the send time-out, and resumes from its cursor; every stream ends after its
maximum lifetime, and the client simply resumes.

    stream ─► feed.follow(scope) ─► next(cursor) ─► frames ─► send (bounded wait)
       ▲                                                          │
       └──────── http.disconnect / lifetime / slow client ────────┘  feed released
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from genwire.api.fastpath import (
    HeldConnection,
    hand_off_stream,
    held_connection,
    keepalive_frame,
)
from genwire.api.limits import ConnectionSlot, OpenConnections, client_address, connections_of
from genwire.api.problems import problem_from_error
from genwire.api.requests import query_value, settings_of
from genwire.config import Settings
from genwire.delivery import FeedHub
from genwire.errors import BadRequest, TooManyRequests
from genwire.models import EventType
from genwire.store.entries import Scope as EventScope

log = logging.getLogger("genwire.sse")

MAX_CURSOR_DIGITS = 18  #: a BIGINT holds every 18-digit number

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # Tell nginx and friends not to buffer the stream (the seeds' lost-events bug).
    (b"x-accel-buffering", b"no"),
]


def hub_of(request: Request) -> FeedHub:
    hub: FeedHub = request.app.state.hub
    return hub


def resume_cursor(request: Request, query_name: str = "last_event_id") -> int:
    """Where a stream resumes: `Last-Event-ID` wins over the query (SPEC §4.2); 0 if none.

    A browser reconnects with the header while its URL still carries the query it
    first opened with, so the header is the newer of the two.
    """
    raw = request.headers.get("last-event-id") or query_value(request, query_name) or ""
    return parse_cursor(raw.strip(), query_name)


def parse_cursor(raw: str, name: str) -> int:
    """The event id `raw` renders; 0 if empty. Ids are zero-padded, so leading zeros,
    however many, render the same id: only the digits after them are read (int()
    refuses a string of more than 4 300 digits)."""
    if raw == "":
        return 0
    significant = raw.lstrip("0")
    if not (raw.isascii() and raw.isdigit() and len(significant) <= MAX_CURSOR_DIGITS):
        raise BadRequest(
            f"{name} must be an event id (digits), not {raw[:40]!r}", code="bad-cursor"
        )
    return int(significant or "0")


class EventStream(Response):
    """An SSE response that owns its sending: bounded writes, prompt disconnects.

    It replays the events after its cursor through ASGI `send`. Once it has caught
    up, and the server lets it write to the connection itself (uvicorn's httptools
    protocol, chunked HTTP/1.1), it hands the connection to its feed and returns:
    the feed writes each new batch to every such stream, encoded once, and ends the
    response (`genwire.api.fastpath.hand_off_stream`).

    It counts as an open connection of its tenant and client address from its start
    to its end (SPEC §3 limits; 429 past one), through ASGI or the fast path.
    """

    def __init__(self, plan: StreamPlan) -> None:
        self._plan = plan
        self.status_code = 200
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Counted here, where it is sure to be counted out: the response runs.
        try:
            slot = self._plan.connections.open(self._plan.tenant, client_address(scope))
        except TooManyRequests as error:
            await problem_from_error(error)(scope, receive, send)
            return
        with slot:
            await self._serve(scope, receive, send, slot)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, slot: ConnectionSlot
    ) -> None:
        pump = asyncio.create_task(self._pump(scope, send, slot))
        disconnect = asyncio.create_task(_until_disconnect(receive))
        try:
            await asyncio.wait({pump, disconnect}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, disconnect):
                task.cancel()
            await asyncio.gather(pump, disconnect, return_exceptions=True)
        if pump.done() and not pump.cancelled() and pump.exception() is not None:
            # The client sees a cut stream and resumes; the operator should see why.
            log.error("a stream failed", exc_info=pump.exception())

    async def _pump(self, scope: Scope, send: Send, slot: ConnectionSlot) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        connection = held_connection(scope)
        if not await self._stream(send, slot, connection) and connection is not None:
            # A reset: left to uvicorn, the socket would be closed, which waits for
            # the queued bytes (the transport's, the kernel's) the client never takes.
            connection.abort()

    async def _stream(
        self, send: Send, slot: ConnectionSlot, connection: HeldConnection | None
    ) -> bool:
        """The stream through ASGI until it ends or its feed takes it over; False
        when the client took nothing for the send time-out."""
        plan = self._plan
        if not await self._send(send, f"retry: {plan.settings.retry_ms}\n\n".encode()):
            return False
        loop = asyncio.get_running_loop()
        closes_at = loop.time() + plan.settings.stream_lifetime_s
        cursor = plan.cursor
        hub = plan.hub
        async with hub.follow(plan.scope) as follower:
            if connection is not None:
                # A new feed first finds its floor; until then no stream can attach.
                await follower.started(plan.settings.keepalive_s)
            probed = False  # whether the store was asked since the last batch
            while (remaining := closes_at - loop.time()) > 0 and not hub.closing.is_set():
                wait = min(plan.settings.keepalive_s, remaining)
                if connection is not None:
                    if hand_off_stream(
                        hub,
                        follower,
                        connection,
                        cursor,
                        ends_with=plan.ends_with,
                        keepalive_s=plan.settings.keepalive_s,
                        send_timeout_s=plan.settings.stream_send_timeout_s,
                        closes_at=closes_at,
                        on_end=slot.release,
                    ):
                        slot.handed_off = True
                        return True  # the feed ends the response
                    if not probed:
                        # Not caught up as far as the feed knows: ask the store at once
                        # rather than wait a keepalive for news that may not come.
                        wait, probed = 0.0, True
                batch = await follower.next(cursor, wait)
                if not batch:
                    idle = wait > 0 and loop.time() < closes_at and not hub.closing.is_set()
                    if idle and not await self._send(send, keepalive_frame()):
                        return False
                    continue
                if not await self._send(send, b"".join(entry.frame for entry in batch)):
                    return False
                cursor, probed = batch[-1].seq, False
                if any(entry.type in plan.ends_with for entry in batch):
                    break
        return await self._send(send, b"", more_body=False)

    async def _send(self, send: Send, chunk: bytes, *, more_body: bool = True) -> bool:
        """Send through ASGI; False when the client took nothing for the send time-out.
        Such a reader is dropped (cut, or where the connection is out of reach,
        closed: the body is never ended) and resumes from its cursor."""
        try:
            async with asyncio.timeout(self._plan.settings.stream_send_timeout_s):
                await send({"type": "http.response.body", "body": chunk, "more_body": more_body})
        except TimeoutError:
            log.info("dropped a stream whose client stopped reading")
            return False
        return True


async def _until_disconnect(receive: Receive) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return


@dataclass(frozen=True)
class StreamPlan:
    """What one stream carries: a scope from a cursor, ending after an event of a
    type in `ends_with` (the last of its scope), if any."""

    hub: FeedHub
    settings: Settings
    connections: OpenConnections
    tenant: str  #: whose open connection it counts as
    scope: EventScope
    cursor: int
    ends_with: Collection[EventType] = ()


def event_stream(
    request: Request,
    tenant: str,
    scope: EventScope,
    cursor: int,
    *,
    ends_with: Collection[EventType] = (),
) -> EventStream:
    plan = StreamPlan(
        hub_of(request),
        settings_of(request),
        connections_of(request),
        tenant,
        scope,
        cursor,
        ends_with,
    )
    return EventStream(plan)
