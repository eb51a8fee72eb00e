"""The job calls of SPEC §2–§3 over HTTP, against a real uvicorn on a free port."""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ConfigDict

import genwire
from genwire.client import ApiError, Client
from genwire.models import JsonObject, format_event_id
from genwire.pipelines import Pipeline, PipelineContext, pipeline
from tests import pipelines as test_pipelines
from tests.http_calls import (
    FAST_SYNTHETIC,
    LiveServer,
    assert_problem,
    client_of,
    create,
    failing_fields,
    wait_for_job,
    wait_for_status,
)

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
SNAPSHOT_FIELDS = {
    "id",
    "pipeline",
    "status",
    "phase",
    "progress",
    "message",
    "queue_position",
    "attempt",
    "cancel_requested",
    "created_at",
    "started_at",
    "finished_at",
    "input",
    "metadata",
    "project_id",
    "error",
    "artifacts",
    "output",
    "last_event_id",
    "urls",
}
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
ONE_MIB = 1024 * 1024


def run_to_end(client: httpx.Client, body: JsonObject) -> JsonObject:
    return wait_for_status(client, create(client, body)["id"], TERMINAL)


def assert_rfc3339_utc(value: str) -> datetime:
    assert RFC3339_UTC.match(value), value
    moment = datetime.fromisoformat(value)
    assert moment.utcoffset() == timedelta(0)
    return moment


@pytest.fixture
def idle_http(live_server: LiveServer) -> Iterator[httpx.Client]:
    """A client of a live server with no workers: jobs stay queued until cancelled."""
    with client_of(live_server(workers=0)) as client:
        yield client


class NoInput(BaseModel):
    model_config = ConfigDict(extra="forbid")


def slow_to_stop(release: threading.Event) -> Pipeline:
    """A pipeline that acknowledges a cancel only once the test sets `release`."""

    @pipeline("test.slow_to_stop", input=NoInput, phases={"work": (0, 100)})
    async def run(ctx: PipelineContext, params: NoInput) -> JsonObject:
        await ctx.phase("work")
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.to_thread(release.wait, 10)
            raise
        return {}

    return run


# -- create ---------------------------------------------------------------------------


def test_create_answers_201_with_location_and_the_full_snapshot(idle_http: httpx.Client) -> None:
    project = idle_http.post(
        "/api/projects", json={"clips": [{"pipeline": "demo.synthetic", "input": {}}]}
    ).json()
    body = {
        "pipeline": "demo.synthetic",
        "input": {"steps": 3},
        "metadata": {"user": "u1"},
        "project_id": project["id"],
    }
    response = idle_http.post("/api/jobs", json=body)

    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    job = response.json()
    assert set(job) == SNAPSHOT_FIELDS
    assert response.headers["location"] == f"/api/jobs/{job['id']}"
    assert job["pipeline"] == "demo.synthetic"
    assert job["status"] == "queued"
    assert job["phase"] is None
    assert job["progress"] == 0
    assert isinstance(job["message"], str)
    assert job["queue_position"] == 1, "the project's clip is ahead"
    assert job["attempt"] == 1
    assert job["cancel_requested"] is False
    assert_rfc3339_utc(job["created_at"])
    assert job["started_at"] is None
    assert job["finished_at"] is None
    assert job["metadata"] == {"user": "u1"}
    assert job["project_id"] == project["id"]
    assert job["error"] is None
    assert job["artifacts"] == []
    assert job["output"] is None
    assert isinstance(job["last_event_id"], str)
    assert job["last_event_id"].isdigit()
    assert len(job["last_event_id"]) == 16
    base = f"/api/jobs/{job['id']}"
    assert job["urls"] == {
        "self": base,
        "events": f"{base}/events",
        "poll": f"{base}/poll",
        "cancel": f"{base}/cancel",
    }
    assert idle_http.get(response.headers["location"]).json() == job


