"""`events()` of both clients through a fault-injecting proxy in front of a real
server (SPEC §6): connections cut mid-event, a stall without a close, 502 for the
stream, a buffering proxy, and long-poll blocked too; and a real `genwire serve`
killed and started again. In each case the caller gets every event exactly once, in
order, ending with the terminal event."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from genwire.client import AsyncClient, Client
from tests.conftest import ServerProcess, ServerStarter, ThreadedServer
from tests.faultproxy import Fault, FaultProxy
from tests.waiting import wait_until

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
#: After an outage, events come over SSE again this soon after the server answers: a
#: behaviour (not after the fallback window, here 600 s), not a benchmark.
BACK_ON_SSE_S = 5.0


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


def logged_events(server: ThreadedServer | ServerProcess, job_id: str) -> list[dict[str, Any]]:
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


def assert_complete(
    server: ThreadedServer | ServerProcess, job_id: str, events: list[dict[str, Any]]
) -> None:
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


@dataclass(frozen=True)
class Delivery:
    at: float  # time.monotonic() when `events()` yielded it
    event: dict[str, Any]
    path: str  # the path of the request that brought it: the feed's last one


class RecordingTransport(httpx.HTTPTransport):
    """Notes the path of every request the client sends."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return super().handle_request(request)


class AsyncRecordingTransport(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return await super().handle_async_request(request)


def follow_in_thread(
    kind: str, url: str, job_id: str, deliveries: list[Delivery], paths: list[list[str]]
) -> threading.Thread:
    """`events()` in a thread of its own, noting each event with the request that brought
    it; the fallback window is far away, so only the server's answer can bring SSE back."""
    options = {**FAST_CLIENT, "sse_retry_s": 600.0}

    def note(event: dict[str, Any], recorder: RecordingTransport | AsyncRecordingTransport) -> None:
        deliveries.append(Delivery(time.monotonic(), event, recorder.paths[-1]))

    def run_sync() -> None:
        recorder = RecordingTransport()
        paths.append(recorder.paths)
        with Client(url, api_key="", transport=recorder, **options) as client:
            for event in client.events(job_id, timeout=WAIT_S * 2):
                note(event, recorder)

    async def run_async() -> None:
        recorder = AsyncRecordingTransport()
        paths.append(recorder.paths)
        async with AsyncClient(url, api_key="", transport=recorder, **options) as client:
            async for event in client.events(job_id, timeout=WAIT_S * 2):
                note(event, recorder)

    target = run_sync if kind == "sync" else lambda: asyncio.run(run_async())
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_after_an_outage_events_are_back_on_sse_soon_after_the_server_answers(
    serve_process: ServerStarter, kind: str
) -> None:
    """Issue 18: after falling back because the server was unreachable, the client kept
    polling until its fallback window ended, though the server answered again."""
    args = ("--keepalive", str(KEEPALIVE_S), "--lease-ttl", "2")
    server = serve_process(*args)
    with server.client() as http:
        job = {"pipeline": "demo.synthetic", "input": {"steps": 150, "step_ms": 100}}
        job_id = http.post("/api/jobs", json=job).json()["id"]
    deliveries: list[Delivery] = []
    paths: list[list[str]] = []
    thread = follow_in_thread(kind, server.url, job_id, deliveries, paths)
    wait_until(lambda: len(deliveries) >= 3, "the first events over SSE", timeout=30)
    assert deliveries[0].path.endswith("/events")

    server.kill()
    sent_before = len(paths[0])
    # The outage: long enough for the client to fall back to polling, and fail there.
    wait_until(
        lambda: any(not path.endswith("/events") for path in paths[0][-5:]),
        "the client to fall back from SSE",
        timeout=30,
    )
    # ... and fail there: a request after the first fallback one means that one failed.
    after_kill = enumerate(paths[0][sent_before:], start=sent_before)
    first_fallback = next(i for i, path in after_kill if not path.endswith("/events"))
    wait_until(
        lambda: len(paths[0]) > first_fallback + 1,
        "the client's fallback to fail against the stopped server",
        timeout=30,
    )
    restarted = serve_process.again(server)
    back = time.monotonic()
    thread.join(timeout=WAIT_S * 2)
    assert not thread.is_alive(), "events() did not end"

    assert_complete(restarted, job_id, [d.event for d in deliveries])
    after = [d for d in deliveries if d.at >= back]
    assert after, "no event came after the server was back"
    over_sse = [d for d in after if d.path.endswith("/events")]
    assert over_sse, f"never back on SSE after the outage: {sorted({d.path for d in after})}"
    assert over_sse[0].at - back < BACK_ON_SSE_S
