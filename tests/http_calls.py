"""What the HTTP API tests share: a live server and a client of it, creating a job
and waiting for its status, reading problem answers, dropping a test database."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

import httpx

from genwire.models import JsonObject
from tests.conftest import POSTGRES_URL

LiveServer = Callable[..., Any]


FAST_SYNTHETIC: JsonObject = {"pipeline": "demo.synthetic", "input": {"steps": 3, "step_ms": 1}}


def wait_for_status(
    client: httpx.Client, job_id: str, statuses: Collection[str], timeout: float = 30.0
) -> JsonObject:
    """Poll `GET /api/jobs/{id}` until the job has one of `statuses`; its snapshot then."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/api/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: JsonObject = response.json()
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(
                f"job {job_id} is still {job['status']} after {timeout} s, not {sorted(statuses)}"
            )
        time.sleep(0.02)


def create(client: httpx.Client, body: JsonObject, **headers: str) -> JsonObject:
    response = client.post("/api/jobs", json=body, headers=headers)
    assert response.status_code == 201, response.text
    job: JsonObject = response.json()
    return job


def assert_problem(response: httpx.Response, status: int, code: str) -> JsonObject:
    """The response is an RFC 9457 problem with this status and stable code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: JsonObject = response.json()
    assert problem["status"] == status
    assert problem["code"] == code
    assert problem["type"].endswith(code)
    assert problem["title"]
    return problem


def failing_fields(problem: JsonObject) -> set[str]:
    return {error["field"] for error in problem["errors"]}


def client_of(server: Any, api_key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=server.url, timeout=30, headers=headers)


async def _drop_database(url: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await admin.close()