def test_create_stores_the_input_normalized_with_its_defaults(idle_http: httpx.Client) -> None:
    job = create(idle_http, {"pipeline": "demo.synthetic", "input": {"steps": 3}})

    expected = {
        "steps": 3,
        "step_ms": 10.0,
        "output_bytes": 0,
        "warn_at": None,
        "fail_at": None,
        "fail_retryable": False,
    }
    assert job["input"] == expected
    assert idle_http.get(f"/api/jobs/{job['id']}").json()["input"] == expected


def test_each_queued_job_reports_how_many_jobs_are_ahead_of_it(idle_http: httpx.Client) -> None:
    positions = [create(idle_http, FAST_SYNTHETIC)["queue_position"] for _ in range(3)]

    assert positions == [0, 1, 2]


def test_a_synthetic_job_runs_to_success_with_a_downloadable_artifact(
    http: httpx.Client,
) -> None:
    created = create(
        http,
        {"pipeline": "demo.synthetic", "input": {"steps": 5, "step_ms": 1, "output_bytes": 5000}},
    )

    job = wait_for_status(http, created["id"], TERMINAL)

    assert job["status"] == "succeeded", job
    assert job["progress"] == 100
    assert job["error"] is None
    started = assert_rfc3339_utc(job["started_at"])
    finished = assert_rfc3339_utc(job["finished_at"])
    assert assert_rfc3339_utc(job["created_at"]) <= started <= finished
    assert int(job["last_event_id"]) > int(created["last_event_id"])
    assert job["last_event_id"] > created["last_event_id"]
    [artifact] = job["artifacts"]
    assert set(artifact) == {"id", "name", "url", "type", "size_bytes", "sha256"}
    assert artifact["url"] == f"/api/files/{artifact['id']}"
    assert artifact["type"] == "application/octet-stream"
    assert artifact["size_bytes"] == 5000
    assert job["output"] == {"steps": 5, "artifact_ids": [artifact["id"]]}

    download = http.get(artifact["url"])

    assert download.status_code == 200
    assert download.headers["content-type"] == "application/octet-stream"
    assert int(download.headers["content-length"]) == 5000
    assert len(download.content) == 5000
    assert hashlib.sha256(download.content).hexdigest() == artifact["sha256"]


def test_event_ids_sort_as_strings_past_a_trillion_events() -> None:
    """Bug: ids were 12 digits wide, so event 10^12 sorted before event 999 999 999 999
    as a string; 16 digits keep string order for 10^16 events."""
    ids = [format_event_id(seq) for seq in (1, 10**12 - 1, 10**12, 10**16 - 1)]

    assert ids == sorted(ids)
    assert {len(event_id) for event_id in ids} == {16}


# -- files ----------------------------------------------------------------------------


@pytest.fixture
def finished_file(http: httpx.Client) -> JsonObject:
    """The artifact of a succeeded synthetic job: 1000 bytes of 0, 1, …, 255, 0, 1, …"""
    job = run_to_end(
        http,
        {"pipeline": "demo.synthetic", "input": {"steps": 1, "step_ms": 1, "output_bytes": 1000}},
    )
    assert job["status"] == "succeeded", job
    artifact: JsonObject = job["artifacts"][0]
    return artifact


