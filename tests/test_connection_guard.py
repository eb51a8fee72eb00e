"""The connection guard on a real server: a request's head and body arrive within
their deadlines or are answered 408, a head over the cap is answered 431, and past
the per-process or per-address cap a new connection is answered 503, while
`/healthz` and other clients go on being served. Streams are never cut by it."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

from genwire.api.guard import ConnectionCensus, ConnectionLimits, connection_limits
from genwire.api.guard.census import ADDRESS, PROCESS
from genwire.config import Settings
from tests.conftest import ServerProcess, ThreadedServer
from tests.waiting import wait_until

LiveServer = Callable[..., ThreadedServer]

#: Deadlines short enough for a test, long enough for a loaded machine to send a
#: whole head in one write well within them.
QUICK = {"head_timeout_s": 1.0, "body_timeout_s": 1.0}
#: Far longer than any deadline above: what a cut connection must not outlive.
READ_CEILING_S = 20.0
ABUSER = "127.0.0.2"  # Linux routes all of 127/8 to loopback: another client address


def address_of(server: ThreadedServer | ServerProcess) -> tuple[str, int]:
    url = httpx.URL(server.url)
    assert url.host is not None
    assert url.port is not None
    return url.host, url.port


def connect(server: ThreadedServer | ServerProcess, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(
        address_of(server), timeout=READ_CEILING_S, source_address=(source, 0)
    )


def head(path: str = "/healthz", *extra: str, method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: genwire.test", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_to_end(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer[9:12])


def problem_of(answer: bytes) -> dict[str, object]:
    head_part, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head_part.lower()
    assert b"x-content-type-options: nosniff" in head_part.lower()
    problem: dict[str, object] = json.loads(body)
    return problem


def healthy(server: ThreadedServer | ServerProcess, source: str = "127.0.0.1") -> bool:
    with connect(server, source) as sock:
        sock.sendall(head("/healthz", "Connection: close"))
        return status_of(read_to_end(sock)) == 200


def census_of(server: ThreadedServer) -> ConnectionCensus:
    census: ConnectionCensus = server.app.state.census
    return census


@contextmanager
def held_sockets() -> Iterator[list[socket.socket]]:
    """A list of connections, each closed at the end."""
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


def test_a_head_that_never_ends_is_answered_408_and_closed(live_server: LiveServer) -> None:
    server = live_server(**QUICK)
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: genwire.test\r\n")
        sock.sendall(b"X-Slow: 1\r\n")  # one more line, and no end of head
        answer = read_to_end(sock)
    assert status_of(answer) == 408
    assert problem_of(answer)["code"] == "head-timeout"
    assert b"connection: close" in answer.lower()
    assert census_of(server).counts["head-timeout"] == 1


def test_a_connection_that_sends_nothing_is_closed_unanswered(live_server: LiveServer) -> None:
    server = live_server(**QUICK)
    with connect(server) as sock:
        assert read_to_end(sock) == b""
    wait_until(lambda: census_of(server).total == 0, "the connection to be released")


def test_a_kept_alive_connection_gets_the_same_deadline_for_its_next_head(
    live_server: LiveServer,
) -> None:
    server = live_server(**QUICK)
    with connect(server) as sock:
        sock.sendall(head("/healthz"))
        first = sock.recv(65536)
        assert status_of(first) == 200
        # The next request's first bytes stop uvicorn's keep-alive timer; the rest
        # never comes.
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        answer = read_to_end(sock)
    assert status_of(answer) == 408


def test_a_body_shorter_than_its_length_is_answered_408_and_no_job_is_made(
    live_server: LiveServer,
) -> None:
    server = live_server(**QUICK)
    with connect(server) as sock:
        sock.sendall(
            head(
                "/api/jobs",
                "Content-Type: application/json",
                "Content-Length: 10",
                method="POST",
            )
            + b'{"'
        )
        answer = read_to_end(sock)
    assert status_of(answer) == 408
    assert problem_of(answer)["code"] == "body-timeout"
    assert httpx.get(f"{server.url}/api/jobs").json()["items"] == []


def test_a_body_sent_slowly_within_its_deadline_is_taken(live_server: LiveServer) -> None:
    server = live_server(head_timeout_s=1.0, body_timeout_s=20.0)
    body = json.dumps({"pipeline": "test.sleeps", "input": {"seconds": 0.1}}).encode()
    with connect(server) as sock:
        sock.sendall(
            head(
                "/api/jobs",
                "Content-Type: application/json",
                f"Content-Length: {len(body)}",
                "Connection: close",
                method="POST",
            )
        )
        for part in (body[:5], body[5:12], body[12:]):
            time.sleep(0.3)  # the head's deadline (1 s) is over by the last part
            sock.sendall(part)
        answer = read_to_end(sock)
    assert status_of(answer) == 201, answer


def test_a_head_over_the_cap_is_answered_431(live_server: LiveServer) -> None:
    server = live_server(max_head_bytes=8192)
    with connect(server) as sock:
        sock.sendall(head("/healthz", "X-Big: " + "a" * 1_000_000))
        answer = read_to_end(sock)
    assert status_of(answer) == 431
    assert problem_of(answer)["code"] == "head-too-large"


@pytest.mark.parametrize("attempt", range(3))
def test_a_client_still_sending_its_huge_head_reads_the_431_not_a_reset(
    live_server: LiveServer, attempt: int
) -> None:
    """Regression: the guard closed at once while the client was still sending, and
    the kernel's reset made the client drop the 431 unread (4 tries in 5)."""
    server = live_server(max_head_bytes=8192)
    with connect(server) as sock:
        sock.sendall(head("/healthz", "X-Big: " + "a" * 4_000_000))
        answer = read_to_end(sock)
    assert status_of(answer) == 431


