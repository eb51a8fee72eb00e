"""uvicorn's httptools protocol, with the guard's deadlines, head cap and
connection caps (the package's docstring says why).

The hooks are the protocol's own: `connection_made`/`connection_lost` count the
connection, `data_received` measures a head before the parser sees it, and the
parser's `on_headers_complete`/`on_message_complete` say where a request stands.
One timer at most runs per connection: the head's deadline, armed at connect and
whenever a head arrives in parts, or the body's, armed when a body arrives in
parts; a request that comes in one read arms none.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from genwire.api.guard.census import (
    ADDRESS,
    BODY_TIMEOUT,
    HEAD_TIMEOUT,
    HEAD_TOO_LARGE,
    MAX_REFUSED_OPEN,
    ConnectionCensus,
)
from genwire.api.problems import problem_body
from genwire.api.security import NOSNIFF

#: How long a refused connection may take to send the head its 503 answers.
REFUSED_HEAD_WAIT_S = 2.0
#: A refused client may try again after this long.
REFUSED_RETRY_AFTER_S = 5

#: How long a cut connection goes on being read (and what it sends thrown away)
#: after its answer, before it is closed: closing on bytes still arriving sends a
#: reset, which makes the client drop the answer unread.
LINGER_S = 2.0

_HEAD = "head"
_BODY = "body"
_LINGER = "linger"


def guarded_http(census: ConnectionCensus) -> type[asyncio.Protocol]:
    """The protocol class for uvicorn's `Config(http=…)`, counting in `census`."""
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), {"census": census})


class GuardedHttpProtocol(HttpToolsProtocol):
    census: ConnectionCensus  # set on the subclass `guarded_http` makes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._address: str | None = None  #: set while the connection counts
        self._refused = False
        self._head_bytes = 0  #: of the head being read
        self._heads = 0  #: heads read whole on this connection
        self._in_body = False
        self._draining = False  #: answered and cut: what comes is thrown away
        self._timer: asyncio.TimerHandle | None = None
        self._timer_for = _HEAD

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else ""
        refusal = self.census.admit(address)
        if refusal is None:
            self._address = address
            self._arm(_HEAD, self.census.limits.head_timeout_s)
            return
        if self.census.refused_open >= MAX_REFUSED_OPEN:
            transport.abort()
            return
        # Answered once its head is read, as any request: an answer written before the
        # request arrives is lost to the reset that closing on unread bytes causes.
        self.census.refused_open += 1
        self._refused = True
        self.app = _too_many_connections(refusal == ADDRESS)
        self._arm(_HEAD, REFUSED_HEAD_WAIT_S)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._address is not None:
            self.census.release(self._address)
            self._address = None
        elif self._refused:
            self.census.refused_open -= 1
            self._refused = False
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._draining:
            return
        if not self._in_body:
            room = self.census.limits.max_head_bytes - self._head_bytes
            if len(data) > room:
                heads = self._heads
                super().data_received(data[:room])
                if self.transport.is_closing():  # a bad request, or a held stream cut
                    return
                if self._heads == heads:  # the head goes on past the cap
                    self._cut(HEAD_TOO_LARGE, 431, answer=not self._answering())
                    return
                data = data[room:]
                if not data:
                    return
            else:
                self._head_bytes += len(data)
        super().data_received(data)
        if self._timer is None and not self.transport.is_closing():
            if self._in_body:
                self._arm(_BODY, self.census.limits.body_timeout_s)
            elif self._head_bytes and not self._answering():
                self._arm(_HEAD, self.census.limits.head_timeout_s)

    def on_headers_complete(self) -> None:
        self._heads += 1
        self._head_bytes = 0
        self._in_body = True
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        self._disarm()
        super().on_message_complete()

    def _answering(self) -> bool:
        """Whether an answer to an earlier request is still being written (a head
        that then arrives waits its turn without a deadline, as pipelining does)."""
        return self.cycle is not None and not self.cycle.response_complete

    def _arm(self, phase: str, delay: float) -> None:
        self._disarm()
        self._timer_for = phase
        self._timer = self.loop.call_later(delay, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self._timer_for == _LINGER:
            self.transport.abort()  # the client neither closed nor read its answer
            return
        if self.transport.is_closing():
            return
        if self._timer_for == _BODY:
            # Unless the app answered without waiting for the whole body.
            self._cut(BODY_TIMEOUT, 408, answer=not self.cycle.response_started)
        elif self._refused:
            self.transport.close()  # counted when it was refused
        elif self._answering():
            return
        elif self._head_bytes:
            self._cut(HEAD_TIMEOUT, 408)
        else:
            # Nothing of a request came: an idle or preconnected socket, not a client
            # to answer (a browser retries a request on a 408 it did not expect).
            self.census.note(HEAD_TIMEOUT)
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes that are not HTTP, as genwire answers: a problem,
        with the headers every answer carries."""
        self._answer_and_linger(self._answer(400, "malformed-request", msg))

    def _cut(self, kind: str, status: int, *, answer: bool = True) -> None:
        """Answer `status` and close the connection; the app, if one is reading the
        body, hears that the client is gone."""
        self.census.note(kind)
        self._disarm()
        if answer:
            self._answer_and_linger(
                self._answer(status, kind, _DETAILS[kind] % self.census.limit_of(kind))
            )
        else:
            self.transport.close()

    def _answer_and_linger(self, answer: bytes) -> None:
        """Write `answer`, end the sending side, and read on for `LINGER_S`: a client
        still sending (a head over the cap) then reads the answer, not a reset."""
        self.transport.write(answer)
        self._draining = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._arm(_LINGER, LINGER_S)

    def _answer(self, status: int, code: str, detail: str) -> bytes:
        body = problem_body(status, code, detail)
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _PHRASES[status])]
        head += [b"%s: %s\r\n" % pair for pair in self.server_state.default_headers]
        head += [
            b"content-type: application/problem+json\r\n",
            b"%s: %s\r\n" % NOSNIFF,
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        return b"".join(head) + body


_PHRASES = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
_DETAILS = {
    HEAD_TIMEOUT: "the request head did not arrive whole within %g s",
    BODY_TIMEOUT: "the request body did not arrive whole within %g s",
    HEAD_TOO_LARGE: "the request head is over %d bytes",
}


def _too_many_connections(by_address: bool) -> Any:
    """The app a refused connection's request gets: 503 and `connection: close`."""
    detail = (
        "this address holds as many connections as one address may"
        if by_address
        else "the server holds as many connections as it may"
    )
    body = problem_body(503, "too-many-connections", detail)
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", b"%d" % len(body)),
        (b"retry-after", b"%d" % REFUSED_RETRY_AFTER_S),
        (b"connection", b"close"),
        NOSNIFF,
    ]

    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return refuse
