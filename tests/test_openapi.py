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
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import Route

from genwire.api import create_app
from genwire.api.openapi import api_routes, documented_methods, openapi_document
from genwire.config import Settings
from genwire.models import JsonObject
from genwire.pipelines import (
    Pipeline,
    PipelineContext,
    PipelineRegistry,
    default_registry,
    pipeline,
)
from tests import pipelines as test_pipelines
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


def _input_with_shots(longest_s: int) -> type[BaseModel]:
    """An input with a required field and a nested model: pydantic puts the model in
    `$defs`, under the same name (`Shot`) for every pipeline made here; a property
    named like a keyword (`default`) refers to it too."""

    class Shot(BaseModel):
        model_config = ConfigDict(extra="forbid")
        seconds: int = Field(ge=1, le=longest_s)

    class ShotsInput(BaseModel):
        model_config = ConfigDict(extra="forbid")
        title: str = Field(min_length=1)
        shots: list[Shot] = Field(min_length=1)
        default: Shot | None = None

    return ShotsInput


def _own_pipeline(name: str, input_model: type[BaseModel]) -> Pipeline:
    async def run(ctx: PipelineContext, params: BaseModel) -> JsonObject:
        return {}

    return pipeline(name, input=input_model, phases={"work": (0, 100)})(run)


def _own_registry() -> PipelineRegistry:
    """The test pipelines, and a user's own: two whose inputs' `$defs` share a name,
    two whose names become the same component name."""
    registry = test_pipelines.test_registry()
    registry.register(_own_pipeline("own.short", _input_with_shots(5)))
    registry.register(_own_pipeline("own.long", _input_with_shots(60)))
    registry.register(_own_pipeline("own/a b", _input_with_shots(1)))
    registry.register(_own_pipeline("own_a_b", _input_with_shots(2)))
    return registry


@pytest.fixture(scope="module")
def own_document(tmp_path_factory: pytest.TempPathFactory) -> JsonObject:
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("own"), workers=0), _own_registry())
    return openapi_document(app)


def _resolve(document: JsonObject, reference: str) -> Any:
    """The value a local `$ref` (a JSON Pointer fragment, RFC 6901) points to."""
    assert reference.startswith("#/"), reference
    value: Any = document
    for token in reference[2:].split("/"):
        value = value[token.replace("~1", "/").replace("~0", "~")]
    return value


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str):
                yield item
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def _variants(document: JsonObject, body: JsonObject) -> dict[str, JsonObject]:
    """The variants of a per-pipeline body, by the pipeline their `pipeline` names."""
    body = _resolve(document, body["$ref"]) if "$ref" in body else body
    variants = [_resolve(document, item["$ref"]) for item in body["oneOf"]]
    by_pipeline = {variant["properties"]["pipeline"]["const"]: variant for variant in variants}
    assert body["discriminator"]["propertyName"] == "pipeline"
    mapping = body["discriminator"]["mapping"]
    assert {name: _resolve(document, target) for name, target in mapping.items()} == by_pipeline
    return by_pipeline


def _create_job_body(document: JsonObject) -> JsonObject:
    return document["paths"]["/api/jobs"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]


def _clip_body(document: JsonObject) -> JsonObject:
    project = _resolve(document, _request_schema(document, "/api/projects")["$ref"])
    return project["properties"]["clips"]["items"]


def test_the_served_document_has_a_create_variant_per_pipeline_of_the_apps_registry(
    live_server: LiveServer,
) -> None:
    registry = _own_registry()
    with client_of(live_server(registry, workers=0)) as client:
        document = client.get("/openapi.json").json()

    for body in (_create_job_body(document), _clip_body(document)):
        variants = _variants(document, body)
        assert sorted(variants) == sorted(item.name for item in registry)
        for name, variant in variants.items():
            described = registry.get(name)
            assert described is not None
            assert variant["additionalProperties"] is False
            assert variant.get("description", "") == described.description
    job = _variants(document, _create_job_body(document))
    assert {"metadata", "project_id", "webhook"} <= job["demo.video"]["properties"].keys()
    assert "project_id" not in _variants(document, _clip_body(document))["demo.video"]["properties"]