def test_a_head_over_the_cap_sent_in_parts_is_answered_431(live_server: LiveServer) -> None:
    server = live_server(max_head_bytes=8192)
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: genwire.test\r\n")
        for _ in range(20):
            try:
                sock.sendall(b"X-Part: " + b"b" * 1000 + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break  # cut already
        answer = read_to_end(sock)
    assert status_of(answer) == 431


def test_a_head_under_the_cap_is_served(live_server: LiveServer) -> None:
    server = live_server(max_head_bytes=8192)
    with connect(server) as sock:
        sock.sendall(head("/healthz", "X-Big: " + "a" * 7000, "Connection: close"))
        assert status_of(read_to_end(sock)) == 200


def test_bytes_that_are_not_http_are_answered_400_as_a_problem(live_server: LiveServer) -> None:
    server = live_server()
    with connect(server) as sock:
        sock.sendall(b"NOT HTTP AT ALL\x00\r\n\r\n")
        answer = read_to_end(sock)
    assert status_of(answer) == 400
    assert problem_of(answer)["code"] == "malformed-request"
    assert healthy(server)


def test_past_the_address_cap_a_connection_is_answered_503_and_others_are_served(
    live_server: LiveServer,
) -> None:
    server = live_server(max_connections_per_address=5, head_timeout_s=60.0)
    with held_sockets() as held:
        for _ in range(5):
            held.append(connect(server, ABUSER))
        wait_until(lambda: census_of(server).total == 5, "five connections counted")
        with connect(server, ABUSER) as sock:
            sock.sendall(head("/healthz"))
            answer = read_to_end(sock)
        assert status_of(answer) == 503
        assert b"retry-after: 5" in answer.lower()
        assert problem_of(answer)["code"] == "too-many-connections"
        assert census_of(server).counts[ADDRESS] == 1
        assert healthy(server)  # another address
        held.pop().close()
        assert wait_until(lambda: healthy(server, ABUSER), "the abuser's slot to free")


def test_past_the_process_cap_a_connection_is_answered_503(live_server: LiveServer) -> None:
    server = live_server(max_connections=3, max_connections_per_address=0, head_timeout_s=60.0)
    with held_sockets() as held:
        for _ in range(3):
            held.append(connect(server, ABUSER))
        wait_until(lambda: census_of(server).total == 3, "three connections counted")
        with connect(server) as sock:
            sock.sendall(head("/healthz"))
            assert status_of(read_to_end(sock)) == 503
        assert census_of(server).counts[PROCESS] == 1
    wait_until(lambda: census_of(server).total == 0, "the connections released")
    assert healthy(server)


def test_healthz_is_served_while_one_address_floods_half_sent_heads(
    live_server: LiveServer,
) -> None:
    """A few hundred half-sent requests from one address, past its cap: `/healthz`
    from another address is served throughout, and every flood connection ends."""
    server = live_server(max_connections_per_address=100, head_timeout_s=2.0)
    flood: list[socket.socket] = []
    try:
        for _ in range(300):
            sock = connect(server, ABUSER)
            # Refused at once past the refusals held at a time: the send may fail.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: genwire.test\r\n")
            flood.append(sock)
            if len(flood) % 50 == 0:
                assert healthy(server)
        assert census_of(server).total <= 100
        for sock in flood:
            answer = read_to_end(sock)
            if answer:
                assert status_of(answer) in (408, 503)
    finally:
        for sock in flood:
            sock.close()
    assert healthy(server)
    wait_until(lambda: census_of(server).total == 0, "every flood connection released")


def test_a_stream_outlives_every_deadline(live_server: LiveServer) -> None:
    """Once its head has arrived, nothing in the guard limits how long an answer lasts."""
    server = live_server(head_timeout_s=0.3, body_timeout_s=0.3, keepalive_s=0.2)
    job = httpx.post(
        f"{server.url}/api/jobs", json={"pipeline": "test.sleeps", "input": {"seconds": 30}}
    ).json()
    with connect(server) as sock:
        sock.sendall(head(f"/api/jobs/{job['id']}/events", "Accept: text/event-stream"))
        started = time.monotonic()
        received = b""
        while time.monotonic() - started < 1.5:  # five times either deadline
            data = sock.recv(65536)
            assert data, "the stream was cut"
            received += data
    assert status_of(received) == 200
    assert received.count(b": keepalive") >= 2
    httpx.post(f"{server.url}/api/jobs/{job['id']}/cancel")


def test_the_metrics_count_what_the_guard_cut(live_server: LiveServer) -> None:
    server = live_server(max_head_bytes=4096)
    with connect(server) as sock:
        sock.sendall(head("/healthz", "X-Big: " + "a" * 10_000))
        assert status_of(read_to_end(sock)) == 431
    text = httpx.get(f"{server.url}/metrics").text
    assert 'genwire_connections_cut_total{reason="head-too-large"} 1' in text
    assert "genwire_open_connections " in text


def test_the_caps_derive_from_the_descriptor_limit_unless_set() -> None:
    derived = connection_limits(Settings())
    assert 0 < derived.max_connections_per_address < derived.max_connections
    assert derived.max_connections_per_address == int(derived.max_connections * 0.75)
    given = connection_limits(Settings(max_connections=40, max_connections_per_address=0))
    assert (given.max_connections, given.max_connections_per_address) == (40, 0)


def test_the_census_counts_by_address_and_releases() -> None:
    census = ConnectionCensus(ConnectionLimits(max_connections=3, max_connections_per_address=2))
    assert census.admit("a") is None
    assert census.admit("a") is None
    assert census.admit("a") == ADDRESS
    assert census.admit("b") is None
    assert census.admit("c") == PROCESS
    census.release("a")
    assert census.admit("c") is None
    census.release("a")
    assert "a" not in census.by_address
    assert (census.total, census.counts[ADDRESS], census.counts[PROCESS]) == (2, 1, 1)


def test_genwire_serve_guards_its_connections(
    serve_process: Callable[..., ServerProcess],
) -> None:
    """The command itself, with its flags: 431 past --max-head-size, 408 past
    --head-timeout, 503 past --max-connections-per-address."""
    server = serve_process(
        "--max-head-size", "2048", "--head-timeout", "1", "--max-connections-per-address", "2"
    )
    with connect(server) as sock:
        sock.sendall(head("/healthz", "X-Big: " + "a" * 4000))
        assert status_of(read_to_end(sock)) == 431
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        assert status_of(read_to_end(sock)) == 408
    # The server takes connections in the order they came: the third is refused.
    with connect(server, ABUSER), connect(server, ABUSER), connect(server, ABUSER) as third:
        third.sendall(head("/healthz"))
        assert status_of(read_to_end(third)) == 503
    assert "refused connections: one address holds its cap of 2" in server.log()


@pytest.mark.parametrize("flag", ["--max-head-size", "--head-timeout", "--max-connections"])
def test_the_guard_flags_are_documented(flag: str) -> None:
    from click.testing import CliRunner

    from genwire.cli import main

    result = CliRunner().invoke(main, ["serve", "--help"], terminal_width=200)
    assert flag in result.output
