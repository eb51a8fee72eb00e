"""What the API reads from a request, checked before it reaches the database: bodies,
headers, path ids and query parameters. Against a real uvicorn, on SQLite and on
PostgreSQL where PostgreSQL refuses what SQLite stores (a NUL, an over-long value)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from genwire import __version__
from genwire.api import create_app
from genwire.config import Settings
from genwire.errors import StateConflict, UnknownId
from genwire.models import JsonObject
from tests.conftest import ThreadedServer
from tests.http_calls import (
    FAST_SYNTHETIC,
    LiveServer,
    _drop_database,
    assert_problem,
    client_of,
    create,
    failing_fields,
)

WELL_FORMED_UNKNOWN_JOB = "job_0000000000zzzzzzzzzzzzzz"


@pytest.fixture
def backend_http(live_server: LiveServer, database_url: str) -> Iterator[httpx.Client]:
    """A client of a live server with no workers, on SQLite and on PostgreSQL."""
    with client_of(live_server(workers=0, database_url=database_url)) as client:
        yield client


@pytest.fixture
def idle_http(live_server: LiveServer) -> Iterator[httpx.Client]:
    """A client of a live server with no workers: jobs stay queued."""
    with client_of(live_server(workers=0)) as client:
        yield client


def nested(depth: int) -> Any:
    """Arrays nested `depth` levels deep: [[[…]]]."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


# -- the body -------------------------------------------------------------------------


def test_a_body_nested_deeper_than_32_levels_is_a_400_problem(
    backend_http: httpx.Client,
) -> None:
    """Bug: JSON nested deeper than orjson can write (255 levels) was read and stored,
    then failed to encode: a 500."""
    body = {**FAST_SYNTHETIC, "metadata": {"deep": nested(300)}}

    response = backend_http.post("/api/jobs", json=body)

    assert_problem(response, 400, "too-deeply-nested")
    assert backend_http.get("/api/jobs").json()["items"] == []


def test_a_body_nested_exactly_32_levels_is_accepted(idle_http: httpx.Client) -> None:
    """The limit is 32 levels: the body object, `metadata`, and 30 arrays in it."""
    deepest = {**FAST_SYNTHETIC, "metadata": {"deep": nested(30)}}
    too_deep = {**FAST_SYNTHETIC, "metadata": {"deep": nested(31)}}

    job = create(idle_http, deepest)

    assert job["metadata"] == {"deep": nested(30)}
    assert_problem(idle_http.post("/api/jobs", json=too_deep), 400, "too-deeply-nested")


