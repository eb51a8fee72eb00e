"""The Python client (SPEC §6) against a real server: typed results, the error
hierarchy, resent creates, `wait`, resumed downloads, projects, and `AsyncClient`."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import genwire
from genwire.client import (
    ApiError,
    AsyncClient,
    Client,
    Conflict,
    DownloadFailed,
    GenwireError,
    InvalidInput,
    Job,
    JobPage,
    NotFound,
    RateLimited,
    ServerError,
    Timeout,
    TransportFailed,
    Unauthorized,
)
from genwire.client.errors import parse_retry_after
from tests.conftest import ThreadedServer
from tests.faultproxy import Fault, FaultProxy

LiveServer = Callable[..., ThreadedServer]
FAST = {"steps": 3, "step_ms": 1}
OUTPUT_BYTES = 300_000
WAIT_S = 30.0


@pytest.fixture
def server(live_server: LiveServer) -> ThreadedServer:
    return live_server()


@pytest.fixture
def client(server: ThreadedServer) -> Iterator[Client]:
    with Client(server.url, api_key="") as client:
        yield client


def fake_job(job_id: str = "job_1", status: str = "queued") -> dict[str, Any]:
    return {
        "id": job_id,
        "pipeline": "demo.synthetic",
        "status": status,
        "created_at": "2026-01-02T03:04:05.123456Z",
    }


# -- typed results ----------------------------------------------------------------------


def test_submit_get_list_and_cancel_answer_typed_results(client: Client) -> None:
    job = client.submit("demo.synthetic", {"steps": 1, "step_ms": 60_000}, metadata={"a": 1})

    assert isinstance(job, Job)
    assert job.pipeline == "demo.synthetic"
    assert job.metadata == {"a": 1}
    assert job.created_at.tzinfo is not None
    assert job.raw["id"] == job.id
    assert client.get(job.id).id == job.id
    page = client.list(pipeline="demo.synthetic", limit=10)
    assert isinstance(page, JobPage)
    assert [item.id for item in page] == [job.id]

    cancelled = client.cancel(job.id)
    assert cancelled.cancel_requested or cancelled.status == "cancelled"
    final = client.wait(job.id, timeout=WAIT_S)
    assert final.status == "cancelled"
    assert final.is_terminal
    assert final.finished_at is not None
    assert final.finished_at >= final.created_at


def test_the_pipelines_are_typed_with_their_input_schema(client: Client) -> None:
    synthetic = {item.name: item for item in client.pipelines()}["demo.synthetic"]

    assert [phase.name for phase in synthetic.phases] == ["work", "output"]
    assert "steps" in synthetic.input_schema["properties"]


def test_resubmitting_under_one_idempotency_key_answers_the_same_job(client: Client) -> None:
    first = client.submit("demo.synthetic", FAST, idempotency_key="order-42")
    second = client.submit("demo.synthetic", FAST, idempotency_key="order-42")

    assert second.id == first.id


def test_submit_with_wait_answers_the_ended_job(client: Client) -> None:
    job = client.submit("demo.synthetic", FAST, wait=20)

    assert job.status == "succeeded"
    assert job.progress == 100


def test_the_main_names_are_exported_from_genwire() -> None:
    assert genwire.AsyncClient is AsyncClient
    assert genwire.GenwireError is GenwireError
    assert {"Client", "AsyncClient", "ApiError", "GenwireError", "Timeout"} <= set(genwire.__all__)


# -- errors -----------------------------------------------------------------------------


def test_an_unknown_job_raises_not_found(client: Client) -> None:
    with pytest.raises(NotFound) as got:
        client.get("job_unknown")

    assert got.value.status == 404
    assert isinstance(got.value, ApiError)
    assert got.value.code == got.value.problem["code"]


def test_bad_input_raises_invalid_input_naming_the_field(client: Client) -> None:
    with pytest.raises(InvalidInput) as got:
        client.submit("demo.synthetic", {"steps": -1})

    assert got.value.status == 422
    assert got.value.errors[0].field.endswith("steps")
    assert got.value.errors[0].message


def test_cancelling_an_ended_job_raises_conflict(client: Client) -> None:
    job = client.submit("demo.synthetic", FAST, wait=20)
    assert job.is_terminal

    with pytest.raises(Conflict) as got:
        client.cancel(job.id)
    assert got.value.status == 409


def test_a_missing_api_key_raises_unauthorized(live_server: LiveServer) -> None:
    server = live_server(api_keys={"k1": "alice"})
    with Client(server.url, api_key="") as anonymous, Client(server.url, "k1") as alice:
        with pytest.raises(Unauthorized) as got:
            anonymous.list()
        assert got.value.status == 401
        assert alice.list().items == ()


def test_an_unreachable_server_raises_transport_failed(unused_port: int) -> None:
    with Client(f"http://127.0.0.1:{unused_port}", create_retry_delays=()) as client:
        with pytest.raises(TransportFailed):
            client.get("job_1")
        with pytest.raises(TransportFailed):
            client.submit("demo.synthetic", FAST)


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def problem(status: int, code: str, **headers: str) -> httpx.Response:
    body = {"type": f"urn:genwire:problem:{code}", "code": code, "title": code, "status": status}
    return httpx.Response(
        status, json=body, headers={"content-type": "application/problem+json", **headers}
    )


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [("7", 7.0), (None, None), ("soon", None)],
)
def test_a_429_raises_rate_limited_with_its_retry_after(
    retry_after: str | None, expected: float | None
) -> None:
    headers = {"retry-after": retry_after} if retry_after else {}
    transport = httpx.MockTransport(lambda request: problem(429, "too-many-requests", **headers))
    # A Retry-After beyond the cap reaches the caller at once, without a resend.
    with (
        Client("http://genwire.test", transport=transport, retry_after_cap_s=5) as client,
        pytest.raises(RateLimited) as got,
    ):
        client.get("job_1")

    assert got.value.status == 429
    assert got.value.retry_after == expected


def test_a_retry_after_http_date_is_read_as_seconds_from_now() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)

    assert parse_retry_after(later, now=now.timestamp()) == 90.0
    assert parse_retry_after(later, now=(now + timedelta(hours=1)).timestamp()) == 0.0


def test_a_5xx_raises_server_error() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(500, text="boom"))
    with (
        Client("http://genwire.test", transport=transport) as client,
        pytest.raises(ServerError) as got,
    ):
        client.get("job_1")

    assert got.value.status == 500
    assert "boom" in str(got.value)


# -- resending a create -----------------------------------------------------------------


def test_a_create_answered_503_is_resent_under_the_same_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            raise httpx.ConnectError("refused", request=request)
        if len(seen) < 4:
            return problem(503 if len(seen) == 2 else 502, "unavailable")
        return httpx.Response(201, json=fake_job())

    transport = httpx.MockTransport(answer)
    with Client("http://genwire.test", transport=transport, create_retry_delays=(0, 0, 0)) as c:
        job = c.submit("demo.synthetic", FAST, wait=5)

    assert job.id == "job_1"
    assert len(seen) == 4
    keys = {request.headers["idempotency-key"] for request in seen}
    assert len(keys) == 1
    assert keys != {""}
    assert {request.headers["prefer"] for request in seen} == {"wait=5"}
    assert {json.loads(request.content)["pipeline"] for request in seen} == {"demo.synthetic"}


def submit_noting_traffic(
    kind: str, url: str, sent: list[httpx.Request], statuses: list[int]
) -> Job:
    """`submit` with the sync or the async client, allowed one resend, noting each
    request it sent and the status of each answer that reached it."""
    options: dict[str, Any] = {"api_key": "", "create_retry_delays": (0,)}
    if kind == "sync":
        hooks = {"request": [sent.append], "response": [lambda r: statuses.append(r.status_code)]}
        with Client(url, event_hooks=hooks, **options) as client:
            return client.submit("demo.synthetic", FAST)

    async def note_request(request: httpx.Request) -> None:
        sent.append(request)

    async def note_response(response: httpx.Response) -> None:
        statuses.append(response.status_code)

    async def run() -> Job:
        hooks: dict[str, list[Any]] = {"request": [note_request], "response": [note_response]}
        async with AsyncClient(url, event_hooks=hooks, **options) as client:
            return await client.submit("demo.synthetic", FAST)

    return asyncio.run(run())


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_create_whose_answer_is_lost_is_resent_and_merged_by_the_server(
    server: ThreadedServer, kind: str
) -> None:
    """The real server creates the job, then the proxy cuts its answer: the client
    resends under the same Idempotency-Key, and the server answers the job it made."""
    sent: list[httpx.Request] = []
    statuses: list[int] = []
    with FaultProxy(server.url) as proxy:
        proxy.set(Fault("cut", r"^/api/jobs$", after_bytes=1, times=1))
        job = submit_noting_traffic(kind, proxy.url, sent, statuses)

    assert [(seen.target, seen.mode) for seen in proxy.seen] == [
        ("/api/jobs", "cut"),
        ("/api/jobs", "pass"),
    ]
    assert proxy.seen[0].forwarded == 1, "the server had answered the first send"
    assert len(sent) == 2
    assert len({request.headers["idempotency-key"] for request in sent}) == 1
    assert statuses == [200], "the resend was answered with the job already made"
    with Client(server.url, api_key="") as direct:
        assert [item.id for item in direct.list()] == [job.id]


def test_a_create_gives_up_after_its_retries() -> None:
    calls: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return problem(503, "unavailable", **{"retry-after": "0"})

    transport = httpx.MockTransport(answer)
    client = Client("http://genwire.test", transport=transport, create_retry_delays=(0, 0, 0))
    with client, pytest.raises(ServerError):
        client.submit("demo.synthetic", FAST)

    assert len(calls) == 4


def test_a_read_is_not_resent_on_503() -> None:
    calls: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return problem(503, "unavailable")

    transport = httpx.MockTransport(answer)
    client = Client("http://genwire.test", transport=transport, create_retry_delays=(0, 0, 0))
    with client, pytest.raises(ServerError):
        client.cancel("job_1")

    assert len(calls) == 1


# -- wait -------------------------------------------------------------------------------


def test_wait_answers_the_final_job(client: Client) -> None:
    job = client.submit("demo.synthetic", {"steps": 5, "step_ms": 20})

    final = client.wait(job.id, timeout=WAIT_S)

    assert final.status == "succeeded"
    assert final.progress == 100
    assert client.wait(job.id, timeout=WAIT_S) == final


def test_wait_raises_timeout_when_the_job_outlasts_it(client: Client) -> None:
    job = client.submit("test.sleeps", {"seconds": 30})

    with pytest.raises(Timeout):
        client.wait(job.id, timeout=0.5)
    client.cancel(job.id)


# -- download ---------------------------------------------------------------------------


def finished_with_output(client: Client) -> Job:
    job = client.submit("demo.synthetic", {**FAST, "output_bytes": OUTPUT_BYTES})
    final = client.wait(job.id, timeout=WAIT_S)
    assert final.status == "succeeded"
    assert len(final.artifacts) == 1
    return final


def ranges_seen(requests: list[httpx.Request]) -> list[str | None]:
    return [request.headers.get("range") for request in requests]


def test_download_saves_the_artifact_and_checks_its_hash(
    server: ThreadedServer, tmp_path: Path
) -> None:
    with Client(server.url, api_key="") as client:
        artifact = finished_with_output(client).artifacts[0]

        path = client.download(artifact, tmp_path)

    assert path == tmp_path / artifact.name
    assert hashlib.sha256(path.read_bytes()).hexdigest() == artifact.sha256
    assert not list(tmp_path.glob("*.part"))


def test_download_resumes_a_partial_file_with_a_range(
    server: ThreadedServer, tmp_path: Path
) -> None:
    requests: list[httpx.Request] = []
    statuses: list[int] = []
    hooks: dict[str, list[Any]] = {
        "request": [requests.append],
        "response": [lambda response: statuses.append(response.status_code)],
    }
    with Client(server.url, api_key="", event_hooks=hooks) as client:
        artifact = finished_with_output(client).artifacts[0]
        whole = client.download(artifact, tmp_path / "whole.bin").read_bytes()
        partial = tmp_path / "resumed.bin.part"
        partial.write_bytes(whole[:100_000])
        requests.clear()
        statuses.clear()

        path = client.download(artifact, tmp_path / "resumed.bin")

    assert ranges_seen(requests) == ["bytes=100000-"]
    assert requests[0].headers["if-range"] == f'"{artifact.sha256}"'
    assert statuses == [206]
    assert path.read_bytes() == whole
    assert not partial.exists()


def test_a_partial_file_of_other_bytes_fails_the_hash_check(
    server: ThreadedServer, tmp_path: Path
) -> None:
    with Client(server.url, api_key="") as client:
        artifact = finished_with_output(client).artifacts[0]
        partial = tmp_path / "out.bin.part"
        partial.write_bytes(b"x" * 1000)

        with pytest.raises(DownloadFailed):
            client.download(artifact, tmp_path / "out.bin")
        assert not partial.exists()
        assert not (tmp_path / "out.bin").exists()

        assert client.download(artifact, tmp_path / "out.bin").stat().st_size == OUTPUT_BYTES


def test_a_200_to_a_range_request_starts_the_file_over(tmp_path: Path) -> None:
    content = b"0123456789" * 100
    artifact = genwire.client.Artifact.from_json(
        {
            "id": "art_1",
            "name": "out.bin",
            "url": "/api/files/art_1",
            "type": "application/octet-stream",
            "size_bytes": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
        }
    )
    (tmp_path / "out.bin.part").write_bytes(b"stale bytes")
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=content))
    with Client("http://genwire.test", transport=transport) as client:
        path = client.download(artifact, tmp_path / "out.bin")

    assert path.read_bytes() == content


# -- projects ---------------------------------------------------------------------------


def test_projects_are_created_read_and_cancelled(client: Client) -> None:
    clips = [
        {"pipeline": "demo.synthetic", "input": FAST},
        {"pipeline": "test.sleeps", "input": {"seconds": 30}},
    ]
    project = client.create_project(clips, name="two clips", idempotency_key="prj-key")
    again = client.create_project(clips, name="two clips", idempotency_key="prj-key")

    assert again.id == project.id
    assert project.name == "two clips"
    assert project.total_clips == 2
    assert len(project.jobs) == 2
    assert client.get_project(project.id).id == project.id

    cancelled = client.cancel_project(project.id)
    assert cancelled.id == project.id
    for job in cancelled.jobs:
        assert client.wait(job.id, timeout=WAIT_S).is_terminal
    final = client.get_project(project.id)
    assert final.all_complete
    assert final.completed + final.cancelled == 2


def test_an_unknown_project_raises_not_found(client: Client) -> None:
    with pytest.raises(NotFound):
        client.get_project("prj_unknown")


# -- AsyncClient ------------------------------------------------------------------------


async def test_the_async_client_does_the_same_basics(
    server: ThreadedServer, tmp_path: Path
) -> None:
    async with asyncio.timeout(60), AsyncClient(server.url, api_key="") as client:
        job = await client.submit("demo.synthetic", {**FAST, "output_bytes": OUTPUT_BYTES})
        assert (await client.get(job.id)).id == job.id
        assert [item.id for item in await client.list()] == [job.id]
        assert "demo.synthetic" in {item.name for item in await client.pipelines()}

        final = await client.wait(job.id, timeout=WAIT_S)
        assert final.status == "succeeded"
        path = await client.download(final.artifacts[0], tmp_path)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == final.artifacts[0].sha256

        with pytest.raises(NotFound):
            await client.get("job_unknown")
        with pytest.raises(Conflict):
            await client.cancel(job.id)
        with pytest.raises(InvalidInput):
            await client.submit("demo.synthetic", {"steps": -1})

        sleeper = await client.submit("test.sleeps", {"seconds": 30})
        with pytest.raises(Timeout):
            await client.wait(sleeper.id, timeout=0.5)
        await client.cancel(sleeper.id)


async def test_async_events_yield_each_event_once_in_order(server: ThreadedServer) -> None:
    async with asyncio.timeout(60), AsyncClient(server.url, api_key="") as client:
        job = await client.submit("demo.synthetic", {"steps": 20, "step_ms": 5})
        events = [event async for event in client.events(job.id, timeout=WAIT_S)]

    ids = [event["id"] for event in events]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert events[-1]["type"] == "job-completed"
    steps = [event for event in events if event["type"] == "step-progress"]
    assert [event["message"] for event in steps] == [f"step {n}/20" for n in range(1, 21)]


async def test_async_events_resume_after_the_given_id(server: ThreadedServer) -> None:
    async with asyncio.timeout(60), AsyncClient(server.url, api_key="") as client:
        job = await client.submit("demo.synthetic", FAST)
        everything = [event async for event in client.events(job.id, timeout=WAIT_S)]
        rest = [
            event
            async for event in client.events(job.id, after=everything[1]["id"], timeout=WAIT_S)
        ]

    assert rest == everything[2:]


async def test_an_async_create_answered_503_is_resent_under_one_key() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return (
            problem(503, "unavailable") if len(seen) < 3 else httpx.Response(201, json=fake_job())
        )

    transport = httpx.MockTransport(answer)
    async with (
        asyncio.timeout(10),
        AsyncClient("http://genwire.test", transport=transport, create_retry_delays=(0, 0, 0)) as c,
    ):
        job = await c.submit("demo.synthetic", FAST)

    assert job.id == "job_1"
    assert len({request.headers["idempotency-key"] for request in seen}) == 1
    assert len(seen) == 3
