"""One HTTP client per provider: retries with backoff and jitter, `Retry-After`
honoured, failures classified (SPEC §7.1 error codes), secrets kept out of messages.

Only requests that are safe to repeat are retried on an ambiguous failure. A create
is repeated only when the provider said for certain that it did nothing (429, 503,
or a connection never made): a 500 or a time-out after sending may have created
the job, and a second create is a second bill.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger("genwire.providers")

#: Pauses before the 2nd, 3rd… try of a failing request, before jitter.
RETRY_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
MAX_RETRY_AFTER_S = 120.0  #: a longer Retry-After is waited this long, then tried again
#: statuses that mean "not done, try later" whatever the method
CERTAINLY_NOT_DONE = frozenset({429, 503})
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


_SECRET_IN_QUERY = re.compile(r"([?&](?:secret|token)=)[^&\s\"']*")


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced, and any `secret=` of a URL in it masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return redact_query_secrets(text)


def redact_query_secrets(text: str) -> str:
    """`text` with the value of every `secret=` and `token=` query parameter masked:
    a provider webhook's secret (which a provider may quote back) and a stream
    token (`genwire.tokens`), both in URLs that uvicorn's access log prints whole."""
    return _SECRET_IN_QUERY.sub(r"\1[redacted]", text)


class ProviderError(Exception):
    """A provider call that failed; `code` is the job error code it maps to."""

    code = "provider_unavailable"
    retryable = True

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class ProviderUnavailable(ProviderError):
    """5xx, 429 or the network, past the retries."""


class ProviderRejected(ProviderError):
    """The provider refused the request: its input, or genwire's key (final)."""

    code = "provider_rejected"
    retryable = False


class ProviderGone(ProviderError):
    """The provider does not know this job (any more)."""

    code = "provider_failed"
    retryable = False


@dataclass
class RequestCounter:
    """Requests made per provider, for the closing figures and `/metrics`."""

    total: int = 0
    retried: int = 0


class ProviderHttp:
    """An `httpx.AsyncClient` for one provider, with its auth and its secrets."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        headers: dict[str, str],
        secrets: Iterable[str],
        *,
        timeout_s: float = 30.0,
        backoff_s: tuple[float, ...] = RETRY_BACKOFF_S,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.secrets = [secret for secret in secrets if secret]
        self.backoff_s = backoff_s
        self.counter = RequestCounter()
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            follow_redirects=False,
        )

    async def close(self) -> None:
        await self._client.aclose()

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        idempotent: bool = True,
        accept: Iterable[int] = (),
    ) -> httpx.Response:
        """The answer, 2xx or a status in `accept`; retries what may be retried.

        Raises `ProviderRejected` for a 4xx the provider means (input, auth),
        `ProviderUnavailable` once retries are spent."""
        url = self.url(path)
        accepted = set(accept)
        last_problem = "no answer"
        pause = 0.0
        for attempt in range(len(self.backoff_s) + 1):
            if attempt:
                self.counter.retried += 1
                await asyncio.sleep(pause)
            self.counter.total += 1
            pause = self.backoff_s[min(attempt, len(self.backoff_s) - 1)] * random.uniform(0.8, 1.2)
            try:
                answer = await self._client.request(method, url, json=json, params=params)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
                last_problem = f"cannot connect: {error}"
                continue  # nothing reached the provider: safe for any method
            except httpx.TransportError as error:
                last_problem = f"{type(error).__name__}: {error}"
                if not idempotent:
                    raise ProviderUnavailable(self._say(method, url, last_problem)) from None
                continue
            if answer.is_success or answer.status_code in accepted:
                return answer
            last_problem = f"HTTP {answer.status_code}: {_excerpt(answer)}"
            retryable = CERTAINLY_NOT_DONE if not idempotent else RETRYABLE_STATUSES
            if answer.status_code not in retryable:
                refused = (
                    400 <= answer.status_code < 500 and answer.status_code not in RETRYABLE_STATUSES
                )
                error_class = ProviderRejected if refused else ProviderUnavailable
                raise error_class(
                    self._say(method, url, last_problem), status_code=answer.status_code
                )
            wait = retry_after_s(answer)
            if wait is not None:
                pause = min(wait, MAX_RETRY_AFTER_S)
        raise ProviderUnavailable(
            self._say(method, url, f"gave up after retries; last: {last_problem}")
        )

    def _say(self, method: str, url: str, problem: str) -> str:
        path = httpx.URL(url).path
        return redact(f"{self.provider} {method} {path}: {problem}", self.secrets)


def retry_after_s(answer: httpx.Response) -> float | None:
    """`Retry-After` as seconds (delta or HTTP date), None when absent or unreadable."""
    value = answer.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _excerpt(answer: httpx.Response, limit: int = 300) -> str:
    """The provider's own words about a failure: its `detail`, `message` or body."""
    try:
        body = answer.json()
    except ValueError:
        return answer.text[:limit].strip() or answer.reason_phrase
    return provider_message(body)[:limit] or answer.reason_phrase


def provider_message(body: Any) -> str:
    """The human part of a provider's error body, whatever its shape."""
    if isinstance(body, dict):
        for key in ("detail", "message", "error", "title"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, list) and value:
                return "; ".join(provider_message(item) for item in value[:3])
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            return "; ".join(provider_message(item) for item in errors[:3])
        if isinstance(body.get("msg"), str):
            location = ".".join(str(part) for part in body.get("loc", []))
            return f"{location}: {body['msg']}" if location else str(body["msg"])
    if isinstance(body, str):
        return body
    return str(body)[:300]
