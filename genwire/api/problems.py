"""RFC 9457 problem responses with stable `type` and `code`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from genwire.errors import (
    Conflict,
    GenwireError,
    IdempotencyMismatch,
    InvalidInput,
    NotFound,
)

PROBLEM_TYPE_PREFIX = "urn:genwire:problem:"

_STATUS_OF: dict[type[GenwireError], int] = {
    NotFound: 404,
    InvalidInput: 422,
    Conflict: 409,
    IdempotencyMismatch: 422,
}


class ProblemResponse(Response):
    media_type = "application/problem+json"

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_PREFIX + code,
            "code": code,
            "title": title,
            "status": status,
        }
        if detail is not None:
            body["detail"] = detail
        body.update(extensions)
        super().__init__(orjson.dumps(body), status_code=status, headers=headers)


def problem_from_error(error: GenwireError) -> ProblemResponse:
    status = _STATUS_OF.get(type(error), 500)
    extensions: dict[str, Any] = {}
    if isinstance(error, InvalidInput):
        extensions["errors"] = [{"field": e.field, "message": e.message} for e in error.errors]
    return ProblemResponse(status, error.code, _title(error.code), error.message, **extensions)


def _title(code: str) -> str:
    return code.replace("-", " ").capitalize()


async def handle_genwire_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, GenwireError)
    return problem_from_error(error)


class BadRequest(GenwireError):
    """A request the API cannot read at all (malformed JSON, wrong shape)."""

    code = "bad-request"

    def __init__(self, message: str, status: int = 400, code: str = "bad-request") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


async def handle_bad_request(request: Request, error: Exception) -> Response:
    assert isinstance(error, BadRequest)
    return ProblemResponse(error.status, error.code, _title(error.code), error.message)
