"""Reading requests: bounded JSON bodies, the caller's tenant, query parameters."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from genwire.api.problems import BadRequest
from genwire.config import Settings


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def read_json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; 413 past the size limit, 400 when unreadable."""
    limit = settings_of(request).max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise _too_large(limit)
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"the body is not valid JSON: {error}", code="malformed-json") from None
    if not isinstance(parsed, dict):
        raise BadRequest("the body must be a JSON object", code="malformed-json")
    return parsed


def _too_large(limit: int) -> BadRequest:
    return BadRequest(f"the body is larger than {limit} bytes", status=413, code="body-too-large")


def tenant_of(request: Request) -> str:
    """The tenant of the caller's API key; "default" when the server has no keys."""
    keys = settings_of(request).api_keys
    if not keys:
        return "default"
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    tenant = keys.get(token.strip()) if scheme.lower() == "bearer" else None
    if tenant is None:
        raise BadRequest(
            "a valid API key is required (Authorization: Bearer …)", 401, "unauthorized"
        )
    return tenant


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