def test_a_client_that_drops_mid_upload_is_one_quiet_log_line_and_no_job(
    live_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Bug: a client that sent `Content-Length: 100000`, part of the body, and closed
    made two tracebacks of some 90 lines at ERROR (genwire's 500 and uvicorn's)."""
    server = live_server(workers=0)
    # uvicorn's own loggers do not propagate to the root, where caplog listens.
    uvicorn_errors = logging.getLogger("uvicorn.error")
    uvicorn_errors.addHandler(caplog.handler)
    try:
        with (
            caplog.at_level(logging.INFO),
            socket.create_connection(server.sock.getsockname()) as sock,
        ):
            sock.sendall(
                b"POST /api/jobs HTTP/1.1\r\nHost: genwire\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
                + b'{"pipeline": "demo.synthetic", "input": {"steps": 1'
                + b" " * 4000
            )
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(1) == b"", "nothing is answered to a client that is gone"
            with client_of(server) as client:
                assert client.get("/api/jobs").json()["items"] == []
            server.__exit__()  # so that everything it had to say about the upload is said
    finally:
        uvicorn_errors.removeHandler(caplog.handler)

    said = [r for r in caplog.records if r.name in ("genwire.api", "uvicorn.error")]
    assert [(r.levelno, r.exc_info) for r in said] == [(logging.INFO, None)], caplog.text
    assert "/api/jobs" in said[0].getMessage()


@pytest.mark.parametrize(
    "project_id",
    ["p" * 41, "a\u0000b", "a b", "", 7],
    ids=["41-chars", "nul", "space", "empty", "number"],
)
def test_a_bad_project_id_is_a_422_problem_naming_it(
    backend_http: httpx.Client, project_id: Any
) -> None:
    """Bug: on PostgreSQL a project_id of 41+ characters or with a NUL was a 500."""
    response = backend_http.post("/api/jobs", json={**FAST_SYNTHETIC, "project_id": project_id})

    assert failing_fields(assert_problem(response, 422, "validation-error")) == {"project_id"}


@pytest.mark.parametrize(
    ("field", "value"),
    [("steps", True), ("steps", "3"), ("step_ms", False), ("step_ms", "10"), ("fail_at", True)],
)
def test_a_bool_or_a_string_where_the_input_asks_a_number_is_a_422_naming_it(
    idle_http: httpx.Client, field: str, value: Any
) -> None:
    """Bug: `{"steps": true}` was read as 1 and `"3"` as 3, though the published
    schema asks for a number."""
    body = {"pipeline": "demo.synthetic", "input": {field: value}}

    response = idle_http.post("/api/jobs", json=body)

    assert failing_fields(assert_problem(response, 422, "validation-error")) == {f"input.{field}"}
    clip = idle_http.post("/api/projects", json={"clips": [body]})
    assert_problem(clip, 422, "validation-error")
    assert idle_http.get("/api/jobs").json()["items"] == []


def test_an_integer_where_the_input_asks_a_float_is_accepted(idle_http: httpx.Client) -> None:
    job = create(idle_http, {"pipeline": "demo.synthetic", "input": {"step_ms": 5, "steps": 2}})

    assert job["input"]["step_ms"] == 5.0
    assert job["input"]["steps"] == 2


def test_a_float_with_no_fraction_where_the_input_asks_an_integer_is_that_integer(
    idle_http: httpx.Client,
) -> None:
    """JSON Schema counts 2.0 as an integer; strict reading refused it."""
    job = create(idle_http, {"pipeline": "demo.synthetic", "input": {"steps": 2.0}})

    assert job["input"]["steps"] == 2
    response = idle_http.post(
        "/api/jobs", json={"pipeline": "demo.synthetic", "input": {"steps": 2.5}}
    )
    assert failing_fields(assert_problem(response, 422, "validation-error")) == {"input.steps"}


@pytest.mark.parametrize("field", ["steps", "step_ms"])
def test_a_whole_number_past_64_bits_in_the_input_is_a_422_naming_it(
    idle_http: httpx.Client, field: str
) -> None:
    """Bug: a float with no fraction was made an int before the input was read, and one
    past 64 bits (1e300) made orjson raise: a 500 (found by tests/test_fuzz_openapi.py
    once the document described each pipeline's input)."""
    body = {"pipeline": "demo.synthetic", "input": {field: 1e300}}

    response = idle_http.post("/api/jobs", json=body)

    assert failing_fields(assert_problem(response, 422, "validation-error")) == {f"input.{field}"}


def test_a_job_joins_a_project_of_its_tenant_by_id(backend_http: httpx.Client) -> None:
    project = backend_http.post(
        "/api/projects", json={"clips": [{"pipeline": "demo.synthetic", "input": {}}]}
    ).json()

    job = create(backend_http, {**FAST_SYNTHETIC, "project_id": project["id"]})

    assert job["project_id"] == project["id"]
    listed = backend_http.get("/api/jobs", params={"project_id": project["id"]}).json()
    assert job["id"] in [item["id"] for item in listed["items"]]


def test_a_project_id_that_names_no_project_is_a_422(backend_http: httpx.Client) -> None:
    response = backend_http.post(
        "/api/jobs", json={**FAST_SYNTHETIC, "project_id": "Project_1.2:3-" + "x" * 26}
    )

    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["project_id"]


@pytest.mark.parametrize(
    ("webhook", "fields"),
    [
        ("https://example.com/hook", {"webhook"}),
        ({}, {"webhook.url"}),
        ({"url": 42}, {"webhook.url"}),
        ({"url": "/relative/hook"}, {"webhook.url"}),
        ({"url": "ftp://example.com/hook"}, {"webhook.url"}),
        ({"url": "https://"}, {"webhook.url"}),
        ({"url": "https://example.com:99999/"}, {"webhook.url"}),
        ({"url": "https://example.com/a b"}, {"webhook.url"}),
        ({"url": "https://example.com/\u0000"}, {"webhook.url"}),
        ({"url": "https://example.com/" + "x" * 2029}, {"webhook.url"}),
        ({"url": "https://example.com/", "events": "job-completed"}, {"webhook.events"}),
        ({"url": "https://example.com/", "events": ["job-exploded"]}, {"webhook.events"}),
        ({"url": "https://example.com/", "events": [1]}, {"webhook.events"}),
        ({"url": "https://example.com/", "secret": "s"}, {"webhook.secret"}),
    ],
    ids=[
        "not-an-object",
        "no-url",
        "url-not-a-string",
        "relative-url",
        "ftp-url",
        "no-host",
        "port-out-of-range",
        "space",
        "nul",
        "over-2048-chars",
        "events-not-a-list",
        "unknown-event",
        "event-not-a-string",
        "unknown-key",
    ],
)
def test_a_bad_webhook_is_a_422_problem_naming_the_failing_part(
    backend_http: httpx.Client, webhook: Any, fields: set[str]
) -> None:
    """Bug: `webhook` was stored unchecked, whatever its shape."""
    response = backend_http.post("/api/jobs", json={**FAST_SYNTHETIC, "webhook": webhook})

    assert failing_fields(assert_problem(response, 422, "validation-error")) == fields
    assert backend_http.get("/api/jobs").json()["items"] == []


@pytest.mark.parametrize("url", ["https://[example.com/hook", "http://[::1/hook"])
def test_a_webhook_url_with_an_unclosed_bracket_is_a_422(idle_http: httpx.Client, url: str) -> None:
    """Bug: urlsplit raises on an unclosed IPv6 "[", the validator then read a name it
    had not set, and the job or project create answered 500 (found by
    tests/test_fuzz_openapi.py)."""
    for path, body in [
        ("/api/jobs", FAST_SYNTHETIC),
        ("/api/projects", {"clips": [FAST_SYNTHETIC]}),
    ]:
        response = idle_http.post(path, json={**body, "webhook": {"url": url}})

        assert failing_fields(assert_problem(response, 422, "validation-error")) == {"webhook.url"}


def test_a_webhook_with_an_url_of_2048_chars_and_known_events_is_accepted(
    idle_http: httpx.Client,
) -> None:
    url = "https://example.com/" + "x" * 2028
    webhook = {"url": url, "events": ["job-completed", "job-failed"]}

    create(idle_http, {**FAST_SYNTHETIC, "webhook": webhook})


@pytest.mark.parametrize(
    "metadata",
    [{f"k{index}": index for index in range(65)}, {"blob": "x" * (16 * 1024)}],
    ids=["65-keys", "over-16-kib"],
)
def test_metadata_over_its_limits_is_a_422_problem(
    idle_http: httpx.Client, metadata: JsonObject
) -> None:
    """Bug: metadata had no limit but the 1 MiB body, and came back in every snapshot."""
    response = idle_http.post("/api/jobs", json={**FAST_SYNTHETIC, "metadata": metadata})

    assert failing_fields(assert_problem(response, 422, "validation-error")) == {"metadata"}


def test_metadata_of_64_keys_is_accepted(idle_http: httpx.Client) -> None:
    metadata = {f"k{index}": index for index in range(64)}

    assert create(idle_http, {**FAST_SYNTHETIC, "metadata": metadata})["metadata"] == metadata


# -- headers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [b"a\tb", b"a b", b"caf\xe9", b"k" * 256],
    ids=["tab", "space", "not-ascii", "256-chars"],
)
def test_an_idempotency_key_that_is_not_1_to_255_visible_ascii_chars_is_a_400_problem(
    backend_http: httpx.Client, key: bytes
) -> None:
    """Bug: any header value was stored as the key; on PostgreSQL some were a 500."""
    response = backend_http.post("/api/jobs", json=FAST_SYNTHETIC, headers={"Idempotency-Key": key})

    assert_problem(response, 400, "bad-idempotency-key")
    assert backend_http.get("/api/jobs").json()["items"] == []


def test_an_idempotency_key_of_255_visible_ascii_chars_is_accepted(
    backend_http: httpx.Client,
) -> None:
    key = ("".join(chr(code) for code in range(0x21, 0x7F)) * 3)[:255]

    first = create(backend_http, FAST_SYNTHETIC, **{"Idempotency-Key": key})
    again = backend_http.post("/api/jobs", json=FAST_SYNTHETIC, headers={"Idempotency-Key": key})

    assert again.status_code == 200
    assert again.json()["id"] == first["id"]


@pytest.mark.parametrize(
    "prefer",
    ["wait=" + "9" * 5000, "wait=1000", "wait=0", "wait=-1", "wait=abc", 'foo="x wait=3"'],
    ids=["5000-digits", "4-digits", "zero", "negative", "not-a-number", "inside-a-quote"],
)
def test_a_malformed_prefer_wait_is_ignored(idle_http: httpx.Client, prefer: str) -> None:
    """Bug: `Prefer: wait=<4300+ digits>` was a 500, and `wait=` was found inside the
    quoted value of another preference."""
    response = idle_http.post("/api/jobs", json=FAST_SYNTHETIC, headers={"Prefer": prefer})

    assert response.status_code == 201, response.text
    assert "preference-applied" not in response.headers
    assert response.json()["status"] == "queued"


@pytest.mark.parametrize(
    ("prefer", "applied"),
    [
        ("wait=999", "wait=60"),
        ("respond-async, wait=5", "wait=5"),
        ('foo="a, wait=3";x=1, WAIT = "7"; p=q', "wait=7"),
    ],
    ids=["clamped-to-60", "among-others", "quoted-commas-and-params"],
)
def test_prefer_wait_is_read_as_an_rfc_7240_preference(
    http: httpx.Client, prefer: str, applied: str
) -> None:
    response = http.post("/api/jobs", json=FAST_SYNTHETIC, headers={"Prefer": prefer})

    assert response.status_code == 201, response.text
    assert response.headers["preference-applied"] == applied
    assert response.json()["status"] == "succeeded"


# -- ids in the path ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/jobs/%00"),
        ("POST", "/api/jobs/%00/cancel"),
        ("GET", "/api/files/%00"),
        ("GET", "/api/jobs/job_" + "0" * 100),
        ("GET", "/api/jobs/art_0000000000zzzzzzzzzzzzzz"),
        ("GET", "/api/files/job_0000000000zzzzzzzzzzzzzz"),
        ("GET", f"/api/jobs/{WELL_FORMED_UNKNOWN_JOB}"),
        ("POST", f"/api/jobs/{WELL_FORMED_UNKNOWN_JOB}/cancel"),
        ("GET", "/api/files/art_0000000000zzzzzzzzzzzzzz"),
    ],
    ids=[
        "job-nul",
        "cancel-nul",
        "file-nul",
        "job-over-long",
        "job-with-an-artifact-prefix",
        "file-with-a-job-prefix",
        "unknown-job",
        "cancel-unknown-job",
        "unknown-file",
    ],
)
def test_an_id_that_names_nothing_is_a_404_problem(
    backend_http: httpx.Client, method: str, path: str
) -> None:
    """Bug: on PostgreSQL a NUL or an over-long id in the path was a 500."""
    assert_problem(backend_http.request(method, path), 404, "not-found")


