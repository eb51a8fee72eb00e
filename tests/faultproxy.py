"""A fault-injecting TCP proxy for the tests of the clients, the doctor and the web
page: it forwards 127.0.0.1 connections to a real server and, per new connection and
chosen by the request's target, passes the answer through, cuts it after N bytes,
stalls it without closing, answers `502 Bad Gateway` itself, refuses it with a problem
of its own status and `Retry-After` (a server at a limit), or holds the whole answer
back until upstream closes (a buffering proxy).

Each forwarded request, its body included, is sent upstream with `Connection: close`,
so one connection carries one request and every request is matched against the rules.
The proxy runs in its own thread with its own event loop; rules can be changed while it
runs (they apply to the connections opened afterwards).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

Mode = Literal["pass", "cut", "stall", "502", "refuse", "buffer"]
HEAD_LIMIT = 64 * 1024
BAD_GATEWAY = (
    b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n"
    b"Connection: close\r\n\r\nBad Gateway"
)


@dataclass
class Fault:
    """What to do to requests whose target (path and query) matches `pattern`.

    `after_bytes`: for `cut` and `stall`, how many bytes of the answer get through
    first; from 1 on, the server has handled the whole request by then (it began its
    answer), while a `cut` at 0 may cut the request short too. `times`: how many
    connections it applies to (None: all of them). `status` and `retry_after`: the
    answer of `refuse`, which never reaches the server."""

    mode: Mode
    pattern: str = ""
    after_bytes: int = 0
    times: int | None = None
    status: int = 429
    retry_after: str | None = None

    def matches(self, target: str) -> bool:
        return (self.times is None or self.times > 0) and re.search(
            self.pattern, target
        ) is not None


@dataclass
class Seen:
    """One connection the proxy handled: its request target, what it did to it, and
    when (`time.time()`) its request had come."""

    target: str
    mode: Mode
    forwarded: int = 0  # answer bytes that reached the client
    at: float = field(default_factory=time.time)


@dataclass
class FaultProxy:
    upstream: str
    faults: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        parts = urlsplit(self.upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None
        self.url = ""

    # -- control, from the test's thread ----------------------------------------------
    def set(self, *faults: Fault) -> None:
        """Replace the rules; the first matching rule applies, else pass-through."""
        with self.lock:
            self.faults = list(faults)

    def targets(self, mode: Mode | None = None) -> list[str]:
        with self.lock:
            return [seen.target for seen in self.seen if mode is None or seen.mode == mode]

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self.loop)
        future.result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    # -- inside the proxy's loop --------------------------------------------------------
    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode("latin-1")
            with self.lock:
                fault = self._fault_for(target)
                seen = Seen(target, fault.mode)
                self.seen.append(seen)
            if seen.mode == "502":
                writer.write(BAD_GATEWAY)
                await writer.drain()
                return
            if seen.mode == "refuse":
                # Read the body first: closing on unread bytes would reset the connection.
                await reader.readexactly(_content_length(head))
                writer.write(_refusal(fault))
                await writer.drain()
                return
            up_reader, upstream = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
            upstream.write(_with_connection_close(head))
            await upstream.drain()
            # The request's body follows its head upstream; the client closing its side
            # ends everything.
            client_gone = asyncio.ensure_future(_forward_body(reader, upstream))
            relay = asyncio.ensure_future(self._relay(seen, fault, up_reader, writer))
            try:
                await asyncio.wait({client_gone, relay}, return_when=asyncio.FIRST_COMPLETED)
            finally:  # the proxy stopping cancels this task too: its helpers go with it
                for pending in (client_gone, relay):
                    pending.cancel()
                await asyncio.gather(client_gone, relay, return_exceptions=True)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        except asyncio.CancelledError:
            # The proxy is stopping. Ending quietly, because Python 3.11's start_server
            # logs a handler that ends cancelled as an error in a callback.
            pass
        finally:
            for stream in (writer, upstream):
                if stream is not None:
                    stream.close()
            self.tasks.discard(task)

    def _fault_for(self, target: str) -> Fault:
        """The first rule for a target (pass-through when none), counting the connection
        against its `times`; called under the lock."""
        for fault in self.faults:
            if fault.matches(target):
                if fault.times is not None:
                    fault.times -= 1
                return fault
        return Fault("pass")

    async def _relay(
        self,
        seen: Seen,
        fault: Fault,
        upstream: asyncio.StreamReader,
        client: asyncio.StreamWriter,
    ) -> None:
        if fault.mode == "buffer":
            held = await upstream.read()  # until upstream closes
            client.write(held)
            seen.forwarded = len(held)
            await client.drain()
            return
        limit = fault.after_bytes if fault.mode in ("cut", "stall") else None
        while limit is None or seen.forwarded < limit:
            want = 65536 if limit is None else min(65536, limit - seen.forwarded)
            chunk = await upstream.read(want)
            if not chunk:
                return
            client.write(chunk)
            seen.forwarded += len(chunk)
            await client.drain()
        if fault.mode == "stall":
            await asyncio.Event().wait()  # hold the connection open, forwarding nothing
        # "cut": returning closes both connections mid-answer.


async def _forward_body(client: asyncio.StreamReader, upstream: asyncio.StreamWriter) -> None:
    """Pass on whatever the client sends after the head (a body, by Content-Length or
    chunked) until it closes its side."""
    while chunk := await client.read(65536):
        upstream.write(chunk)
        await upstream.drain()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _refusal(fault: Fault) -> bytes:
    body = json.dumps({"code": "refused", "title": "refused", "status": fault.status}).encode()
    lines = [
        f"HTTP/1.1 {fault.status} Refused",
        "Content-Type: application/problem+json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if fault.retry_after is not None:
        lines.append(f"Retry-After: {fault.retry_after}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _with_connection_close(head: bytes) -> bytes:
    lines = head[:-4].split(b"\r\n")
    kept = [line for line in lines if not line.lower().startswith(b"connection:")]
    return b"\r\n".join([*kept, b"Connection: close"]) + b"\r\n\r\n"
