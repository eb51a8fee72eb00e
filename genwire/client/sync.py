"""A synchronous client for the job calls of SPEC §3."""

from __future__ import annotations

import os
import uuid
from typing import Any
from urllib.parse import quote

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"


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
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text or response.reason_phrase}
            raise ApiError(response.status_code, problem if isinstance(problem, dict) else {})
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

    def cancel(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self._call("POST", f"/api/jobs/{quote(job_id, safe='')}/cancel")
        return job

    def health(self) -> dict[str, Any]:
        health: dict[str, Any] = self._call("GET", "/healthz")
        return health
