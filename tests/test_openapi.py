"""`GET /openapi.json` and the page at `/docs` (SPEC §3): the document is valid
OpenAPI 3.1, covers every `/api` route of the app and nothing else, and says what
the API accepts and answers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate
from starlette.routing import Route

from genwire.api import create_app
from genwire.api.openapi import api_routes, documented_methods, openapi_document
from genwire.config import Settings
from genwire.models import JsonObject
from tests.http_calls import FAST_SYNTHETIC, LiveServer, client_of, create, wait_for_job


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> JsonObject:
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("data"), workers=0))
    return openapi_document(app)


@pytest.fixture
def idle_http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with client_of(live_server(workers=0)) as client:
        yield client


def schema_of(document: JsonObject, path: str, method: str, status: int) -> JsonObject:
    """The JSON body schema of one answer, its refs resolvable against the document."""
    answer = document["paths"][path][method]["responses"][str(status)]
    media = "application/problem+json" if status >= 400 else "application/json"
    return {**answer["content"][media]["schema"], "components": document["components"]}


def conforms(document: JsonObject, path: str, method: str, response: httpx.Response) -> None:
    schema = schema_of(document, path, method, response.status_code)
    jsonschema.validate(response.json(), schema)


def test_the_document_is_valid_openapi_3_1(document: JsonObject) -> None:
    validate(document)

    assert document["openapi"] == "3.1.0"


def test_every_api_route_is_in_the_document_with_its_methods_and_nothing_else(
    tmp_path: Path,
) -> None:
    app = create_app(Settings(data_dir=tmp_path, workers=0))
    routes = {
        (re.sub(r":[a-z]+}", "}", path), method.lower())
        for path, route in api_routes(app.routes)
        for method in documented_methods(route)
    }

    documented = {
        (path, method) for path, item in openapi_document(app)["paths"].items() for method in item
    }

    assert documented == routes
    assert {path for path, _ in routes} >= {"/api/jobs", "/api/jobs/{job_id}/events"}


def test_a_route_added_without_a_declaration_fails_the_document(tmp_path: Path) -> None:
    async def undeclared(request: Any) -> Any:
        raise AssertionError

    app = create_app(Settings(data_dir=tmp_path, workers=0))
    app.router.routes[-1].routes.append(Route("/undeclared", undeclared))  # type: ignore[attr-defined]

    with pytest.raises(LookupError, match="/api/undeclared"):
        openapi_document(app)


def test_each_operation_lists_its_problem_codes(document: JsonObject) -> None:
    create_job = document["paths"]["/api/jobs"]["post"]["responses"]
    assert schema_of(document, "/api/jobs", "post", 422)["allOf"][1] == {
        "properties": {
            "code": {
                "enum": ["validation-error", "provider-not-configured", "idempotency-key-reused"]
            }
        }
    }
    assert {"400", "401", "413", "422", "429", "500", "503"} <= set(create_job)
    cancel = schema_of(document, "/api/jobs/{job_id}/cancel", "post", 409)
    assert cancel["allOf"][1]["properties"]["code"]["enum"] == ["conflict"]


ACCEPTED: list[JsonObject] = [
    FAST_SYNTHETIC,
    {"pipeline": "demo.synthetic"},
    {**FAST_SYNTHETIC, "project_id": None, "metadata": {"k": 1}},
    {**FAST_SYNTHETIC, "webhook": {"url": "https://example.com/h", "events": ["job-completed"]}},
]
REFUSED: list[JsonObject] = [
    {"input": {}},
    {"pipeline": ""},
    {"pipeline": 7},
    {**FAST_SYNTHETIC, "colour": "red"},
    {**FAST_SYNTHETIC, "input": []},
    {**FAST_SYNTHETIC, "project_id": "a b"},
    {**FAST_SYNTHETIC, "project_id": "p" * 41},
    {**FAST_SYNTHETIC, "metadata": {f"k{index}": index for index in range(65)}},
    {**FAST_SYNTHETIC, "webhook": "https://example.com/h"},
    {**FAST_SYNTHETIC, "webhook": {"url": "ftp://example.com/h"}},
    {**FAST_SYNTHETIC, "webhook": {"url": "https://example.com/", "events": ["job-exploded"]}},
    {**FAST_SYNTHETIC, "webhook": {"url": "https://example.com/", "secret": "s"}},
]


@pytest.mark.parametrize("body", ACCEPTED)
def test_a_body_the_api_accepts_matches_the_create_schema(
    document: JsonObject, idle_http: httpx.Client, body: JsonObject
) -> None:
    jsonschema.validate(body, _request_schema(document, "/api/jobs"))

    assert idle_http.post("/api/jobs", json=body).status_code == 201


@pytest.mark.parametrize("body", REFUSED)
def test_a_body_the_api_refuses_fails_the_create_schema(
    document: JsonObject, idle_http: httpx.Client, body: JsonObject
) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, _request_schema(document, "/api/jobs"))

    assert idle_http.post("/api/jobs", json=body).status_code == 422


REFUSED_PROJECTS: list[JsonObject] = [
    {"clips": []},
    {"clips": [{**FAST_SYNTHETIC, "webhook": None}]},
    {"clips": [FAST_SYNTHETIC], "name": "a\nb"},
]


@pytest.mark.parametrize("body", REFUSED_PROJECTS)
def test_a_project_the_api_refuses_fails_the_project_schema(
    document: JsonObject, idle_http: httpx.Client, body: JsonObject
) -> None:
    schema = _request_schema(document, "/api/projects")
    jsonschema.validate({"clips": [FAST_SYNTHETIC], "name": "a"}, schema)

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, schema)
    assert idle_http.post("/api/projects", json=body).status_code == 422


def _request_schema(document: JsonObject, path: str) -> JsonObject:
    schema = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return {**schema, "components": document["components"]}


def test_real_answers_conform_to_their_schemas(document: JsonObject, http: httpx.Client) -> None:
    job = create(http, FAST_SYNTHETIC)
    done = wait_for_job(http, job["id"], lambda snapshot: snapshot["status"] == "succeeded")
    project = http.post("/api/projects", json={"clips": [FAST_SYNTHETIC]})

    conforms(document, "/api/jobs/{job_id}", "get", http.get(f"/api/jobs/{done['id']}"))
    conforms(document, "/api/jobs", "get", http.get("/api/jobs"))
    conforms(document, "/api/jobs/{job_id}/poll", "get", http.get(f"/api/jobs/{job['id']}/poll"))
    conforms(document, "/api/poll", "get", http.get("/api/poll", params={"wait": 0}))
    conforms(document, "/api/projects", "post", project)
    conforms(document, "/api/pipelines", "get", http.get("/api/pipelines"))
    conforms(document, "/api/jobs/{job_id}/cancel", "post", http.post(f"{done['urls']['cancel']}"))
    conforms(document, "/api/jobs", "post", http.post("/api/jobs", json={"input": {}}))
    conforms(document, "/api/jobs", "get", http.get("/api/jobs", params={"limit": 0}))


def test_openapi_json_is_served_at_the_root(http: httpx.Client, document: JsonObject) -> None:
    answer = http.get("/openapi.json")

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["paths"].keys() == document["paths"].keys()


def test_the_docs_page_loads_only_its_own_assets(http: httpx.Client) -> None:
    page = http.get("/docs")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/ui/docs.js">' in page.text
    for name in ("docs.js", "docs.css"):
        asset = http.get(f"/ui/{name}")
        assert asset.status_code == 200
        assert not re.search(r"https?://", asset.text), name
    assert not re.search(r"https?://", page.text)
