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
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from genwire.api.requests import settings_of
from genwire.config import Settings
from genwire.delivery.entries import Scope as EventScope
from genwire.delivery.feeds import FeedHub
from genwire.errors import BadRequest
from genwire.models import EventType

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
    raw = request.headers.get("last-event-id") or request.query_params.get(query_name) or ""
    return parse_cursor(raw.strip(), query_name)


def parse_cursor(raw: str, name: str) -> int:
    if raw == "":
        return 0
    if not (raw.isascii() and raw.isdigit() and len(raw.lstrip("0")) <= MAX_CURSOR_DIGITS):
        raise BadRequest(
            f"{name} must be an event id (digits), not {raw[:40]!r}", code="bad-cursor"
        )
    return int(raw)


def keepalive_frame() -> bytes:
    return f": keepalive {datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}\n\n".encode()


class EventStream(Response):
    """An SSE response that owns its sending: bounded writes, prompt disconnects."""

    def __init__(self, frames: AsyncIterator[bytes], send_timeout_s: float) -> None:
        self._frames = frames
        self._send_timeout_s = send_timeout_s
        self.status_code = 200
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pump = asyncio.create_task(self._pump(send))
        disconnect = asyncio.create_task(_until_disconnect(receive))
        try:
            await asyncio.wait({pump, disconnect}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, disconnect):
                task.cancel()
            await asyncio.gather(pump, disconnect, return_exceptions=True)
            await self._frames.aclose()  # type: ignore[attr-defined]
        if pump.done() and not pump.cancelled() and pump.exception() is not None:
            # The client sees a cut stream and resumes; the operator should see why.
            log.error("a stream failed", exc_info=pump.exception())

    async def _pump(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        async for chunk in self._frames:
            try:
                async with asyncio.timeout(self._send_timeout_s):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except TimeoutError:
                # A reader that takes nothing for this long is dropped; it resumes
                # from its cursor. Returning without ending the body closes the socket.
                log.info("dropped a stream whose client stopped reading")
                return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _until_disconnect(receive: Receive) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return


async def stream_frames(
    hub: FeedHub,
    settings: Settings,
    scope: EventScope,
    cursor: int,
    *,
    ends_with: Collection[EventType] = (),
) -> AsyncIterator[bytes]:
    """The frames of one stream from `cursor`: replay, live tail, keepalives; it
    ends after an event of a type in `ends_with` (the last of its scope)."""
    yield f"retry: {settings.retry_ms}\n\n".encode()
    loop = asyncio.get_running_loop()
    closes_at = loop.time() + settings.stream_lifetime_s
    async with hub.follow(scope) as follower:
        while (remaining := closes_at - loop.time()) > 0 and not hub.closing.is_set():
            batch = await follower.next(cursor, min(settings.keepalive_s, remaining))
            if not batch:
                if loop.time() < closes_at and not hub.closing.is_set():
                    yield keepalive_frame()
                continue
            yield b"".join(entry.frame for entry in batch)
            cursor = batch[-1].seq
            if any(entry.type in ends_with for entry in batch):
                return


def event_stream(request: Request, frames: AsyncIterator[bytes]) -> EventStream:
    return EventStream(frames, settings_of(request).stream_send_timeout_s)
