"""Jobs as the benchmarks drive them: `demo.synthetic` jobs created over HTTP, a job
that only waits (to hold a worker slot or a stream), and how many have ended."""

from __future__ import annotations

import time
from typing import Any

import httpx

from genwire.models import JobStatus
from genwire.store import Store

HOLD_MS = 600_000  #: the step of a job that only waits
TERMINAL = tuple(status.value for status in JobStatus if status.is_terminal)
#: Counting on every commit would make the waiter compete with the workers it times.
CHECK_EVERY_S = 0.02


def create_job(http: httpx.Client, steps: int, step_ms: float) -> dict[str, Any]:
    body = {"pipeline": "demo.synthetic", "input": {"steps": steps, "step_ms": step_ms}}
    response = http.post("/api/jobs", json=body)
    response.raise_for_status()
    job: dict[str, Any] = response.json()
    return job


def running_job(http: httpx.Client, steps: int, step_ms: float) -> dict[str, Any]:
    """A new job, once a worker runs it."""
    job = create_job(http, steps, step_ms)
    deadline = time.monotonic() + 30
    while job["status"] != "running":
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job['id']} did not start: {job['status']}")
        time.sleep(0.02)
        job = http.get(f"/api/jobs/{job['id']}").raise_for_status().json()
    return job


async def ended_count(store: Store) -> int:
    """Jobs in a terminal status."""
    counts = await store.count_by_status()
    return sum(counts.get(status, 0) for status in TERMINAL)
