"""A synchronous client for the job calls of SPEC §3 and the job stream of §4."""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from httpx_sse import SSEError, connect_sse

DEFAULT_URL = "http://127.0.0.1:8000"
#: A stream silent this long is dead (twice the server's default keepalive, SPEC §6).
STREAM_SILENCE_S = 20.0
TERMINAL_EVENT_TYPES = frozenset({"job-completed", "job-failed", "job-cancelled"})


class ApiError(Exception):
    """A problem+json answer (or any non-2xx) from the server."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.code = str(problem.get("code", "http-error"))
        detail = problem.get("detail") or problem.get("title") or f"HTTP {status}"
        errors = problem.get("errors") or []
        lines = [f"{item.get('field')}: {item.get('message')}" for item in errors]
        super().__init__("\n  ".join([str(detail), *lines]))


def _api_error(response: httpx.Response) -> ApiError:
    try:
        problem = response.json()
    except ValueError:
        problem = {"detail": response.text or response.reason_phrase}
    return ApiError(response.status_code, problem if isinstance(problem, dict) else {})


def _backoff(failures: int) -> float:
    """1, 2, 4, 8, 16 s (capped), each with ±20 % jitter so clients do not reconnect in step."""
    if failures == 0:
        return 0.0
    base = min(2.0 ** (failures - 1), 16.0)
    return base * random.uniform(0.8, 1.2)


class Client:
    def __init__(
        self,
        server: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = (server or os.environ.get("GENWIRE_URL") or DEFAULT_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get("GENWIRE_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(
            base_url=self.server, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def absolute(self, url: str) -> str:
        return url if "://" in url else f"{self.server}{url}"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise _api_error(response)
        return response.json()

    def pipelines(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._call("GET", "/api/pipelines")["items"]
        return items

    def submit(
        self,
        pipeline: str,
        input: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        wait: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create a job. It always carries an idempotency key, so resending it is safe."""
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        if wait is not None:
            headers["Prefer"] = f"wait={wait}"
        body: dict[str, Any] = {"pipeline": pipeline, "input": input}
        if metadata:
            body["metadata"] = metadata
        timeout = (wait or 0) + 30.0
        job: dict[str, Any] = self._call(
            "POST", "/api/jobs", json=body, headers=headers, timeout=timeout
        )
        return job

    def get(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self._call("GET", f"/api/jobs/{quote(job_id, safe='')}")
        return job

    def list(self, **filters: Any) -> dict[str, Any]:
        params = {name: value for name, value in filters.items() if value is not None}
        page: dict[str, Any] = self._call("GET", "/api/jobs", params=params)
        return page

    def events(self, job_id: str, after: str | None = None) -> Iterator[dict[str, Any]]:
        """The job's events after `after` (all of them by default), each once, in
        order, until its terminal event. A dropped stream is resumed from the last
        id received, after 1, 2, 4 … 16 s (with jitter), so no event is lost."""
        cursor = after
        failures = 0
        while True:
            headers = {"Last-Event-ID": cursor} if cursor else {}
            try:
                with connect_sse(
                    self._http,
                    "GET",
                    f"/api/jobs/{quote(job_id, safe='')}/events",
                    headers=headers,
                    timeout=httpx.Timeout(30.0, read=STREAM_SILENCE_S),
                ) as source:
                    response = source.response
                    if response.status_code == 204:
                        return
                    if response.status_code >= 400:
                        response.read()
                        raise _api_error(response)
                    for message in source.iter_sse():
                        if not message.data:
                            continue
                        event: dict[str, Any] = orjson.loads(message.data)
                        cursor = message.id or event.get("id") or cursor
                        failures = 0
                        yield event
                        if event.get("type") in TERMINAL_EVENT_TYPES:
                            return
            except (httpx.TransportError, SSEError):
                failures += 1
            time.sleep(_backoff(failures))

    def cancel(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self._call("POST", f"/api/jobs/{quote(job_id, safe='')}/cancel")
        return job

    def health(self) -> dict[str, Any]:
        health: dict[str, Any] = self._call("GET", "/healthz")
        return health
