"""Reading requests: bounded JSON bodies, the caller's tenant, ids and query parameters.

Everything read here is checked before it reaches the database: PostgreSQL refuses a
NUL in text and a value longer than its column, and either would be a 500.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_plus

import orjson
from starlette.requests import Request

from genwire.apikeys import ApiKeys
from genwire.config import Settings
from genwire.errors import BadRequest, NotAuthenticated, UnknownId
from genwire.projects import ProjectService
from genwire.providers.remote import RemoteProviders
from genwire.service import JobService

#: Deepest nesting of objects and arrays a body may have. orjson reads up to 1024
#: levels but writes only 254, so a deeper body could be stored and never sent back.
MAX_JSON_DEPTH = 32

#: The ids of `genwire.ids.new_id`: a prefix, then 26 characters of lower-case
#: Crockford base32.
_ID_BODY = re.compile(r"[0-9a-hjkmnp-tv-z]{26}")
#: Names of pipelines and projects: what fits their columns, with no control characters.
_NAME = re.compile(r"[A-Za-z0-9_.:-]+")
MAX_PIPELINE_NAME_LENGTH = 200
MAX_PROJECT_ID_LENGTH = 40
QUERY_KEY = "genwire.query"  #: the scope's parsed query string (`query_value`)


def query_value(request: Request, name: str) -> str | None:
    """Query parameter `name` as Starlette's `query_params` gives it (the last of
    several), parsed once per request into a plain dict: the delivery routes ask for
    two or three at every long-poll answer, and the multi-dict costs more than the
    answer's own work."""
    values: dict[str, str] | None = request.scope.get(QUERY_KEY)
    if values is None:
        values = request.scope[QUERY_KEY] = _parse_query(request.scope["query_string"])
    return values.get(name)


def _parse_query(raw: bytes) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in raw.decode("latin-1").split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        if "%" in pair or "+" in pair:
            key, value = unquote_plus(key), unquote_plus(value)
        values[key] = value
    return values


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def projects_of(request: Request) -> ProjectService:
    projects: ProjectService = request.app.state.projects
    return projects


def remote_of(request: Request) -> RemoteProviders:
    """The providers this process may call, and the record of their calls."""
    remote: RemoteProviders = request.app.state.remote
    return remote


def service_of(request: Request) -> JobService:
    service: JobService = request.app.state.service
    return service


async def read_json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; 413 past the size limit, 400 when unreadable or
    nested deeper than MAX_JSON_DEPTH."""
    body = await read_bounded_body(request, settings_of(request).max_body_bytes)
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"the body is not valid JSON: {error}", code="malformed-json") from None
    if not isinstance(parsed, dict):
        raise BadRequest("the body must be a JSON object", code="malformed-json")
    if _nested_deeper_than(parsed, MAX_JSON_DEPTH):
        raise BadRequest(
            f"the body nests objects and arrays deeper than {MAX_JSON_DEPTH} levels",
            code="too-deeply-nested",
        )
    return parsed


async def read_bounded_body(request: Request, limit: int) -> bytes:
    """The raw body; 413 as soon as it is known to pass `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether objects and arrays nest more than `limit` levels (the outermost is 1)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def _too_large(limit: int) -> BadRequest:
    return BadRequest(f"the body is larger than {limit} bytes", status=413, code="body-too-large")


def api_keys_of(request: Request) -> ApiKeys:
    keys: ApiKeys = request.app.state.api_keys
    return keys


def tenant_of(request: Request) -> str:
    """The tenant of the caller's API key; "default" when the server has no keys."""
    keys = api_keys_of(request)
    if not keys.required:
        return "default"
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    tenant = keys.tenant_of(token.strip()) if scheme.lower() == "bearer" else None
    if tenant is None:
        raise NotAuthenticated("a valid API key is required (Authorization: Bearer …)")
    return tenant


def is_id(text: str, prefix: str) -> bool:
    """Whether `text` has the shape of an id made by `genwire.ids.new_id(prefix)`."""
    head, underscore, body = text.partition("_")
    return head == prefix and underscore == "_" and _ID_BODY.fullmatch(body) is not None


def path_id(request: Request, name: str, prefix: str) -> str:
    """The path parameter `name` (e.g. "job_id"), an id made by `new_id(prefix)`.

    Any other text names nothing: a 404 without asking the database."""
    value: str = request.path_params[name]
    if not is_id(value, prefix):
        raise UnknownId(f"no {name.removesuffix('_id')} {value!r}")
    return value


def is_name(text: str, max_length: int) -> bool:
    return len(text) <= max_length and _NAME.fullmatch(text) is not None


def name_param(request: Request, name: str, max_length: int) -> str | None:
    """An optional query parameter naming a pipeline or project; empty means absent."""
    value = request.query_params.get(name) or None
    if value is not None and not is_name(value, max_length):
        raise BadRequest(
            f"query parameter {name!r} must be 1–{max_length} characters of "
            "letters, digits and _.:-",
            code="bad-query",
        )
    return value


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name!r} must be an integer", code="bad-query") from None
    if not low <= value <= high:
        raise BadRequest(f"query parameter {name!r} must be within {low}–{high}", code="bad-query")
    return value
