"""Row 5: a cursor padded with thousands of zeros on every stream and poll route."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import httpx

from bench.hostile.report import Row, number, progress
from bench.hostile.server import serving

NAME = "zero-cursor"
SHORT_JOB: dict[str, Any] = {"pipeline": "demo.synthetic", "input": {"steps": 3, "step_ms": 10}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument_group(NAME).add_argument(
        "--zeros", type=int, default=4_400, help="zeros before the 1 of the cursor"
    )


async def run(options: argparse.Namespace) -> list[Row]:
    cursor = "0" * options.zeros + "1"
    async with serving() as server, httpx.AsyncClient(base_url=server.url, timeout=15.0) as http:
        job = await _ended_job(http)
        project = (
            (await http.post("/api/projects", json={"clips": [SHORT_JOB]}))
            .raise_for_status()
            .json()
        )
        job_path = f"/api/jobs/{job['id']}"
        project_path = f"/api/projects/{project['id']}"
        header = {"last-event-id": cursor}
        probes: list[tuple[str, str, dict[str, str]]] = [
            ("job events, Last-Event-ID", f"{job_path}/events", header),
            ("job events, ?last_event_id=", f"{job_path}/events?last_event_id={cursor}", {}),
            ("job poll ?after=", f"{job_path}/poll?after={cursor}&wait=0", {}),
            ("project events, Last-Event-ID", f"{project_path}/events", header),
            (
                "project events, ?last_event_id=",
                f"{project_path}/events?last_event_id={cursor}",
                {},
            ),
            ("/api/events, Last-Event-ID", "/api/events", header),
            ("/api/events?last_event_id=", f"/api/events?last_event_id={cursor}", {}),
            ("/api/poll?after=", f"/api/poll?after={cursor}&wait=0", {}),
        ]
        answers = [
            f"{label} {await _status(http, path, headers)}" for label, path, headers in probes
        ]
    progress(NAME, "; ".join(answers))
    done = (
        f"cursor `{'0' * 3}…01` ({number(options.zeros)} zeros, then 1) on every stream and poll route, "
        "as header and as query"
    )
    return [Row(NAME, done, "; ".join(answers))]


async def _ended_job(http: httpx.AsyncClient) -> dict[str, Any]:
    job: dict[str, Any] = (await http.post("/api/jobs", json=SHORT_JOB)).raise_for_status().json()
    deadline = time.monotonic() + 30.0
    while job["status"] not in ("succeeded", "failed", "cancelled"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job['id']} did not end: {job['status']}")
        await asyncio.sleep(0.05)
        job = (await http.get(f"/api/jobs/{job['id']}")).json()
    return job


async def _status(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> str:
    """The status alone: a stream is left as soon as its head has come."""
    try:
        async with http.stream("GET", path, headers=headers) as response:
            return str(response.status_code)
    except httpx.HTTPError as error:
        return type(error).__name__
