"""`GET /openapi.json`: the OpenAPI 3.1 document of every `/api` call (SPEC §3).

Each handler declares its contract beside itself with `@documented(Operation(…))`:
its answers, the problem codes it can answer with, its parameters and the pydantic
model of its body, the same model it validates with. The document is built from
those declarations and the app's own route table: a route under `/api` with no
declaration fails the build (and `tests/test_openapi.py`), so it cannot drift.

A body declared `@documented_per_pipeline` (a job to create: `pipeline` and `input`)
is published as one variant per pipeline of the app's registry (`openapi_pipelines`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from genwire import __version__
from genwire.api.answers import Problem
from genwire.api.openapi_pipelines import REF, describe_per_pipeline
from genwire.api.responses import JsonResponse
from genwire.models import JsonObject

Endpoint = TypeVar("Endpoint", bound=Callable[[Request], Awaitable[Response]])
Body = TypeVar("Body", bound=type[BaseModel])

API_PREFIX = "/api"

#: What every call that reads a JSON body can answer besides its own problems.
JSON_BODY_PROBLEMS: Mapping[int, tuple[str, ...]] = {
    400: ("malformed-json", "too-deeply-nested", "incomplete-body"),
    413: ("body-too-large",),
}
#: What any call can answer: no key where keys are configured, the database gone, a bug.
_EVERY_CALL: Mapping[int, tuple[str, ...]] = {
    401: ("unauthorized",),
    500: ("internal-error",),
    503: ("store-unavailable",),
}
_STATUS_TEXT = {
    400: "The request cannot be read",
    401: "No valid API key (or stream token)",
    404: "Nothing of that id is the caller's",
    409: "The job or project has ended",
    413: "The body is over the limit",
    416: "No range of the request is in the file",
    422: "The body does not match",
    429: "Over a limit; try again after Retry-After",
    500: "A bug",
    503: "A store does not answer; try again shortly",
}


@dataclass(frozen=True)
class Param:
    """A query parameter or request header (path parameters come from the route)."""

    name: str
    where: Literal["query", "header", "path"]
    description: str
    schema: JsonObject = field(default_factory=lambda: {"type": "string"})


#: How a stream or long-poll is resumed (SPEC §4.2) and read without a key (`api.tokens`).
LAST_EVENT_ID = Param("Last-Event-ID", "header", "resume after this event id (wins over the query)")
LAST_EVENT_ID_QUERY = Param("last_event_id", "query", "resume after this event id")
STREAM_TOKEN = Param(
    "token", "query", "the stream token of the job's snapshot URLs, instead of a key"
)
#: An event of a Server-Sent Events stream (SPEC §4.5): before OpenAPI 3.2's
#: `itemSchema`, a stream's `schema` describes each of its events, read as an object.
EVENT_STREAM = {
    "type": "object",
    "description": "per event `id:`, `event:` (its type) and `data:` (the event as JSON)",
    "properties": {
        "id": {"type": "string"},
        "event": {"type": "string"},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "retry": {"type": "integer", "description": "milliseconds to wait before reconnecting"},
    },
    "required": ["data"],
}


@dataclass(frozen=True)
class Answer:
    """A successful answer: its body's model (JSON), a raw schema with its media type, or none."""

    description: str
    model: type[BaseModel] | None = None
    media_type: str = "application/json"
    schema: JsonObject | None = None
    headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    answers: Mapping[int, Answer]
    problems: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    body: type[BaseModel] | None = None
    params: tuple[Param, ...] = ()
    description: str | None = None


_DECLARED: dict[Callable[..., Any], Operation] = {}
_PER_PIPELINE: set[type[BaseModel]] = set()


def documented(operation: Operation) -> Callable[[Endpoint], Endpoint]:
    """Declare the contract of a handler; `openapi_document` publishes it."""

    def declare(endpoint: Endpoint) -> Endpoint:
        _DECLARED[endpoint] = operation
        return endpoint

    return declare


def documented_per_pipeline(model: Body) -> Body:
    """Declare a body whose `input` is the input of the pipeline it names: the document
    describes it, and its subclasses, as one variant per pipeline. Documentation only:
    the model validates as it did."""
    _PER_PIPELINE.add(model)
    return model


def api_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, Route]]:
    """Every route under `/api`, with its full path, Mounts walked."""
    for route in routes:
        if isinstance(route, Mount):
            yield from api_routes(route.routes, prefix + route.path)
        elif isinstance(route, Route) and (prefix + route.path).startswith(API_PREFIX + "/"):
            yield prefix + route.path, route


