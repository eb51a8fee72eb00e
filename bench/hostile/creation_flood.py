"""Row 4: one tenant floods job creation while another creates one job; then one
tenant's endless jobs against another's job, without and with a running cap."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from typing import Any

import httpx

from bench.hostile.report import Row, counted, failure, number, progress
from bench.hostile.server import new_key, serving

NAME = "creation-flood"
CREATORS = 16  #: A's creates in flight at once
B_AFTER_S = 5.0  #: into the flood, so that A's queue is already deep
#: A's jobs: demo.synthetic's defaults (10 steps of 10 ms).
A_JOB: dict[str, Any] = {"pipeline": "demo.synthetic", "input": {}}
B_JOB = {"pipeline": "demo.synthetic", "input": {"steps": 20, "step_ms": 10}}
ENDLESS_JOB: dict[str, Any] = {"pipeline": "bench.endless", "input": {}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(NAME)
    group.add_argument("--flood-jobs", type=int, default=10_000, help="jobs tenant A creates")
    group.add_argument("--flood-s", type=float, default=40.0, help="seconds A may take")
    group.add_argument(
        "--b-wait", type=float, default=120.0, help="seconds B's job may take to succeed"
    )
    group.add_argument(
        "--start-wait", type=float, default=30.0, help="seconds B's job may take to start"
    )


async def run(options: argparse.Namespace) -> list[Row]:
    keys = {new_key("ka"): "alice", new_key("kb"): "bob"}
    key_a, key_b = keys
    rows = [await _flood(options, keys, key_a, key_b)]
    for extra in ([], ["--max-running-per-tenant", "1"]):
        try:
            rows.append(await _endless(options, keys, key_a, key_b, extra))
        except (RuntimeError, httpx.HTTPError) as error:
            # A server without the setting does not start: the other rows still stand.
            setting = " ".join(extra) or "default settings"
            rows.append(Row(NAME, f"{setting}: A's two endless jobs, then B's", failure(error)))
    return rows


def _client(url: str, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url,
        headers={"authorization": f"Bearer {key}"},
        timeout=30.0,
        limits=httpx.Limits(max_connections=CREATORS + 4),
    )


async def _flood(options: argparse.Namespace, keys: dict[str, str], key_a: str, key_b: str) -> Row:
    answers: Counter[str] = Counter()
    b_after = min(B_AFTER_S, options.flood_s / 2)
    async with (
        serving(keys=keys) as server,
        _client(server.url, key_a) as a,
        _client(server.url, key_b) as b,
    ):
        deadline = time.monotonic() + options.flood_s
        left = [options.flood_jobs]
        started = time.monotonic()
        progress(
            NAME, f"A creates up to {number(options.flood_jobs)} jobs for {options.flood_s:g} s"
        )
        creators = [
            asyncio.create_task(_create_until(a, left, deadline, answers)) for _ in range(CREATORS)
        ]
        await asyncio.sleep(b_after)
        b_wait = asyncio.create_task(_follow_b(b, options.b_wait))
        await asyncio.gather(*creators)
        flood_s = time.monotonic() - started
        progress(NAME, f"A's creates in {flood_s:.1f} s: {counted(answers)}")
        b_running, b_done = await b_wait
    progress(NAME, f"B's job: running after {b_running}, succeeded after {b_done}")
    done = (
        f"tenant A creates {number(options.flood_jobs)} jobs (10 steps of 10 ms) as fast as it "
        f"can, for {options.flood_s:g} s at most; {b_after:g} s in, tenant B creates one "
        "20-step job"
    )
    happened = (
        f"A: {counted(answers)} in {flood_s:.1f} s; B's job running after {b_running}, "
        f"succeeded after {b_done}"
    )
    return Row(NAME, done, happened)


async def _create_until(
    a: httpx.AsyncClient, left: list[int], deadline: float, answers: Counter[str]
) -> None:
    while left[0] > 0 and time.monotonic() < deadline:
        left[0] -= 1
        try:
            response = await a.post("/api/jobs", json=A_JOB)
        except httpx.HTTPError as error:
            answers[type(error).__name__] += 1
            continue
        code = "" if response.status_code < 400 else f" {_problem_code(response)}"
        answers[f"{response.status_code}{code}"] += 1


def _problem_code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("code", ""))
    except ValueError:
        return ""


async def _follow_b(b: httpx.AsyncClient, wait_s: float) -> tuple[str, str]:
    """B's create, then its stream: seconds to `running` and to the terminal event."""
    started = time.monotonic()
    running = finished = f"not within {wait_s:g} s"
    job = (await b.post("/api/jobs", json=B_JOB)).raise_for_status().json()
    try:
        async with asyncio.timeout(wait_s):
            async with b.stream("GET", f"/api/jobs/{job['id']}/events", timeout=wait_s) as stream:
                async for line in stream.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    event = json.loads(line[6:])
                    took = f"{time.monotonic() - started:.1f} s"
                    if event["type"] == "job-status" and event["status"] == "running":
                        running = took
                    elif event["type"] in ("job-completed", "job-failed", "job-cancelled"):
                        finished = f"{took} ({event['type']})"
                        break
    except TimeoutError:
        pass
    return running, finished


async def _endless(
    options: argparse.Namespace,
    keys: dict[str, str],
    key_a: str,
    key_b: str,
    extra: list[str],
) -> Row:
    setting = " ".join(extra) or "default settings"
    async with (
        serving(keys=keys, extra=extra, pipelines=True) as server,
        _client(server.url, key_a) as a,
        _client(server.url, key_b) as b,
    ):
        endless = [
            (await a.post("/api/jobs", json=ENDLESS_JOB)).raise_for_status().json()["id"]
            for _ in range(2)
        ]
        # As many of A's as may run (both by default, one under a cap of 1).
        a_running = await _running(a, endless, 2, 5.0)
        started = time.monotonic()
        job = (await b.post("/api/jobs", json=B_JOB)).raise_for_status().json()
        b_started = await _running(b, [job["id"]], 1, options.start_wait)
        waited = time.monotonic() - started
    verdict = (
        f"B's job started after {waited:.1f} s"
        if b_started
        else f"B's job did not start in {options.start_wait:g} s"
    )
    progress(NAME, f"{setting}: A's endless jobs running {a_running}/2; {verdict}")
    return Row(
        NAME,
        f"{setting}: A starts two endless jobs (2 worker slots), then B creates one job",
        f"A's endless jobs running: {a_running} of 2; {verdict}",
    )


async def _running(http: httpx.AsyncClient, ids: list[str], want: int, wait_s: float) -> int:
    """How many of `ids` have started, once `want` of them have or after `wait_s`."""
    deadline = time.monotonic() + wait_s
    while True:
        snapshots = [(await http.get(f"/api/jobs/{job_id}")).json() for job_id in ids]
        started = sum(1 for snapshot in snapshots if snapshot["status"] != "queued")
        if started >= want or time.monotonic() > deadline:
            return started
        await asyncio.sleep(0.1)
