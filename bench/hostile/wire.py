"""Raw HTTP/1.1 on asyncio sockets, as a hostile client writes it: any bytes, any
pace, from any loopback source address; every wait bounded."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from dataclasses import dataclass

#: Linux routes all of 127/8 to loopback: each "client address" is one of these.
HONEST_ADDRESS = "127.0.0.1"


@dataclass(frozen=True)
class Answer:
    """What came back on a connection: a status line, a close, or nothing in time."""

    status: int | None  #: the status of the answer's head, if one came
    after_s: float  #: from the end of sending to the answer, the close or the give-up
    closed: bool  #: the server closed the connection
    reset: bool = False  #: the server reset it (an answer sent just before is lost)
    body: bytes = b""  #: what of the body came with the head

    def describe(self, waited_s: float) -> str:
        if self.status is not None:
            return f"{self.status} after {self.after_s:.1f} s"
        if self.reset:
            return f"reset without an answer after {self.after_s:.1f} s"
        if self.closed:
            return f"closed without an answer after {self.after_s:.1f} s"
        return f"no answer in {waited_s:g} s"


async def connect(
    host: str, port: int, source: str | None = None, timeout_s: float = 10.0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection, from `source` (an address of 127/8) when given."""
    local = (source, 0) if source else None
    return await asyncio.wait_for(asyncio.open_connection(host, port, local_addr=local), timeout_s)


def abort(writer: asyncio.StreamWriter) -> None:
    """Close with a reset (SO_LINGER 0): no TIME_WAIT is left holding the source port,
    so thousands of connections can be opened again at once in the next run."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def status_of(head: bytes) -> int | None:
    """The status code of `HTTP/1.1 NNN …`, or None."""
    parts = head.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return None


async def read_answer(reader: asyncio.StreamReader, timeout_s: float) -> Answer:
    """Reads until an answer's head (and what body came with it), the server's
    close, or `timeout_s`."""
    started = time.monotonic()
    received = b""
    closed = reset = False
    deadline = started + timeout_s
    while b"\r\n\r\n" not in received:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            chunk = await asyncio.wait_for(reader.read(65536), remaining)
        except TimeoutError:
            break
        except OSError:
            reset = True
            break
        if not chunk:
            closed = True
            break
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return Answer(status_of(head), time.monotonic() - started, closed, reset, body)


async def exchange(
    host: str,
    port: int,
    request: bytes,
    timeout_s: float = 10.0,
    source: str | None = None,
) -> Answer:
    """Sends `request` as it is (a partial one too) and reads what comes back within
    `timeout_s`; a server that stops reading mid-send is still read from."""
    reader, writer = await connect(host, port, source, timeout_s)
    try:
        writer.write(request)
        with contextlib.suppress(ConnectionError, OSError):
            await asyncio.wait_for(writer.drain(), timeout_s)
        return await read_answer(reader, timeout_s)
    finally:
        abort(writer)


async def healthz(host: str, port: int, timeout_s: float) -> float | None:
    """`GET /healthz` on a new connection from the honest address: its time when it
    answered 200 within `timeout_s`, else None."""
    started = time.monotonic()
    request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    try:
        answer = await asyncio.wait_for(
            exchange(host, port, request, timeout_s, HONEST_ADDRESS), timeout_s
        )
    except OSError:  # TimeoutError among them
        return None
    return time.monotonic() - started if answer.status == 200 else None
