"""What the wire tests share: a live server and clients of it, SSE readers and raw
streams, long-polls (parked, raw), and waiting for a job's state (`wait_for`; for a
bare condition, `tests.waiting`). Test modules import these from here, never from one
another."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from genwire.api import create_app
from genwire.api.fastpath import ParkedPoll
from genwire.config import Settings
from genwire.delivery import Feed
from genwire.store.entries import Scope, ScopeKind
from tests import pipelines as test_pipelines
from tests.conftest import ThreadedServer
from tests.waiting import eventually

LiveServer = Callable[..., ThreadedServer]


TERMINAL_TYPES = frozenset({"job-completed", "job-failed", "job-cancelled"})


TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


#: Bytes of kernel buffer on each side of a stalled connection (the kernel doubles it).
SMALL_BUFFER = 4096


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    data: dict[str, Any]

    @classmethod
    def of(cls, data: dict[str, Any]) -> Event:
        return cls(data["id"], data["type"], data)


def event_from_block(block: str) -> Event:
    """An SSE block of exactly one `id:`, `event:` and `data:` line, whose JSON
    carries the same id and type."""
    fields: dict[str, str] = {}
    for line in block.split("\n"):
        name, separator, value = line.partition(": ")
        assert separator, f"not a field line: {line!r} in {block!r}"
        assert name not in fields, f"{name} twice in {block!r}"
        fields[name] = value
    assert fields.keys() == {"id", "event", "data"}, block
    data = json.loads(fields["data"])
    assert data["id"] == fields["id"], block
    assert data["type"] == fields["event"], block
    return Event.of(data)


def request_bytes(url: str, path: str, headers: Mapping[str, str] | None = None) -> bytes:
    target = httpx.URL(url)
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {target.host}:{target.port}",
        "Accept: text/event-stream",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class RawStream:
    """One hand-written HTTP/1.1 GET on a plain connection: the status line and
    headers, then the body as its bytes arrive, de-chunked and cut into SSE blocks."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        status: int,
        headers: dict[str, str],
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.status = status
        self.headers = headers
        self.body = bytearray()  #: every body byte received so far, de-chunked
        self._unsplit = b""
        self._ended = False

    @classmethod
    async def open(cls, url: str, path: str, headers: Mapping[str, str] | None = None) -> RawStream:
        target = httpx.URL(url)
        reader, writer = await asyncio.open_connection(target.host, target.port)
        writer.write(request_bytes(url, path, headers))
        return await cls.start(reader, writer)

    @classmethod
    async def start(cls, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> RawStream:
        """Read the response head of a request already sent."""
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        except BaseException:
            await close_writer(writer)
            raise
        status_line, *header_lines = head.removesuffix("\r\n\r\n").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return cls(reader, writer, int(status_line.split()[1]), headers)

    async def next_chunk(self) -> bytes | None:
        """The next piece of the body as the server sent it; None at its end."""
        if self._ended:
            return None
        if self.headers.get("transfer-encoding") == "chunked":
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")
                self._ended = True
                return None
            piece = (await self._reader.readexactly(size + 2))[:-2]
        else:
            self._ended = True
            length = int(self.headers.get("content-length", "0"))
            if not length:
                return None
            piece = await self._reader.readexactly(length)
        self.body += piece
        return piece

    async def next_block(self) -> str | None:
        """The next SSE block (an event, a comment, the retry), or None at the end."""
        while b"\n\n" not in self._unsplit:
            piece = await self.next_chunk()
            if piece is None:
                assert self._unsplit == b"", f"the body ended inside a block: {self._unsplit!r}"
                return None
            self._unsplit += piece
        block, self._unsplit = self._unsplit.split(b"\n\n", 1)
        return block.decode()

    async def next_event(self) -> Event | None:
        """The next event, past comments and `retry:`; None at the end of the body."""
        while (block := await self.next_block()) is not None:
            if not block.startswith((":", "retry:")):
                return event_from_block(block)
        return None

    async def read_events(self, count: int | None = None) -> list[Event]:
        """`count` events, or every event up to the end of the body."""
        events: list[Event] = []
        while count is None or len(events) < count:
            event = await self.next_event()
            if event is None:
                break
            events.append(event)
        return events

    async def close(self) -> None:
        await close_writer(self._writer)


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


def client_of(server: ThreadedServer, api_key: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.AsyncClient(base_url=server.url, timeout=30, headers=headers)


def hub_readers(server: ThreadedServer) -> int:
    """The streams and long-polls the server is serving (its thread may be resizing
    the dict of feeds while this one sums it: then look again)."""
    while True:
        with contextlib.suppress(RuntimeError):
            readers: int = server.app.state.hub.readers
            return readers


async def create_job(client: httpx.AsyncClient, pipeline: str, **inputs: Any) -> str:
    response = await client.post("/api/jobs", json={"pipeline": pipeline, "input": inputs})
    assert response.status_code == 201, response.text
    job_id: str = response.json()["id"]
    return job_id


async def finished_job(client: httpx.AsyncClient, pipeline: str, **inputs: Any) -> str:
    """Create a job and return its id once it has ended."""
    response = await client.post(
        "/api/jobs", json={"pipeline": pipeline, "input": inputs}, headers={"Prefer": "wait=60"}
    )
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] in TERMINAL_STATUSES, job
    job_id: str = job["id"]
    return job_id


async def job_snapshot(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200, response.text
    snapshot: dict[str, Any] = response.json()
    return snapshot


async def wait_for(
    client: httpx.AsyncClient,
    job_id: str,
    accept: Callable[[dict[str, Any]], bool],
    timeout: float = 30.0,
) -> dict[str, Any]:
    """The job's snapshot, once `accept` takes it."""
    return await eventually(
        lambda: job_snapshot(client, job_id),
        f"job {job_id} to reach the expected state",
        until=accept,
        timeout=timeout,
    )


async def idle_running_job(client: httpx.AsyncClient) -> tuple[str, str]:
    """A `test.sleeps` job inside its phase, appending nothing for 30 s; and its cursor."""
    job_id = await create_job(client, "test.sleeps", seconds=30)
    job = await wait_for(
        client, job_id, lambda j: j["status"] == "running" and j["phase"] == "work"
    )
    return job_id, job["last_event_id"]


async def cancel(client: httpx.AsyncClient, job_id: str) -> None:
    response = await client.post(f"/api/jobs/{job_id}/cancel")
    assert response.status_code in (202, 409), response.text


async def read_events(
    client: httpx.AsyncClient,
    path: str,
    *,
    last_event_id: str | None = None,
    params: Mapping[str, str] | None = None,
    until: Callable[[list[Event]], bool] | None = None,
) -> list[Event]:
    """The events of one SSE response, read with httpx-sse, until the server ends it
    or `until(events so far)` holds."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    events: list[Event] = []
    async with aconnect_sse(client, "GET", path, headers=headers, params=params) as source:
        assert source.response.status_code == 200, await source.response.aread()
        async for sse in source.aiter_sse():
            if sse.data == "":
                # httpx-sse hands out the opening `retry:` as an event; an EventSource
                # dispatches no event without data (HTML, "dispatch the event").
                assert sse.retry is not None, sse
                continue
            data = sse.json()
            assert (sse.id, sse.event) == (data["id"], data["type"]), sse
            events.append(Event.of(data))
            if until is not None and until(events):
                break
    return events


async def all_events(client: httpx.AsyncClient, job_id: str) -> list[Event]:
    """The whole stream of a finished job, from the beginning to the server's end."""
    return await read_events(client, f"/api/jobs/{job_id}/events")


def assert_problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status
    assert problem["type"]
    assert problem["code"]


def direct_sinks(server: ThreadedServer) -> int:
    """Streams the feeds write to themselves (see `genwire.api.fastpath`)."""
    _, sinks, _ = server.app.state.hub.census_from_another_thread()
    return int(sinks)


@contextlib.contextmanager
def serving_with_small_buffers(settings: Settings) -> Iterator[ThreadedServer]:
    """A live server with `settings` whose accepted sockets have a small send buffer
    (they inherit SO_SNDBUF on Linux)."""
    server = ThreadedServer(
        create_app(settings, test_pipelines.test_registry()), settings.peer_timeout_s
    )
    server.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    with server:
        yield server


def stalled_subscriber(server: ThreadedServer, path: str) -> socket.socket:
    """A connection that asks for `path` with a small receive buffer, then reads nothing."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    sock.settimeout(10)
    sock.connect(server.sock.getsockname())
    sock.sendall(request_bytes(server.url, path))
    return sock


def server_end_established(server: ThreadedServer, client: socket.socket) -> bool:
    """Whether the server still holds its end of `client`'s connection open (Linux:
    the kernel's table of IPv4 TCP sockets, addresses and states in hex)."""
    server_port = server.sock.getsockname()[1]
    client_port = client.getsockname()[1]
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = row.split()[1:4]
        if (int(local.split(":")[1], 16), int(remote.split(":")[1], 16)) == (
            server_port,
            client_port,
        ):
            return state == "01"  # TCP_ESTABLISHED
    return False


async def poll(
    client: httpx.AsyncClient, job_id: str, after: str | None, wait: float
) -> dict[str, Any]:
    response = await client.get(
        f"/api/jobs/{job_id}/poll", params={"after": after or "", "wait": str(wait)}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def poll_all(client: httpx.AsyncClient, after: str | None, wait: float) -> dict[str, Any]:
    response = await client.get("/api/poll", params={"after": after or "", "wait": str(wait)})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


ORIGIN = "http://page.example"


#: A client's read time-out where an answer is due at once (or at a short wait's
#: end): generous for a noisy machine, far below ENDLESS_GATHER_S and the waits.
AT_ONCE_S = 20.0


def serve(live_server: LiveServer, way: str = "parked", **overrides: Any) -> ThreadedServer:
    """A live server whose polls wait `way`; a job still running at its end (a test
    that failed) gets half a second, not the default grace."""
    overrides.setdefault("shutdown_grace_s", 0.5)
    if way == "in-request":
        overrides["cors_origins"] = (ORIGIN,)
    return live_server(**overrides)


def feed_of(server: ThreadedServer, scope: Scope) -> Feed | None:
    feed: Feed | None = server.app.state.hub.live_feed(scope)
    return feed


def job_scope(job_id: str) -> Scope:
    return Scope(ScopeKind.JOB, job_id)


def parked_polls(server: ThreadedServer, scope: Scope) -> int:
    """The polls parked on the scope's feed (the server's thread may be changing the
    set of sinks while this one copies it: then look again)."""
    feed = feed_of(server, scope)
    if feed is None:
        return 0
    while True:
        with contextlib.suppress(RuntimeError):
            return sum(isinstance(sink, ParkedPoll) for sink in list(feed.sinks))


async def warm_feed(server: ThreadedServer, scope: Scope) -> Feed:
    """The scope's feed once it knows where it starts (a poll of it was answered
    already): only then can a poll that has caught up park on it."""

    def started() -> bool:
        feed = feed_of(server, scope)
        return feed is not None and feed.floor is not None

    await eventually(started, f"the feed of {scope} started")
    feed = feed_of(server, scope)
    assert feed is not None
    return feed


async def warm_job_feed(
    server: ThreadedServer, client: httpx.AsyncClient, job_id: str, cursor: str
) -> Feed:
    assert (await poll(client, job_id, cursor, 0))["events"] == []
    return await warm_feed(server, job_scope(job_id))


async def idle_job_on_warm_feed(
    server: ThreadedServer, client: httpx.AsyncClient
) -> tuple[str, str]:
    """A running job that appends nothing, and its cursor, on a started feed (where
    a poll from that cursor can park)."""
    job_id, cursor = await idle_running_job(client)
    await warm_job_feed(server, client, job_id, cursor)
    return job_id, cursor


@dataclass
class RawAnswer:
    status_line: str
    header_lines: list[str]
    headers: dict[str, str]
    body: bytes

    @property
    def status(self) -> int:
        return int(self.status_line.split()[1])

    def json(self) -> Any:
        return json.loads(self.body)


class RawConnection:
    """One kept-alive connection: requests written by hand, answers read by their
    `content-length` (so a wrong one shows in the next answer on the connection)."""

    def __init__(self, url: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.url = httpx.URL(url)
        self.reader = reader
        self.writer = writer

    def send(self, path: str, headers: Mapping[str, str] | None = None) -> None:
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {self.url.host}:{self.url.port}",
            "Accept: application/json",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    async def answer(self) -> RawAnswer:
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status_line, *header_lines = head.removesuffix("\r\n\r\n").split("\r\n")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, separator, value = line.partition(":")
            assert separator, f"not a header line: {line!r}"
            assert name.strip().lower() not in headers, f"{name} twice in {head!r}"
            headers[name.strip().lower()] = value.strip()
        assert "transfer-encoding" not in headers, head
        body = await self.reader.readexactly(int(headers["content-length"]))
        return RawAnswer(status_line, header_lines, headers, body)

    async def rest(self) -> bytes:
        """Whatever comes until the server ends the connection."""
        with contextlib.suppress(ConnectionError):
            return await self.reader.read()
        return b""


@contextlib.asynccontextmanager
async def raw_connection(server: ThreadedServer) -> AsyncIterator[RawConnection]:
    target = httpx.URL(server.url)
    reader, writer = await asyncio.open_connection(target.host, target.port)
    try:
        yield RawConnection(server.url, reader, writer)
    finally:
        await close_writer(writer)


def poll_path(job_id: str, after: str, wait: float) -> str:
    return f"/api/jobs/{job_id}/poll?after={after}&wait={wait:g}"


async def queued_behind_a_blocker(
    client: httpx.AsyncClient, steps: int = 100, step_ms: float = 100
) -> tuple[str, str, str]:
    """On a one-worker server: a `test.sleeps` job holding the worker, and a
    `demo.synthetic` job queued behind it, which appends an event every `step_ms`
    once the blocker is cancelled; the blocker, the job, and the job's cursor."""
    blocker, _ = await idle_running_job(client)
    created = await client.post(
        "/api/jobs",
        json={"pipeline": "demo.synthetic", "input": {"steps": steps, "step_ms": step_ms}},
    )
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["status"] == "queued", job
    return blocker, job["id"], job["last_event_id"]


@contextlib.asynccontextmanager
async def caught_up_streams(
    server: ThreadedServer, client: httpx.AsyncClient, count: int
) -> AsyncIterator[tuple[str, list[RawStream]]]:
    """`count` raw streams of an idle running job, each handed off to its sink."""
    job_id, _ = await idle_running_job(client)
    path = f"/api/jobs/{job_id}/events"
    streams = [await RawStream.open(server.url, path) for _ in range(count)]
    try:
        await eventually(lambda: direct_sinks(server) == count, f"{count} stream(s) caught up")
        yield job_id, streams
    finally:
        for stream in streams:
            await stream.close()