# -- query parameters -----------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "cursor=a%00b",
        "cursor=job_doesnotexist",
        "pipeline=%00",
        "pipeline=" + "p" * 201,
        "pipeline=demo%20video",
        "project_id=%00",
        "project_id=" + "p" * 41,
    ],
    ids=[
        "cursor-nul",
        "cursor-not-a-job-id",
        "pipeline-nul",
        "pipeline-over-200-chars",
        "pipeline-space",
        "project-nul",
        "project-over-40-chars",
    ],
)
def test_a_bad_list_filter_is_a_400_problem(backend_http: httpx.Client, query: str) -> None:
    """Bug: on PostgreSQL a NUL in `cursor` or `pipeline` was a 500."""
    assert_problem(backend_http.get(f"/api/jobs?{query}"), 400, "bad-query")


def test_a_list_filtered_by_a_200_char_pipeline_name_is_empty(backend_http: httpx.Client) -> None:
    response = backend_http.get("/api/jobs", params={"pipeline": "p" * 200})

    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


# -- problems -------------------------------------------------------------------------


class ProjectNotFound(UnknownId):
    """A kind of UnknownId that the problem mapping has never heard of."""


class AlreadyArchived(StateConflict):
    pass


def test_a_subclass_of_a_genwire_error_answers_with_its_parents_status(tmp_path: Path) -> None:
    """Bug: the status was looked up by the exact class, so a subclass of UnknownId was a 500."""
    app = create_app(Settings(data_dir=tmp_path / "data", workers=0))

    async def missing(request: Request) -> Response:
        raise ProjectNotFound("no project 'p1'")

    async def archived(request: Request) -> Response:
        raise AlreadyArchived("project p1 is archived")

    app.add_route("/missing", missing)
    app.add_route("/archived", archived)
    with ThreadedServer(app) as server, client_of(server) as client:
        problem = assert_problem(client.get("/missing"), 404, "not-found")
        assert problem["detail"] == "no project 'p1'"
        assert_problem(client.get("/archived"), 409, "conflict")