def documented_methods(route: Route) -> list[str]:
    """The route's methods but the HEAD that Starlette adds to every GET."""
    methods = set(route.methods or ())
    if "GET" in methods:
        methods.discard("HEAD")
    return sorted(methods)


def openapi_document(app: Starlette) -> JsonObject:
    """The OpenAPI 3.1 document of the app's `/api` routes; LookupError for a route
    whose handler declares no contract."""
    operations = []
    for path, route in api_routes(app.routes):
        operation = _DECLARED.get(route.endpoint)
        if operation is None:
            raise LookupError(f"{path} declares no contract: decorate its handler @documented")
        operations.append((path, route, operation))

    models: set[type[BaseModel]] = {Problem, *_PER_PIPELINE}
    for _, _, operation in operations:
        models.update(answer.model for answer in operation.answers.values() if answer.model)
        if operation.body is not None:
            models.add(operation.body)
    ordered = sorted(models, key=lambda model: model.__name__)
    refs, definitions = models_json_schema(
        [(model, "validation") for model in ordered], ref_template=REF
    )

    def ref(model: type[BaseModel]) -> JsonObject:
        return dict(refs[model, "validation"])

    schemas: dict[str, JsonObject] = definitions.get("$defs", {})
    per_pipeline = [
        _component_name(ref(model)) for model in ordered if issubclass(model, tuple(_PER_PIPELINE))
    ]
    describe_per_pipeline(schemas, per_pipeline, list(app.state.service.registry))

    paths: dict[str, JsonObject] = {}
    for path, route, operation in operations:
        item = paths.setdefault(path, {})
        for method in documented_methods(route):
            item[method.lower()] = _operation_json(route, operation, ref)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "genwire",
            "version": __version__,
            "description": (
                "Long generative-media jobs whose progress and results reach the caller "
                "over SSE, long-poll, poll or webhook. Errors are application/problem+json "
                "(RFC 9457) with a stable `code`. Every GET also answers HEAD."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "needed only when the server has API keys configured",
                }
            },
        },
        "security": [{}, {"apiKey": []}],
    }


def _component_name(reference: JsonObject) -> str:
    return str(reference["$ref"]).removeprefix(REF.format(model=""))


def _operation_json(
    route: Route, operation: Operation, ref: Callable[[type[BaseModel]], JsonObject]
) -> JsonObject:
    path_params = {param.name: param for param in operation.params if param.where == "path"}
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": path_params[name].description if name in path_params else name,
            "schema": {"type": "string"},
        }
        for name in route.param_convertors
    ]
    parameters += [
        {"name": param.name, "in": param.where, "description": param.description}
        | {"schema": param.schema}
        for param in operation.params
        if param.where != "path"
    ]
    responses: dict[str, JsonObject] = {}
    for status, answer in sorted(operation.answers.items()):
        response: JsonObject = {"description": answer.description}
        schema = ref(answer.model) if answer.model is not None else answer.schema
        if schema is not None:
            response["content"] = {answer.media_type: {"schema": schema}}
        if answer.headers:
            response["headers"] = {name: {"schema": {"type": "string"}} for name in answer.headers}
        responses[str(status)] = response
    problems: dict[int, list[str]] = {}
    for source in (_EVERY_CALL, operation.problems):
        for status, codes in source.items():
            known = problems.setdefault(status, [])
            known.extend(code for code in codes if code not in known)
    for status, listed in sorted(problems.items()):
        responses[str(status)] = {
            "description": f"{_STATUS_TEXT.get(status, 'A problem')}: {', '.join(listed)}",
            "content": {
                "application/problem+json": {
                    "schema": {"allOf": [ref(Problem), {"properties": {"code": {"enum": listed}}}]}
                }
            },
        }
    document: JsonObject = {
        "operationId": route.name,
        "summary": operation.summary,
        "tags": [operation.tag],
        "parameters": parameters,
        "responses": responses,
    }
    if operation.description:
        document["description"] = operation.description
    if operation.body is not None:
        document["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(operation.body)}},
        }
    return document


async def openapi_json(request: Request) -> Response:
    """The document, built once per app."""
    document: JsonObject | None = getattr(request.app.state, "openapi", None)
    if document is None:
        document = request.app.state.openapi = openapi_document(request.app)
    return JsonResponse(document)


routes = [Route("/openapi.json", openapi_json, methods=["GET"])]
