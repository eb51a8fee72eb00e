"""A request's connection, held past its ASGI app: the one module of genwire that
reaches into uvicorn's and Starlette's private parts (the fast path's door,
`genwire.api.fastpath`, says why).

uvicorn's httptools protocol keeps, per request, a *cycle*: its transport, its
keep-alive flag and the hooks it calls when the response is complete or the
connection is lost. `note_cycle` finds it behind ASGI `send` and notes it in the
scope; `HeldConnection` then writes the rest of a response (the next chunks of a
stream, or a parked long-poll's whole answer) after the app returned, and gives the
connection back to uvicorn for its next request. Where any of this is missing
(another server, h11, TLS for the direct socket write), the callers fall back to
plain ASGI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import sys
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Protocol

from starlette._utils import get_route_path
from starlette.types import Scope, Send
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from genwire.api.security import NOSNIFF

#: Set on each HTTP scope by `note_cycle`: uvicorn's request cycle, when it has one.
CYCLE_KEY = "genwire.cycle"
LAST_CHUNK = b"0\r\n\r\n"

TRANSPORT_CALLS = ("write", "get_write_buffer_size", "abort", "is_closing", "close")
#: What a sink needs of uvicorn's request cycle to finish the response on its own.
CYCLE_FIELDS = ("transport", "on_response", "response_complete", "keep_alive", "message_event")
#: What a sink needs besides, to write a whole answer as uvicorn would.
ANSWER_FIELDS = ("default_headers", "access_log", "access_logger", "scope")

#: Transports that are a plain TCP socket underneath (uvloop's, asyncio's), which a
#: sink may write to directly; never a TLS one, whose socket carries ciphertext.
PLAIN_TRANSPORTS = frozenset({"TCPTransport", "_SelectorSocketTransport"})

#: SO_LINGER on, with no time: closing the socket resets the connection at once.
RESET_ON_CLOSE = struct.pack("ii", 1, 0)

#: Starlette's route path (the path within `root_path`), as its router matches it.
route_path = get_route_path


def note_cycle(scope: Scope, send: Send) -> None:
    """Note uvicorn's request cycle in an HTTP scope, where `send` is its bound method."""
    cycle = getattr(send, "__self__", None)
    if cycle is not None and hasattr(cycle, "transport"):
        scope[CYCLE_KEY] = cycle


