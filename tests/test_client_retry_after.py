"""Both Python clients honour `Retry-After` (SPEC §3; issue 17, "Hostile clients").

A proxy in front of a real server refuses a request once with 429 or 503 and a
`Retry-After`; the client sends it again, or resumes its stream, no sooner than it
says (in seconds or as an HTTP-date), in place of its own pauses. Each test checks the
times the proxy saw the requests: a lower bound, which no slow machine can break.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from genwire.client import AsyncClient, Client, Job, RateLimited
from tests.conftest import ThreadedServer
from tests.faultproxy import Fault, FaultProxy

LiveServer = Callable[..., ThreadedServer]
#: Pauses of the client's own far shorter than any Retry-After below, so that only
#: honouring the server's word makes the gaps the tests assert.
QUICK: dict[str, Any] = {
    "api_key": "",
    "create_retry_delays": (0, 0, 0),
    "backoff_base_s": 0.01,
    "keepalive_s": 0.5,
}
WAIT_S = 30.0


@pytest.fixture
def server(live_server: LiveServer) -> ThreadedServer:
    return live_server(keepalive_s=0.5)


@pytest.fixture
def proxy(server: ThreadedServer) -> Iterator[FaultProxy]:
    with FaultProxy(server.url) as proxy:
        yield proxy


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


def with_client(kind: str, url: str, act: str, *args: Any, **options: Any) -> Any:
    """`client.<act>(*args)` with the sync or the async client; for `events`, the list
    of the events it yields."""
    options = {**QUICK, **options}
    if kind == "sync":
        with Client(url, **options) as client:
            if act == "events":
                return list(client.events(*args, timeout=WAIT_S))
            return getattr(client, act)(*args)

    async def run() -> Any:
        async with asyncio.timeout(WAIT_S), AsyncClient(url, **options) as client:
            if act == "events":
                return [event async for event in client.events(*args)]
            return await getattr(client, act)(*args)

    return asyncio.run(run())


def in_two_seconds() -> tuple[str, float]:
    """A Retry-After HTTP-date 1 to 2 s ahead (it counts whole seconds), and its time."""
    moment = math.floor(time.time()) + 2
    return format_datetime(datetime.fromtimestamp(moment, UTC), usegmt=True), float(moment)


def started_job(server: ThreadedServer, **input: Any) -> str:
    with Client(server.url, api_key="") as client:
        return client.submit("demo.synthetic", {"steps": 3, "step_ms": 1, **input}).id


@pytest.mark.parametrize("status", [429, 503])
def test_a_get_refused_is_sent_again_once_its_retry_after_in_seconds_has_passed(
    server: ThreadedServer, proxy: FaultProxy, kind: str, status: int
) -> None:
    job_id = started_job(server)
    proxy.set(Fault("refuse", r"^/api/jobs/[^/]+$", status=status, retry_after="1", times=1))

    job = with_client(kind, proxy.url, "get", job_id)

    assert isinstance(job, Job)
    assert job.id == job_id
    refused, answered = proxy.seen
    assert (refused.mode, answered.mode) == ("refuse", "pass")
    assert answered.at - refused.at >= 1.0


def test_a_retry_after_http_date_is_waited_for(
    server: ThreadedServer, proxy: FaultProxy, kind: str
) -> None:
    job_id = started_job(server)
    date, moment = in_two_seconds()
    proxy.set(Fault("refuse", r"^/api/jobs/[^/]+$", retry_after=date, times=1))

    assert with_client(kind, proxy.url, "get", job_id).id == job_id

    assert [seen.mode for seen in proxy.seen] == ["refuse", "pass"]
    assert proxy.seen[1].at >= moment


@pytest.mark.parametrize("status", [429, 503])
def test_a_create_refused_is_resent_under_its_key_after_its_retry_after(
    server: ThreadedServer, proxy: FaultProxy, kind: str, status: int
) -> None:
    """A 429 create was not resent at all, a 503 one at once (the client's own delay)."""
    proxy.set(Fault("refuse", r"^/api/jobs$", status=status, retry_after="1", times=1))

    job = with_client(kind, proxy.url, "submit", "demo.synthetic", {"steps": 1, "step_ms": 1})

    refused, answered = proxy.seen
    assert answered.at - refused.at >= 1.0
    with Client(server.url, api_key="") as direct:
        assert [item.id for item in direct.list()] == [job.id]


@pytest.mark.parametrize("status", [429, 503])
def test_a_stream_refused_resumes_after_its_retry_after(
    server: ThreadedServer, proxy: FaultProxy, kind: str, status: int
) -> None:
    """Without the server's word, the next try came after the client's backoff (10 ms)."""
    job_id = started_job(server, steps=5, step_ms=20)
    proxy.set(Fault("refuse", r"/events", status=status, retry_after="1", times=1))

    events = with_client(kind, proxy.url, "events", job_id)

    assert events[-1]["type"] == "job-completed"
    assert len({event["id"] for event in events}) == len(events)
    refused, resumed = proxy.seen[:2]
    assert refused.mode == "refuse"
    assert resumed.at - refused.at >= 1.0


def test_a_retry_after_beyond_the_cap_reaches_the_caller_at_once(
    server: ThreadedServer, proxy: FaultProxy, kind: str
) -> None:
    job_id = started_job(server)
    proxy.set(Fault("refuse", r"^/api/jobs/", retry_after="120"))

    with pytest.raises(RateLimited) as got:
        with_client(kind, proxy.url, "get", job_id, retry_after_cap_s=5)

    assert got.value.retry_after == 120.0
    assert len(proxy.seen) == 1


def test_a_get_refused_without_a_retry_after_is_not_sent_again(
    server: ThreadedServer, proxy: FaultProxy, kind: str
) -> None:
    job_id = started_job(server)
    proxy.set(Fault("refuse", r"^/api/jobs/"))

    with pytest.raises(RateLimited) as got:
        with_client(kind, proxy.url, "get", job_id)

    assert got.value.retry_after is None
    assert len(proxy.seen) == 1


@pytest.mark.parametrize("status", [429, 503])
def test_a_download_refused_is_tried_again_after_its_retry_after(
    server: ThreadedServer, proxy: FaultProxy, kind: str, status: int, tmp_path: Path
) -> None:
    with Client(server.url, api_key="") as direct:
        job = direct.wait(started_job(server, output_bytes=50_000), timeout=WAIT_S)
    artifact = job.artifacts[0]
    proxy.set(Fault("refuse", r"^/api/files/", status=status, retry_after="1", times=1))

    path = with_client(kind, proxy.url, "download", artifact, tmp_path)

    assert hashlib.sha256(path.read_bytes()).hexdigest() == artifact.sha256
    refused, answered = proxy.seen
    assert (refused.mode, answered.mode) == ("refuse", "pass")
    assert answered.at - refused.at >= 1.0