def test_each_variant_has_its_pipelines_input_schema(own_document: JsonObject) -> None:
    variants = _variants(own_document, _create_job_body(own_document))

    def input_of(name: str) -> Any:
        return _resolve(own_document, variants[name]["properties"]["input"]["$ref"])

    video = input_of("demo.video")
    duration = video["properties"]["duration_s"]
    assert (duration["type"], duration["minimum"], duration["maximum"]) == ("number", 1, 300)
    assert video["required"] == ["prompt"]
    assert input_of("test.sleeps")["properties"]["seconds"]["type"] == "number"
    assert input_of("own.short")["required"] == ["title", "shots"]
    for name in ("demo.synthetic", "demo.image", "test.raises", "replicate"):
        described = default_registry().get(name) or test_pipelines.test_registry().get(name)
        assert described is not None
        assert input_of(name) == described.input_model.model_json_schema()
    assert variants["demo.video"]["required"] == ["pipeline", "input"]
    assert variants["demo.synthetic"]["required"] == ["pipeline"]  # an absent input is {}


def test_every_ref_in_the_document_resolves_and_inputs_defs_do_not_collide(
    own_document: JsonObject,
) -> None:
    for reference in _refs(own_document):
        _resolve(own_document, reference)
    variants = _variants(own_document, _create_job_body(own_document))

    def shot_of(name: str) -> Any:
        own_input = _resolve(own_document, variants[name]["properties"]["input"]["$ref"])
        return _resolve(own_document, own_input["properties"]["shots"]["items"]["$ref"])

    assert shot_of("own.short")["properties"]["seconds"]["maximum"] == 5
    assert shot_of("own.long")["properties"]["seconds"]["maximum"] == 60
    assert shot_of("own/a b")["properties"]["seconds"]["maximum"] == 1
    assert shot_of("own_a_b")["properties"]["seconds"]["maximum"] == 2
    assert "$defs" not in str(list(_refs(own_document)))


def test_the_document_with_a_users_own_pipelines_is_valid_openapi_3_1(
    own_document: JsonObject,
) -> None:
    validate(own_document)


def test_an_app_with_no_pipeline_documents_the_body_as_its_model(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, workers=0), PipelineRegistry())
    document = openapi_document(app)

    validate(document)
    body = _resolve(document, _create_job_body(document)["$ref"])
    assert body["properties"]["input"]["type"] == "object"


#: A real create body of each built-in pipeline.
BUILT_IN_BODIES: dict[str, JsonObject] = {
    "demo.video": {"prompt": "a lighthouse at dusk", "duration_s": 2, "width": 320, "height": 180},
    "demo.image": {"prompt": "a red kite", "seed": 7},
    "demo.synthetic": FAST_SYNTHETIC["input"],
    "replicate": {"model": "black-forest-labs/flux-schnell", "input": {"prompt": "a fox"}},
    "fal": {"model": "fal-ai/flux/dev", "input": {"prompt": "a fox"}, "timeout_s": 600},
    "runware": {
        "task_type": "imageInference",
        "model": "runware:101@1",
        "input": {"positivePrompt": "a fox", "width": 512, "height": 512},
    },
}


@pytest.mark.parametrize("name", sorted(BUILT_IN_BODIES))
def test_a_real_create_body_of_each_built_in_pipeline_matches_the_documented_body(
    document: JsonObject, name: str
) -> None:
    built_in = default_registry().get(name)
    assert built_in is not None
    built_in.validate_input(BUILT_IN_BODIES[name])  # the server takes it
    body = {
        "pipeline": name,
        "input": BUILT_IN_BODIES[name],
        "metadata": {"order": 1},
        "webhook": {"url": "https://example.com/hook"},
    }

    jsonschema.validate(body, _request_schema(document, "/api/jobs"))
    clip = {key: body[key] for key in ("pipeline", "input", "metadata")}
    jsonschema.validate({"clips": [clip]}, _request_schema(document, "/api/projects"))


@pytest.mark.parametrize(
    "body",
    [
        {"pipeline": "demo.video", "input": {"prompt": "p", "duration_s": 301}},
        {"pipeline": "demo.video", "input": {"duration_s": 2}},
        {"pipeline": "demo.video"},
        {"pipeline": "demo.image", "input": {"prompt": "p", "colour": "red"}},
        {"pipeline": "runware", "input": {"task_type": "textInference", "model": "m"}},
        {"pipeline": "no.such.pipeline", "input": {}},
    ],
)
def test_an_input_its_pipeline_refuses_fails_the_documented_body(
    document: JsonObject, idle_http: httpx.Client, body: JsonObject
) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, _request_schema(document, "/api/jobs"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"clips": [body]}, _request_schema(document, "/api/projects"))

    assert idle_http.post("/api/jobs", json=body).status_code == 422