def expected_bytes(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


def test_a_file_download_honours_a_byte_range(
    http: httpx.Client, finished_file: JsonObject
) -> None:
    response = http.get(finished_file["url"], headers={"Range": "bytes=0-99"})

    assert response.status_code == 206
    assert response.headers["content-range"] == "bytes 0-99/1000"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.content == expected_bytes(1000)[:100]


def test_a_file_download_honours_a_suffix_range(
    http: httpx.Client, finished_file: JsonObject
) -> None:
    response = http.get(finished_file["url"], headers={"Range": "bytes=-100"})

    assert response.status_code == 206
    assert response.headers["content-range"] == "bytes 900-999/1000"
    assert response.content == expected_bytes(1000)[-100:]


def test_a_file_download_refuses_an_unsatisfiable_range_with_416(
    http: httpx.Client, finished_file: JsonObject
) -> None:
    response = http.get(finished_file["url"], headers={"Range": "bytes=5000-"})

    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */1000"


def test_a_file_carries_its_sha256_as_a_strong_etag_and_answers_304_when_unchanged(
    http: httpx.Client, finished_file: JsonObject
) -> None:
    response = http.get(finished_file["url"])
    etag = response.headers["etag"]

    assert etag == f'"{finished_file["sha256"]}"'
    assert not etag.startswith("W/")
    revalidated = http.get(finished_file["url"], headers={"If-None-Match": etag})
    assert revalidated.status_code == 304
    assert revalidated.content == b""
    assert revalidated.headers["etag"] == etag
    stale = http.get(finished_file["url"], headers={"If-None-Match": '"something-else"'})
    assert stale.status_code == 200
    assert stale.content == expected_bytes(1000)


@pytest.mark.parametrize(
    "if_none_match",
    ['W/"{sha}"', "*", '"something-else", W/"{sha}"', '"other" ,  "{sha}"'],
    ids=["weak", "star", "weak-in-a-list", "strong-in-a-spaced-list"],
)
def test_if_none_match_compares_weakly_and_star_matches(
    http: httpx.Client, finished_file: JsonObject, if_none_match: str
) -> None:
    """Bug: only the exact strong tag gave a 304; `W/"<sha>"` and `*` got the whole file
    again, though RFC 9110 §13.1.2 has If-None-Match compare weakly."""
    header = if_none_match.format(sha=finished_file["sha256"])

    response = http.get(finished_file["url"], headers={"If-None-Match": header})

    assert response.status_code == 304
    assert response.content == b""


def test_an_unknown_file_is_a_404_problem(http: httpx.Client) -> None:
    assert_problem(http.get("/api/files/art_doesnotexist"), 404, "not-found")


# -- idempotency ----------------------------------------------------------------------


def test_the_same_idempotency_key_and_body_return_the_same_job_with_200(
    idle_http: httpx.Client,
) -> None:
    first = idle_http.post("/api/jobs", json=FAST_SYNTHETIC, headers={"Idempotency-Key": "k-1"})
    again = idle_http.post("/api/jobs", json=FAST_SYNTHETIC, headers={"Idempotency-Key": "k-1"})

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    assert len(idle_http.get("/api/jobs").json()["items"]) == 1


def test_the_same_idempotency_key_with_another_body_is_a_422_problem(
    idle_http: httpx.Client,
) -> None:
    create(idle_http, FAST_SYNTHETIC, **{"Idempotency-Key": "k-2"})
    other = {"pipeline": "demo.synthetic", "input": {"steps": 4, "step_ms": 1}}

    response = idle_http.post("/api/jobs", json=other, headers={"Idempotency-Key": "k-2"})

    assert_problem(response, 422, "idempotency-key-reused")
    assert len(idle_http.get("/api/jobs").json()["items"]) == 1


def test_creates_without_an_idempotency_key_make_different_jobs(idle_http: httpx.Client) -> None:
    first = create(idle_http, FAST_SYNTHETIC)
    second = create(idle_http, FAST_SYNTHETIC)

    assert first["id"] != second["id"]
    assert len(idle_http.get("/api/jobs").json()["items"]) == 2


# -- Prefer: wait ---------------------------------------------------------------------


def test_prefer_wait_answers_with_the_terminal_snapshot_of_a_fast_job(http: httpx.Client) -> None:
    # The longest wait, twice the client's read time-out: an answer that waited it out
    # instead of coming at the job's end would fail the request.
    response = http.post("/api/jobs", json=FAST_SYNTHETIC, headers={"Prefer": "wait=60"})

    assert response.status_code == 201
    assert response.headers["preference-applied"] == "wait=60"
    assert response.json()["status"] == "succeeded"
    assert response.json()["progress"] == 100


def test_prefer_wait_answers_a_slow_job_after_the_wait_with_its_current_snapshot(
    http: httpx.Client,
) -> None:
    body = {"pipeline": "test.sleeps", "input": {"seconds": 30}}
    started = time.monotonic()
    response = http.post("/api/jobs", json=body, headers={"Prefer": "wait=1"})
    elapsed = time.monotonic() - started

    assert response.status_code == 201
    assert response.headers["preference-applied"] == "wait=1"
    assert response.json()["status"] in {"queued", "running"}
    # A lower bound only, which a slow machine cannot break (the answer's status shows
    # it did not wait for the job's end either).
    assert elapsed >= 0.9
    assert http.post(f"/api/jobs/{response.json()['id']}/cancel").status_code == 202
    wait_for_status(http, response.json()["id"], TERMINAL)


# -- list -----------------------------------------------------------------------------


def test_the_job_list_is_newest_first_and_its_pages_visit_every_job_once(
    idle_http: httpx.Client,
) -> None:
    created = [create(idle_http, FAST_SYNTHETIC)["id"] for _ in range(5)]

    everything = idle_http.get("/api/jobs").json()
    assert [job["id"] for job in everything["items"]] == created[::-1]
    assert everything["next_cursor"] is None

    visited: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = idle_http.get("/api/jobs", params=params).json()
        pages += 1
        assert len(page["items"]) <= 2
        visited.extend(job["id"] for job in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert visited == created[::-1]
    assert pages == 3


def test_the_job_list_filters_by_status_and_pipeline(idle_http: httpx.Client) -> None:
    synthetic = [create(idle_http, FAST_SYNTHETIC)["id"] for _ in range(3)]
    sleeping = [create(idle_http, {"pipeline": "test.sleeps"})["id"] for _ in range(2)]
    assert idle_http.post(f"/api/jobs/{synthetic[0]}/cancel").status_code == 202

    def listed(**params: str) -> list[str]:
        response = idle_http.get("/api/jobs", params=params)
        assert response.status_code == 200
        return [job["id"] for job in response.json()["items"]]

    assert listed(status="cancelled") == [synthetic[0]]
    assert listed(status="queued") == [*sleeping[::-1], synthetic[2], synthetic[1]]
    assert listed(pipeline="test.sleeps") == sleeping[::-1]
    assert listed(pipeline="demo.synthetic", status="queued") == synthetic[:0:-1]
    assert listed(status="succeeded") == []


@pytest.mark.parametrize(
    "params",
    [{"status": "finished"}, {"limit": "0"}, {"limit": "101"}, {"limit": "many"}],
    ids=["unknown-status", "limit-zero", "limit-too-large", "limit-not-a-number"],
)
def test_a_bad_list_query_is_a_400_problem(http: httpx.Client, params: dict[str, str]) -> None:
    assert_problem(http.get("/api/jobs", params=params), 400, "bad-query")


# -- cancel ---------------------------------------------------------------------------


def test_cancelling_a_queued_job_ends_it_cancelled_at_once(idle_http: httpx.Client) -> None:
    job = create(idle_http, FAST_SYNTHETIC)

    response = idle_http.post(f"/api/jobs/{job['id']}/cancel")

    assert response.status_code == 202
    cancelled = response.json()
    assert set(cancelled) == SNAPSHOT_FIELDS
    assert cancelled["status"] == "cancelled"
    assert cancelled["queue_position"] is None
    assert_rfc3339_utc(cancelled["finished_at"])
    assert cancelled["started_at"] is None
    assert idle_http.get(f"/api/jobs/{job['id']}").json()["status"] == "cancelled"


def test_cancelling_a_running_job_ends_it_cancelled(http: httpx.Client) -> None:
    job = create(http, {"pipeline": "test.sleeps", "input": {"seconds": 30}})
    wait_for_status(http, job["id"], {"running"}, timeout=10)

    response = http.post(f"/api/jobs/{job['id']}/cancel")

    assert response.status_code == 202
    assert response.json()["cancel_requested"] is True
    assert response.json()["status"] in {"running", "cancelled"}
    ended = wait_for_status(http, job["id"], TERMINAL, timeout=10)
    assert ended["status"] == "cancelled"
    assert ended["error"] is None
    assert_rfc3339_utc(ended["finished_at"])


def test_cancel_is_idempotent_while_the_job_is_still_stopping(live_server: LiveServer) -> None:
    release = threading.Event()
    registry = test_pipelines.test_registry()
    registry.register(slow_to_stop(release))
    with client_of(live_server(registry)) as client:
        job = create(client, {"pipeline": "test.slow_to_stop"})
        # Running is not enough: a cancel before the pipeline entered its phase ends it
        # at once, before it reaches the part that is slow to stop.
        wait_for_job(
            client,
            job["id"],
            lambda snapshot: snapshot["status"] == "running" and snapshot["phase"] == "work",
            timeout=10,
        )
        try:
            first = client.post(f"/api/jobs/{job['id']}/cancel")
            second = client.post(f"/api/jobs/{job['id']}/cancel")

            assert first.status_code == 202
            assert second.status_code == 202
            assert first.json()["status"] == second.json()["status"] == "running"
            assert first.json()["cancel_requested"] is second.json()["cancel_requested"] is True
        finally:
            release.set()
        assert wait_for_status(client, job["id"], TERMINAL, timeout=10)["status"] == "cancelled"


def test_cancelling_an_ended_job_is_a_409_problem(http: httpx.Client) -> None:
    job = run_to_end(http, FAST_SYNTHETIC)
    assert job["status"] == "succeeded"

    assert_problem(http.post(f"/api/jobs/{job['id']}/cancel"), 409, "conflict")
    assert http.get(f"/api/jobs/{job['id']}").json()["status"] == "succeeded"


def test_cancelling_an_unknown_job_is_a_404_problem(http: httpx.Client) -> None:
    assert_problem(http.post("/api/jobs/job_doesnotexist/cancel"), 404, "not-found")


# -- bad input ------------------------------------------------------------------------


def post_raw(client: httpx.Client, content: Any, **headers: str) -> httpx.Response:
    return client.post(
        "/api/jobs", content=content, headers={"Content-Type": "application/json", **headers}
    )


def test_malformed_json_is_a_400_problem(http: httpx.Client) -> None:
    assert_problem(post_raw(http, b'{"pipeline": "demo.synthetic",'), 400, "malformed-json")


def test_a_json_array_body_is_a_400_problem(http: httpx.Client) -> None:
    assert_problem(post_raw(http, b'["demo.synthetic"]'), 400, "malformed-json")


def test_a_missing_pipeline_is_a_422_problem_naming_the_field(http: httpx.Client) -> None:
    problem = assert_problem(http.post("/api/jobs", json={"input": {}}), 422, "validation-error")

    assert failing_fields(problem) == {"pipeline"}


def test_an_unknown_pipeline_is_a_422_problem_naming_the_field(http: httpx.Client) -> None:
    response = http.post("/api/jobs", json={"pipeline": "demo.nothing", "input": {}})

    problem = assert_problem(response, 422, "validation-error")
    assert failing_fields(problem) == {"pipeline"}


def test_an_empty_video_prompt_is_a_422_problem_naming_the_field(http: httpx.Client) -> None:
    response = http.post("/api/jobs", json={"pipeline": "demo.video", "input": {"prompt": ""}})

    problem = assert_problem(response, 422, "validation-error")
    assert failing_fields(problem) == {"input.prompt"}


def test_a_video_duration_out_of_range_is_a_422_problem_naming_the_field(
    http: httpx.Client,
) -> None:
    body = {"pipeline": "demo.video", "input": {"prompt": "a cat", "duration_s": 10000}}

    problem = assert_problem(http.post("/api/jobs", json=body), 422, "validation-error")

    assert failing_fields(problem) == {"input.duration_s"}


def test_an_input_of_the_wrong_type_is_a_422_problem_naming_the_field(
    http: httpx.Client,
) -> None:
    body = {"pipeline": "demo.synthetic", "input": {"steps": "many"}}

    problem = assert_problem(http.post("/api/jobs", json=body), 422, "validation-error")

    assert failing_fields(problem) == {"input.steps"}


def oversized_body() -> bytes:
    padding = "x" * (ONE_MIB + 1024)
    return f'{{"pipeline": "demo.synthetic", "metadata": {{"pad": "{padding}"}}}}'.encode()


def test_a_body_over_one_mib_with_a_content_length_is_a_413_problem(http: httpx.Client) -> None:
    content = oversized_body()

    response = post_raw(http, content)

    assert response.request.headers["content-length"] == str(len(content))
    assert_problem(response, 413, "body-too-large")


def test_a_chunked_body_over_one_mib_is_a_413_problem(http: httpx.Client) -> None:
    content = oversized_body()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(content), 64 * 1024):
            yield content[start : start + 64 * 1024]

    response = post_raw(http, chunks())

    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_problem(response, 413, "body-too-large")


def test_an_unknown_job_is_a_404_problem(http: httpx.Client) -> None:
    assert_problem(http.get("/api/jobs/job_doesnotexist"), 404, "not-found")


def test_an_unknown_route_is_a_404_problem(http: httpx.Client) -> None:
    assert_problem(http.get("/api/nothing-here"), 404, "not-found")
    assert_problem(http.get("/nothing-here"), 404, "not-found")


def test_the_server_still_runs_a_good_job_after_every_kind_of_bad_request(
    http: httpx.Client,
) -> None:
    bad_requests = [
        post_raw(http, b"{not json"),
        post_raw(http, b"[1, 2]"),
        post_raw(http, oversized_body()),
        http.post("/api/jobs", json={"input": {}}),
        http.post("/api/jobs", json={"pipeline": "demo.nothing"}),
        http.post("/api/jobs", json={"pipeline": "demo.video", "input": {"prompt": ""}}),
        http.post("/api/jobs", json={"pipeline": "demo.synthetic", "input": {"steps": "many"}}),
        http.get("/api/jobs/job_doesnotexist"),
        http.get("/api/jobs", params={"limit": "0"}),
        http.post("/api/jobs/job_doesnotexist/cancel"),
    ]
    assert all(400 <= response.status_code < 500 for response in bad_requests)
    assert http.get("/api/jobs").json()["items"] == []

    job = run_to_end(http, FAST_SYNTHETIC)

    assert job["status"] == "succeeded"
    assert [item["id"] for item in http.get("/api/jobs").json()["items"]] == [job["id"]]


# -- the Python client -----------------------------------------------------------------


def test_the_client_is_genwire_client() -> None:
    """Bug: `genwire.Client` (SPEC §6) did not exist; only `genwire.client.Client` did."""
    assert genwire.Client is genwire.client.Client
    assert genwire.ApiError is genwire.client.ApiError
    assert {"Client", "ApiError"} <= set(genwire.__all__)


@pytest.mark.parametrize("job_id", ["../../healthz", "a/b", "job?x=1"])
def test_the_client_sends_a_job_id_as_one_path_segment(http: httpx.Client, job_id: str) -> None:
    """Bug: ids went into the path unquoted, so `client.get("../../healthz")` fetched
    /healthz and returned it as a job."""
    with Client(str(http.base_url)) as client:
        with pytest.raises(ApiError) as got:
            client.get(job_id)
        assert got.value.status == 404
        with pytest.raises(ApiError) as cancelled:
            client.cancel(job_id)
        assert cancelled.value.status == 404


# -- pipelines that fail --------------------------------------------------------------


def test_a_pipeline_that_raises_fails_its_job_and_the_worker_runs_the_next_one(
    live_server: LiveServer,
) -> None:
    with client_of(live_server(workers=1)) as client:
        failed = run_to_end(client, {"pipeline": "test.raises"})
        following = run_to_end(client, FAST_SYNTHETIC)

    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "pipeline_error"
    assert "the pipeline divided by zero" in failed["error"]["message"]
    assert failed["error"]["retryable"] is False
    assert failed["progress"] == 50
    assert failed["artifacts"] == []
    assert following["status"] == "succeeded"


def test_a_pipeline_that_hangs_fails_with_timeout(http: httpx.Client) -> None:
    job = run_to_end(http, {"pipeline": "test.hangs"})

    assert job["status"] == "failed"
    assert job["error"]["code"] == "timeout"


def test_a_pipeline_that_returns_a_non_object_fails_with_invalid_output(
    http: httpx.Client,
) -> None:
    job = run_to_end(http, {"pipeline": "test.bad_output"})

    assert job["status"] == "failed"
    assert job["error"]["code"] == "invalid_output"
    assert job["output"] is None


# -- pipelines and health -------------------------------------------------------------


def test_the_pipeline_list_offers_the_demos_with_phases_and_an_input_schema(
    http: httpx.Client,
) -> None:
    response = http.get("/api/pipelines")

    assert response.status_code == 200
    pipelines = {item["name"]: item for item in response.json()["items"]}
    assert {"demo.video", "demo.image", "demo.synthetic"} <= set(pipelines)
    assert [
        (phase["name"], phase["start"], phase["end"]) for phase in pipelines["demo.video"]["phases"]
    ] == [
        ("plan", 0, 15),
        ("tts", 15, 35),
        ("visuals", 35, 65),
        ("compose", 65, 85),
        ("render", 85, 100),
    ]
    for name in ("demo.video", "demo.image", "demo.synthetic"):
        described = pipelines[name]
        assert described["phases"], name
        assert described["phases"][-1]["end"] == 100
        assert described["input_schema"]["type"] == "object"
    assert "prompt" in pipelines["demo.video"]["input_schema"]["properties"]
    assert "prompt" in pipelines["demo.video"]["input_schema"]["required"]
    assert "steps" in pipelines["demo.synthetic"]["input_schema"]["properties"]


def test_healthz_answers_ok(http: httpx.Client) -> None:
    response = http.get("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


# -- API keys -------------------------------------------------------------------------


@pytest.fixture
def keyed_server(live_server: LiveServer) -> Any:
    return live_server(api_keys={"k1": "alice", "k2": "bob"})


@pytest.mark.parametrize("api_key", [None, "wrong"], ids=["no-key", "unknown-key"])
def test_a_call_without_a_valid_api_key_is_a_401_problem(
    keyed_server: Any, api_key: str | None
) -> None:
    with client_of(keyed_server, api_key) as client:
        assert_problem(client.get("/api/jobs"), 401, "unauthorized")
        assert_problem(client.post("/api/jobs", json=FAST_SYNTHETIC), 401, "unauthorized")


def test_a_tenant_never_sees_another_tenants_job_or_file(keyed_server: Any) -> None:
    with client_of(keyed_server, "k1") as alice, client_of(keyed_server, "k2") as bob:
        job = run_to_end(
            alice,
            {"pipeline": "demo.synthetic", "input": {"steps": 1, "step_ms": 1, "output_bytes": 10}},
        )
        assert job["status"] == "succeeded"
        file_url = job["artifacts"][0]["url"]
        assert alice.get(file_url).status_code == 200
        bobs_job = create(bob, FAST_SYNTHETIC)

        assert_problem(bob.get(f"/api/jobs/{job['id']}"), 404, "not-found")
        assert_problem(bob.post(f"/api/jobs/{job['id']}/cancel"), 404, "not-found")
        assert_problem(bob.get(file_url), 404, "not-found")
        assert [item["id"] for item in bob.get("/api/jobs").json()["items"]] == [bobs_job["id"]]
        assert [item["id"] for item in alice.get("/api/jobs").json()["items"]] == [job["id"]]
        wait_for_status(bob, bobs_job["id"], TERMINAL)
