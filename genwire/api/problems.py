"""RFC 9457 problem responses with stable `type` and `code`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from genwire.errors import (
    InputRejected,
    ServiceError,
    StorageUnavailable,
    StoreUnavailable,
    TooManyRequests,
)

PROBLEM_TYPE_PREFIX = "urn:genwire:problem:"
log = logging.getLogger("genwire.api")


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
        body = problem_body(status, code, detail, title=title, **extensions)
        super().__init__(body, status_code=status, headers=headers)


def problem_body(
    status: int, code: str, detail: str | None, *, title: str | None = None, **extensions: Any
) -> bytes:
    """A problem's JSON, for `ProblemResponse` and for answers written below ASGI (the
    connection guard's); `title` defaults to the code in words."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + code,
        "code": code,
        "title": title if title is not None else _title(code),
        "status": status,
    }
    if detail is not None:
        body["detail"] = detail
    body.update(extensions)
    return orjson.dumps(body)


def problem_from_error(error: ServiceError) -> ProblemResponse:
    """The problem of any ServiceError: its status is looked up along the class's MRO,
    so a subclass answers with its nearest ancestor's status."""
    extensions: dict[str, Any] = {}
    if isinstance(error, InputRejected):
        extensions["errors"] = [{"field": e.field, "message": e.message} for e in error.errors]
    # RFC 9110 §15.5.2: a 401 must say how to authenticate.
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    if isinstance(error, TooManyRequests):
        # RFC 9110 §10.2.3; the client waits this long before asking again.
        headers = {"Retry-After": str(error.retry_after_s)}
    detail = error.message
    if isinstance(error, StoreUnavailable):
        # The database's own words go to the log, never to the caller.
        log.warning("the database failed a request: %s", error.message)
        detail = "the database does not answer; try again shortly"
    elif isinstance(error, StorageUnavailable):
        log.warning("the artifact storage failed a request: %s", error.message)
        detail = "the artifact storage does not answer; try again shortly"
    return ProblemResponse(
        error.status,
        error.code,
        _title(error.code),
        detail,
        headers=headers,
        **extensions,
    )


def _title(code: str) -> str:
    return code.replace("-", " ").capitalize()


async def handle_genwire_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ServiceError)
    return problem_from_error(error)
