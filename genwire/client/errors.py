"""What the client raises; every failure is a `GenwireError`.

GenwireError              anything this client raises
├── ApiError              the server answered with an HTTP problem (RFC 9457):
│   │                     .status, .code, .problem, .errors
│   ├── InvalidInput      400, 413, 422: .errors lists the failing fields
│   ├── Unauthorized      401, 403: no valid API key, or not yours
│   ├── NotFound          404: unknown id (or another tenant's)
│   ├── Conflict          409: e.g. cancel of a job that has ended
│   ├── RateLimited       429: .retry_after, seconds to wait (None when not said)
│   └── ServerError       5xx
├── TransportFailed       the server could not be reached, or the exchange broke
├── Timeout               the caller's overall deadline passed (e.g. in `wait`)
└── DownloadFailed        a downloaded file did not match its size or sha256

Other statuses of 400 and above raise a plain `ApiError`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from genwire.client.types import FieldError


class GenwireError(Exception):
    """Anything the genwire client raises."""


class ApiError(GenwireError):
    """A problem+json answer (or any status of 400 and above) from the server."""

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        self.status = status
        self.problem = dict(problem)
        self.code = str(problem.get("code", "http-error"))
        self.errors = [
            FieldError(str(item.get("field")), str(item.get("message")))
            for item in problem.get("errors") or ()
            if isinstance(item, Mapping)
        ]
        detail = problem.get("detail") or problem.get("title") or f"HTTP {status}"
        lines = [f"{error.field}: {error.message}" for error in self.errors]
        super().__init__("\n  ".join([str(detail), *lines]))


class InvalidInput(ApiError):
    """400, 413 or 422: the request or the pipeline's input was refused."""


class Unauthorized(ApiError):
    """401 or 403."""


class NotFound(ApiError):
    """404."""


class Conflict(ApiError):
    """409."""


class RateLimited(ApiError):
    """429; `retry_after` is how many seconds the server asked to wait, if it said."""

    def __init__(
        self, status: int, problem: Mapping[str, Any], retry_after: float | None = None
    ) -> None:
        super().__init__(status, problem)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx."""


class TransportFailed(GenwireError):
    """The server could not be reached, or the connection broke before an answer."""


class Timeout(GenwireError):
    """The caller's overall deadline passed before the awaited outcome."""


class DownloadFailed(GenwireError):
    """The downloaded bytes did not match the artifact's size or sha256."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: InvalidInput,
    422: InvalidInput,
}


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP-date
    (RFC 9110 §10.2.3); None when absent or unreadable, never negative."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def error_for(
    status: int, problem: Mapping[str, Any], retry_after_header: str | None = None
) -> ApiError:
    """The exception class of an HTTP status, holding its problem."""
    if status == 429:
        return RateLimited(status, problem, parse_retry_after(retry_after_header))
    if status >= 500:
        return ServerError(status, problem)
    return _BY_STATUS.get(status, ApiError)(status, problem)
