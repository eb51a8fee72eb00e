"""`genwire doctor` against a healthy real server, through a buffering proxy, through
a proxy refusing the event streams, and against nothing at all."""

from __future__ import annotations

import contextlib
import io
import json
import socket
from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner
from rich.console import Console

from genwire import cli
from genwire.cli import main
from genwire.client.doctor import Check, run_checks
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
        "providers": "ok",
    }, checks
    assert code == 0
    assert "after submit" in checks["job over SSE"].detail


def test_the_table_names_every_check(server: ThreadedServer) -> None:
    result = CliRunner().invoke(main, ["doctor", "--keepalive-wait", "3", "--server", server.url])
    assert result.exit_code == 0, result.output
    for name in (
        "health",
        "job over SSE",
        "buffering",
        "long-poll",
        "download",
        "keepalive",
        "providers",
    ):
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


@pytest.fixture
def unreachable_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_an_unreachable_server_fails_health_and_stops(unreachable_url: str) -> None:
    code, checks = doctor(unreachable_url)
    assert list(checks) == ["health"]
    assert checks["health"].verdict == "fail"
    assert "cannot reach" in checks["health"].detail
    assert code == 1


def test_run_checks_shows_each_check_while_it_runs_and_reports_it_as_it_ends(
    server: ThreadedServer,
) -> None:
    log: list[str] = []

    @contextlib.contextmanager
    def running(activity: str) -> Iterator[None]:
        log.append(f"running {activity}")
        yield
        log.append("ran")

    results = run_checks(
        server.url, keepalive_wait_s=3, on_check=lambda c: log.append(c.name), running=running
    )
    assert len(results) == 7
    assert [entry.partition(":")[0] for entry in log] == [
        entry for check in results for entry in (f"running {check.name}", "ran", check.name)
    ]


def test_a_terminal_sees_a_spinner_naming_the_running_check(
    unreachable_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=200)
    monkeypatch.setattr(cli.terminal, "console", terminal)
    monkeypatch.setattr(cli.terminal, "out", terminal)
    CliRunner().invoke(main, ["doctor", unreachable_url])
    assert "health: GET /healthz" in screen.getvalue()


def test_a_pipe_gets_no_spinner(unreachable_url: str) -> None:
    result = CliRunner().invoke(main, ["doctor", unreachable_url])
    assert "fail  health" in result.output
    assert "GET /healthz" not in result.output
