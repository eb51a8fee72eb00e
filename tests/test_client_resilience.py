"""`events()` of both clients through a fault-injecting proxy in front of a real
server (SPEC §6): connections cut mid-event, a stall without a close, 502 for the
stream, a buffering proxy, and long-poll blocked too. In each case the caller gets
every event exactly once, in order, ending with the terminal event."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from genwire.client import AsyncClient, Client
from tests.conftest import ThreadedServer
from tests.faultproxy import Fault, FaultProxy

LiveServer = Callable[..., ThreadedServer]
KEEPALIVE_S = 0.3
WAIT_S = 40.0
#: Options that make the client's backoff and fallback quick enough for a test.
FAST_CLIENT: dict[str, Any] = {
    "keepalive_s": KEEPALIVE_S,
    "backoff_base_s": 0.05,
    "long_poll_wait_s": 2.0,
    "poll_interval_s": 0.1,
}


@pytest.fixture
def server(live_server: LiveServer) -> ThreadedServer:
    return live_server(keepalive_s=KEEPALIVE_S)


@pytest.fixture
def proxy(server: ThreadedServer) -> Iterator[FaultProxy]:
    with FaultProxy(server.url) as proxy:
        yield proxy


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


def start_job(server: ThreadedServer, steps: int = 30, step_ms: float = 30) -> str:
    with Client(server.url, api_key="") as client:
        return client.submit("demo.synthetic", {"steps": steps, "step_ms": step_ms}).id


def collect(kind: str, url: str, job_id: str, **options: Any) -> list[dict[str, Any]]:
    """Every event `events()` yields, with the sync or the async client."""
    options = {**FAST_CLIENT, **options}
    if kind == "sync":
        with Client(url, api_key="", **options) as client:
            return list(client.events(job_id, timeout=WAIT_S))

    async def run() -> list[dict[str, Any]]:
        async with AsyncClient(url, api_key="", **options) as client:
            return [event async for event in client.events(job_id, timeout=WAIT_S)]

    return asyncio.run(run())


def logged_events(server: ThreadedServer, job_id: str) -> list[dict[str, Any]]:
    """The ended job's whole log, paged with `wait=0` polls straight from the server:
    plain httpx, so that no bug of the client under test is in the reference too."""
    events: list[dict[str, Any]] = []
    cursor = "0"
    with httpx.Client(base_url=server.url, timeout=30) as http:
        while True:
            response = http.get(f"/api/jobs/{job_id}/poll", params={"after": cursor, "wait": 0})
            assert response.status_code == 200, response.text
            answer = response.json()
            events += answer["events"]
            if answer["done"]:
                return events
            assert answer["events"], f"the job has ended, yet its log stops at {cursor}"
            cursor = answer["last_event_id"]


def assert_complete(server: ThreadedServer, job_id: str, events: list[dict[str, Any]]) -> None:
    """The events are the job's whole log, each once, in order, ending with its end."""
    truth = logged_events(server, job_id)
    ids = [event["id"] for event in events]
    assert ids == [event["id"] for event in truth]
    assert [int(i) for i in ids] == sorted({int(i) for i in ids})
    assert events == truth
    assert events[-1]["type"] == "job-completed"


def test_connections_cut_mid_event_are_resumed(
    server: ThreadedServer, proxy: FaultProxy, kind: str
) -> None:
    proxy.set(Fault("cut", r"/events", after_bytes=1500))
    job_id = start_job(server)
    events = collect(kind, proxy.url, job_id)
    assert_complete(server, job_id, events)
    assert len(proxy.targets("cut")) >= 2  # the stream was really cut, more than once
    assert not proxy.targets("pass")


def test_a_stall_without_a_close_is_noticed_by_its_silence(
    server: ThreadedServer, proxy: FaultProxy, kind: str
) -> None:
    proxy.set(Fault("stall", r"/events", after_bytes=1500, times=1))
    job_id = start_job(server)
    events = collect(kind, proxy.url, job_id)
    assert_complete(server, job_id, events)
    assert len(proxy.targets("stall")) == 1
    assert any("/events" in target for target in proxy.targets("pass"))


def test_a_502_for_the_stream_falls_back_to_long_poll(
    server: ThreadedServer, proxy: FaultProxy, kind: str
) -> None:
    proxy.set(Fault("502", r"/events"))
    job_id = start_job(server)
    events = collect(kind, proxy.url, job_id, sse_retry_s=600)
    assert_complete(server, job_id, events)
    assert len(proxy.targets("502")) == 3
    assert any("/poll" in target for target in proxy.targets("pass"))


def test_a_buffering_proxy_is_given_up_for_long_poll(
    server: ThreadedServer, proxy: FaultProxy, kind: str
) -> None:
    proxy.set(Fault("buffer", r"/events"))
    job_id = start_job(server, steps=120, step_ms=100)
    events = collect(kind, proxy.url, job_id, sse_retry_s=600)
    assert_complete(server, job_id, events)
    assert proxy.targets("buffer"), "the stream never met the buffering proxy"
    assert any("/poll" in target for target in proxy.targets("pass"))


def test_long_poll_blocked_too_falls_back_to_polling(
    server: ThreadedServer, proxy: FaultProxy, kind: str
) -> None:
    proxy.set(Fault("502", r"/events|wait=2\b"))
    job_id = start_job(server)
    events = collect(kind, proxy.url, job_id, sse_retry_s=600)
    assert_complete(server, job_id, events)
    passed = proxy.targets("pass")
    assert any("wait=0" in target for target in passed)
    assert any(target == f"/api/jobs/{job_id}" for target in passed)


def test_sse_is_tried_again_after_a_while_of_fallback(
    server: ThreadedServer, proxy: FaultProxy, kind: str
) -> None:
    proxy.set(Fault("502", r"/events", times=3))
    job_id = start_job(server, steps=30, step_ms=100)
    events = collect(kind, proxy.url, job_id, sse_retry_s=0.5, long_poll_wait_s=0.2)
    assert_complete(server, job_id, events)
    targets = [seen.target for seen in proxy.seen]
    first_poll = next(i for i, target in enumerate(targets) if "/poll" in target)
    assert any("/events" in target for target in targets[first_poll:])
