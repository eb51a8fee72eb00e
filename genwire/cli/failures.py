"""What a client command says when a call fails: one line that names the server it
tried and what to do next, then the failing fields where the server listed them."""

from __future__ import annotations

import os
import re

import httpx

from genwire.client import (
    ApiError,
    GenwireError,
    InvalidInput,
    NotFound,
    RateLimited,
    ServerError,
    TransportFailed,
    Unauthorized,
)


def failure_lines(error: GenwireError, server: str) -> list[str]:
    """The message of a failed call to `server`, as plain text lines."""
    if isinstance(error, TransportFailed):
        return [
            f"cannot reach genwire at {server} ({_reason(error)}) — start it with "
            "`genwire serve`, or point --server / GENWIRE_URL at it"
        ]
    if not isinstance(error, ApiError):
        return [str(error)]
    detail, *fields = [line.strip() for line in str(error).split("\n")]
    answered = f"{error.status} {error.code}"
    if isinstance(error, Unauthorized):
        if os.environ.get("GENWIRE_API_KEY"):
            return [
                f"genwire at {server} refused the API key in GENWIRE_API_KEY ({answered}): "
                "set it to one of the server's keys"
            ]
        return [f"genwire at {server} wants an API key ({answered}): set GENWIRE_API_KEY"]
    if isinstance(error, NotFound):
        line = f"{detail} at {server} ({answered}) — `genwire jobs` lists the jobs you can see"
    elif isinstance(error, RateLimited):
        wait = "a moment" if error.retry_after is None else f"{error.retry_after:.0f} s"
        line = (
            f"genwire at {server} holds this key back ({answered}): {detail}; try again in {wait}"
        )
    elif isinstance(error, ServerError):
        line = (
            f"genwire at {server} failed ({answered}): {detail} — try again; if it goes on, "
            f"the server's log says why, and `genwire doctor {server}` checks the deployment"
        )
    elif isinstance(error, InvalidInput):
        line = f"genwire at {server} refused the request ({answered}): {detail}"
    else:
        line = f"genwire at {server} answered {answered}: {detail}"
    return [line, *fields]


def _reason(error: TransportFailed) -> str:
    """Why the exchange failed, in a few words: "connection refused", "timed out"."""
    cause = error.__cause__
    if isinstance(cause, httpx.TimeoutException):
        return "timed out"
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(cause or error).strip())
    return text[:1].lower() + text[1:] if text else type(cause).__name__
