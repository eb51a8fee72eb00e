"""What the HTTP API tests share: a live server and a client of it, creating a job
and waiting for it (`wait_for_status`, `wait_for_job`), reading problem answers,
dropping a test database."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import httpx

from genwire.models import JsonObject
from tests.conftest import POSTGRES_URL
from tests.waiting import wait_until

LiveServer = Callable[..., Any]


FAST_SYNTHETIC: JsonObject = {"pipeline": "demo.synthetic", "input": {"steps": 3, "step_ms": 1}}


def job_snapshot(client: httpx.Client, job_id: str) -> JsonObject:
    response = client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200, response.text
    job: JsonObject = response.json()
    return job


def wait_for_job(
    client: httpx.Client,
    job_id: str,
    accept: Callable[[JsonObject], bool],
    timeout: float = 30.0,
) -> JsonObject:
    """The job's snapshot, once `accept` takes it."""
    return wait_until(
        lambda: job_snapshot(client, job_id),
        f"job {job_id} to reach the expected state",
        until=accept,
        timeout=timeout,
    )


def wait_for_status(
    client: httpx.Client, job_id: str, statuses: Collection[str], timeout: float = 30.0
) -> JsonObject:
    """Poll `GET /api/jobs/{id}` until the job has one of `statuses`; its snapshot then."""
    return wait_until(
        lambda: job_snapshot(client, job_id),
        f"job {job_id} to be one of {sorted(statuses)}",
        until=lambda job: job["status"] in statuses,
        timeout=timeout,
    )


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
