"""`genwire doctor` against a healthy real server, through a buffering proxy, through
a proxy refusing the event streams, and against nothing at all."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner

from genwire.cli import main
from genwire.doctor import Check, run_checks
from tests.conftest import ThreadedServer
from tests.faultproxy import Fault, FaultProxy


@pytest.fixture
def server(live_server: Callable[..., ThreadedServer]) -> ThreadedServer:
    return live_server(keepalive_s=0.3)


@pytest.fixture
def proxy(server: ThreadedServer) -> Iterator[FaultProxy]:
    """A FaultProxy in front of the server: every request of the doctor goes through it."""
    with FaultProxy(server.url) as running:
        yield running


def doctor(*args: str) -> tuple[int, dict[str, Check]]:
    result = CliRunner().invoke(main, ["doctor", "--json", "--keepalive-wait", "3", *args])
    start = result.stdout.index("{")
    answer = json.loads(result.stdout[start:])
    checks = {item["name"]: Check(**item) for item in answer["checks"]}
    assert answer["ok"] is (result.exit_code == 0)
    return result.exit_code, checks


def test_a_healthy_server_passes_every_check(server: ThreadedServer) -> None:
    code, checks = doctor(server.url)
    assert {name: check.verdict for name, check in checks.items()} == {
        "health": "ok",
        "job over SSE": "ok",
        "no buffering proxy": "ok",
        "long-poll": "ok",
        "file download": "ok",
        "keepalive": "ok",
    }, checks
    assert code == 0
    assert "after submit" in checks["job over SSE"].detail


def test_the_table_names_every_check(server: ThreadedServer) -> None:
    result = CliRunner().invoke(main, ["doctor", "--keepalive-wait", "3", "--server", server.url])
    assert result.exit_code == 0, result.output
    for name in ("health", "job over SSE", "buffering", "long-poll", "download", "keepalive"):
        assert name in result.stdout


def test_a_buffering_proxy_is_named_and_fails(proxy: FaultProxy) -> None:
    proxy.set(Fault("buffer", r"/events"))
    code, checks = doctor(proxy.url)
    buffering = checks["no buffering proxy"]
    assert buffering.verdict == "fail"
    assert "buffer" in buffering.detail
    assert "proxy_buffering off" in buffering.fix
    assert checks["job over SSE"].verdict == "ok"  # the events do arrive, only late
    assert checks["long-poll"].verdict == "ok"
    assert checks["file download"].verdict == "ok"
    assert checks["keepalive"].verdict == "warn"  # held back with the rest
    assert code == 1


def test_a_proxy_refusing_the_streams_fails_the_sse_checks(proxy: FaultProxy) -> None:
    proxy.set(Fault("502", r"/events"))
    code, checks = doctor(proxy.url)
    assert checks["health"].verdict == "ok"
    sse = checks["job over SSE"]
    assert sse.verdict == "fail"
    assert "502" in sse.detail
    assert "proxy" in sse.detail
    assert "long-poll" in sse.fix
    assert checks["no buffering proxy"].verdict == "fail"
    assert checks["keepalive"].verdict == "fail"
    assert "502" in checks["keepalive"].detail
    assert checks["long-poll"].verdict == "ok"  # the fallback still works
    assert checks["file download"].verdict == "ok"
    assert code == 1


def test_an_unreachable_server_fails_health_and_stops() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, checks = doctor(f"http://127.0.0.1:{port}")
    assert list(checks) == ["health"]
    assert checks["health"].verdict == "fail"
    assert "cannot reach" in checks["health"].detail
    assert code == 1


def test_run_checks_reports_each_check_as_it_ends(server: ThreadedServer) -> None:
    seen: list[str] = []
    results = run_checks(server.url, keepalive_wait_s=3, on_check=lambda c: seen.append(c.name))
    assert seen == [check.name for check in results]
    assert len(results) == 6