class HeldConnection:
    """The connection of an HTTP/1.1 request on uvicorn's httptools protocol, which a
    sink keeps after the app returned: to write the next chunks of a chunked response
    uvicorn started (a stream), or the whole answer (a parked long-poll)."""

    __slots__ = ("_complete", "_cycle", "_on_drain", "_parser", "_protocol", "fd", "transport")

    def __init__(self, cycle: Any, protocol: Any, transport: asyncio.Transport) -> None:
        self._cycle = cycle
        self._protocol = protocol
        self.transport = transport
        self._complete: Any = None
        self._parser: Any = None
        self._on_drain = False  #: whether the protocol's `resume_writing` is ours
        #: the socket's descriptor, where `write` may use it (see `write`); else -1
        self.fd = plain_socket_fd(transport)

    def write(self, data: bytes, limit: int = sys.maxsize) -> int:
        """Write `data` to the open transport: the bytes the transport then holds,
        or -1 if the client is gone, or if the transport would then hold more than
        `limit` bytes (nothing more is written; the caller drops the client).

        While the transport holds no bytes of its own, this writes to the socket
        itself: it is what the transport's `write` does then, without its
        bookkeeping, a microsecond per subscriber per event. What the socket does
        not take goes to the transport, after everything written before. No loop
        callback runs in between, so the descriptor cannot have been closed and
        reused: a transport that is not closing has its socket open.
        """
        transport = self.transport
        if transport.is_closing():
            return -1
        queued = transport.get_write_buffer_size()
        if self.fd < 0 or queued:
            if queued + len(data) > limit:
                return -1
            transport.write(data)
            return transport.get_write_buffer_size()
        try:
            sent = os.write(self.fd, data)
        except BlockingIOError:
            sent = 0
        except OSError:  # reset, or a broken pipe: the transport learns it later
            return -1
        if sent == len(data):
            return 0
        if len(data) - sent > limit:
            return -1
        transport.write(data[sent:])
        return transport.get_write_buffer_size()

    def limit_unsent_in_kernel(self, size: int) -> None:
        """Let the kernel take no more than about `size` bytes for the client beyond
        what it has sent (TCP_NOTSENT_LOWAT, where there is one; bytes in flight are
        not limited). By default it takes megabytes for a client that does not read
        (~2.7 MB on loopback): memory past any bound of the process's, and thousands
        of writes before the process even sees that the client is behind."""
        option = getattr(socket, "TCP_NOTSENT_LOWAT", None)
        sock = self.transport.get_extra_info("socket")
        if option is not None and sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, option, size)

    def call_on_drain(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever the transport, having held more than its
        high-water mark, has drained to its low-water mark (after uvicorn's own
        handler, which keeps its flow control right), until the connection goes
        back to uvicorn (`finish`)."""
        protocol = self._protocol
        protocol.resume_writing = _Drained(protocol.resume_writing, callback)
        self._on_drain = True

    def abort(self) -> None:
        """Cut the connection at once, with a reset. A plain close (which the
        transport's `abort` is, underneath) leaves what the kernel still holds for the
        client to be sent first: to a client that does not read, that is up to
        megabytes per connection, kept until the peer time-out, and the client sees
        no end. A reset frees it now; the client resumes from its cursor."""
        transport = self.transport
        if transport.is_closing():
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
        transport.abort()

    def take(self, sink: HeldSink) -> None:
        """The sink writes alone from now on. uvicorn is told the response is complete,
        so that the app may return without uvicorn closing the connection. A lost
        connection then reaches the sink through the cycle's message event, and any
        bytes the client sends through the protocol's parser: nothing may be
        answered on this connection before the stream ends, so they cut it."""
        cycle = self._cycle
        self._complete = cycle.on_response  # uvicorn replaces it once the app returns
        cycle.response_started = True  # a long-poll's answer is the sink's to write
        cycle.response_complete = True
        cycle.message_event = _Hangup(sink)
        self._parser = self._protocol.parser
        self._protocol.parser = _Hangup(sink)

    def head(self, status: int, headers: bytes, content_length: int) -> bytes:
        """A response's head as uvicorn would write it (its default headers, and
        `connection: close` when the connection ends), logged as uvicorn logs it."""
        cycle = self._cycle
        if cycle.access_log and cycle.access_logger.isEnabledFor(logging.INFO):
            scope = cycle.scope
            cycle.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(scope),
                scope["method"],
                get_path_with_query_string(scope),
                scope["http_version"],
                status,
            )
        close = b"" if cycle.keep_alive else b"connection: close\r\n"
        length = b"content-length: %d\r\n\r\n" % content_length
        return _head_start(status, cycle.default_headers) + headers + close + length

    def finish(self, last: bytes = LAST_CHUNK) -> None:
        """Write the response's last bytes (by default, the end of a chunked body) and
        give the connection back to uvicorn (keep-alive)."""
        if self.transport.is_closing():
            return
        if self.write(last) < 0:
            self.transport.abort()  # gone: uvicorn hears of it and lets go
            if self._complete is not None:
                self._complete()  # the request still counts (`--limit-max-requests`)
            return
        self._protocol.parser = self._parser
        if self._on_drain:
            self._on_drain = False
            del self._protocol.resume_writing  # uvicorn's own method again
        if not self._cycle.keep_alive:
            self.transport.close()
        if self._complete is not None:
            self._complete()  # as uvicorn does: it counts the request, then reads on


def plain_socket_fd(transport: asyncio.BaseTransport) -> int:
    """The descriptor of a plain TCP transport's socket, or -1 (TLS, no socket, or
    Windows, whose sockets are not file descriptors)."""
    if sys.platform == "win32" or type(transport).__name__ not in PLAIN_TRANSPORTS:
        return -1
    sock = transport.get_extra_info("socket")
    return -1 if sock is None else int(sock.fileno())


_head_starts: dict[int, tuple[object, bytes]] = {}


def _head_start(status: int, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """The status line, uvicorn's default headers (`server`, `date`) and the app's
    own (`genwire.api.security`), built once per status for each list of uvicorn's
    it makes (a new one every second)."""
    cached = _head_starts.get(status)
    if cached is not None and cached[0] is default_headers:
        return cached[1]
    start = b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode()),
            *(b"%s: %s\r\n" % pair for pair in default_headers),
            b"%s: %s\r\n" % NOSNIFF,
        )
    )
    _head_starts[status] = (default_headers, start)
    return start


class _Hangup:
    """Stands in for the cycle's message event and the protocol's parser while a
    sink holds the connection: uvicorn sets the one when the connection is lost,
    and feeds the other what the client sends. Either cuts the stream (the client
    resumes from its cursor)."""

    __slots__ = ("_sink",)

    def __init__(self, sink: HeldSink) -> None:
        self._sink = sink

    def set(self) -> None:
        self._sink.drop()

    def feed_data(self, data: bytes) -> None:
        self._sink.drop()


class _Drained:
    """Stands in for the protocol's `resume_writing` while a sink holds the
    connection (`HeldConnection.call_on_drain`)."""

    __slots__ = ("_callback", "_resume")

    def __init__(self, resume: Callable[[], None], callback: Callable[[], None]) -> None:
        self._resume = resume
        self._callback = callback

    def __call__(self) -> None:
        self._resume()
        self._callback()


class HeldSink(Protocol):
    def drop(self) -> None:
        """The client went away, or sent bytes nothing may answer yet: cut."""


def held_connection(scope: Scope) -> HeldConnection | None:
    """The connection, if a sink can write the response's next chunks and finish it;
    None where only ASGI `send` can be used (another server, h11, a body that is not
    chunked)."""
    cycle = scope.get(CYCLE_KEY)
    if cycle is None or getattr(cycle, "chunked_encoding", None) is not True:
        return None
    return _held(cycle)


def unanswered_connection(scope: Scope) -> HeldConnection | None:
    """The connection, if the request has been read whole, nothing was answered on it
    yet, and a sink can write the whole answer; None where only ASGI `send` can be
    used."""
    cycle = scope.get(CYCLE_KEY)
    if cycle is None or getattr(cycle, "response_started", True) is not False:
        return None
    # A body still to come would reach the stand-in parser and cut the connection.
    if getattr(cycle, "more_body", True) is not False:
        return None
    if not _has(cycle, ANSWER_FIELDS):
        return None
    return _held(cycle)


def _held(cycle: Any) -> HeldConnection | None:
    if not _has(cycle, CYCLE_FIELDS):
        return None
    # The protocol, through its bound `on_response_complete`: its parser is swapped.
    protocol = getattr(cycle.on_response, "__self__", None)
    if protocol is None or not hasattr(protocol, "parser"):
        return None
    transport = cycle.transport
    # uvloop's transports do not subclass asyncio.Transport: check what is used.
    if not _has(transport, TRANSPORT_CALLS):
        return None
    return HeldConnection(cycle, protocol, transport)


_fits: dict[tuple[type, tuple[str, ...]], bool] = {}


def _has(thing: object, names: tuple[str, ...]) -> bool:
    """Whether `thing` has every attribute in `names`, looked up once per class: every
    request asks it of objects of the same two or three classes."""
    key = (type(thing), names)
    fits = _fits.get(key)
    if fits is None:
        fits = _fits[key] = all(hasattr(thing, name) for name in names)
    return fits


def chunk(data: bytes) -> bytes:
    """`data` as one chunk of a chunked HTTP/1.1 body."""
    return b"%x\r\n%b\r\n" % (len(data), data)