def test_a_401_answer_says_how_to_authenticate(live_server: LiveServer) -> None:
    """Bug: 401 problems carried no `WWW-Authenticate` challenge (RFC 9110 §11.6.1)."""
    server = live_server(workers=0, api_keys={"k1": "alice"})
    with client_of(server) as anonymous, client_of(server, "wrong") as wrong:
        for response in (
            anonymous.get("/api/jobs"),
            anonymous.post("/api/jobs", json=FAST_SYNTHETIC),
            wrong.get(f"/api/jobs/{WELL_FORMED_UNKNOWN_JOB}"),
            wrong.get("/api/files/art_0000000000zzzzzzzzzzzzzz"),
        ):
            assert_problem(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer"


# -- health ---------------------------------------------------------------------------


def test_healthz_answers_liveness_the_version_and_the_bus_only(
    backend_http: httpx.Client,
) -> None:
    """Bug: /healthz counted every job by status on each probe and showed the counts
    to anyone."""
    response = backend_http.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__, "bus": "in-process"}


def test_healthz_answers_503_without_the_database_error_when_the_database_is_gone(
    live_server: LiveServer, postgres_url: str
) -> None:
    """Bug: the 503 body carried the raw database error to an unauthenticated caller."""
    database_name = postgres_url.rsplit("/", 1)[1]
    with client_of(live_server(workers=0, database_url=postgres_url)) as client:
        assert client.get("/healthz").status_code == 200
        asyncio.run(_drop_database(postgres_url))

        response = client.get("/healthz")

    problem = assert_problem(response, 503, "database-unavailable")
    assert problem["detail"] == "the database does not answer"
    assert database_name not in response.text
