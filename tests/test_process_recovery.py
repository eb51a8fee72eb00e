"""A server killed mid-job loses nothing: real `genwire serve` processes, SIGKILL."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse

from genwire.client import Client, JobStatusEvent
from genwire.models import TERMINAL_EVENT_TYPES, EventType
from genwire.store import SqlStore
from tests.cli_runs import run_genwire
from tests.conftest import ServerProcess
from tests.http_calls import wait_for_job

pytestmark = pytest.mark.slow

LONG_JOB = {"pipeline": "demo.synthetic", "input": {"steps": 30, "step_ms": 100}}


def _start_and_kill_mid_job(start: Callable[..., ServerProcess], *args: str) -> tuple[str, Path]:
    server = start("--workers", "1", *args)
    with server.client() as client:
        job_id = client.post("/api/jobs", json=LONG_JOB).json()["id"]
        wait_for_job(client, job_id, lambda job: job["progress"] >= 20, timeout=30)
    server.kill()
    return job_id, server.data_dir


def _events_of(data_dir: Path, job_id: str) -> list:
    async def read() -> list:
        store = SqlStore.for_data_dir(data_dir)
        try:
            return await store.events_after(job_id)
        finally:
            await store.close()

    return asyncio.run(read())


def test_a_job_running_when_the_server_is_killed_runs_again_after_restart_and_succeeds(
    serve_process: Callable[..., ServerProcess],
) -> None:
    job_id, data_dir = _start_and_kill_mid_job(serve_process)

    restarted = serve_process("--workers", "1", data_dir=data_dir)
    with restarted.client() as client:
        job = wait_for_job(client, job_id, lambda job: job["status"] != "running", timeout=10)
        assert job["attempt"] == 2
        job = wait_for_job(client, job_id, lambda job: job["status"] == "succeeded", timeout=30)
    assert job["progress"] == 100
    restarted.process.terminate()
    restarted.process.wait(timeout=20)

    events = _events_of(data_dir, job_id)
    requeued = [
        event
        for event in events
        if event.type is EventType.JOB_STATUS and event.payload["status"] == "queued"
    ]
    assert len(requeued) == 2, "created, then requeued once after the kill"
    assert "stopped while it ran" in requeued[1].payload["message"]
    assert [event.type for event in events if event.type in TERMINAL_EVENT_TYPES] == [
        EventType.JOB_COMPLETED
    ]
    assert events[-1].type is EventType.JOB_COMPLETED
    assert [event.seq for event in events] == sorted({event.seq for event in events})


def test_the_client_and_watch_say_a_job_started_over_because_the_server_restarted(
    serve_process: Callable[..., ServerProcess],
) -> None:
    """Issue 18, item 5: the requeue event's reason and max_attempts reach the Python
    client typed, and `genwire watch` says why the job started over, from where, and
    counts both attempts at the end, in 80 columns."""
    job_id, data_dir = _start_and_kill_mid_job(serve_process)
    reached = max(event.payload.get("progress", 0) for event in _events_of(data_dir, job_id))
    restarted = serve_process("--workers", "1", data_dir=data_dir)

    with Client(restarted.url) as client:
        events = list(client.events(job_id, timeout=60))
    watched = run_genwire(restarted.url, "watch", job_id)
    shown = run_genwire(restarted.url, "status", job_id)

    requeues = [
        JobStatusEvent.from_json(event)
        for event in events
        if event["type"] == "job-status" and event.get("reason")
    ]
    assert len(requeues) == 1, events
    assert requeues[0].attempt == 2
    assert requeues[0].max_attempts == 3
    assert requeues[0].reason is not None
    assert requeues[0].reason.code == "server_restarted"
    assert watched.returncode == 0, watched.stderr
    said = (
        f"attempt 2 of 3: the server restarted during attempt 1 (at {int(reached)} %); "
        "starting over"
    )
    assert said in watched.stderr.splitlines(), watched.stderr
    assert re.search(
        rf"^succeeded after 2 attempts in \S+ (s|min)( \d+ s)?  {job_id}$",
        watched.stdout,
        re.MULTILINE,
    ), watched.stdout
    too_wide = [line for line in watched.stderr.splitlines() if len(line.rstrip()) > 80]
    assert not too_wide, too_wide
    assert f"{job_id}  demo.synthetic  succeeded (attempt 2)  100%" in shown.stdout, shown


def test_a_job_out_of_attempts_after_a_kill_fails_with_a_clear_code(
    serve_process: Callable[..., ServerProcess],
) -> None:
    job_id, data_dir = _start_and_kill_mid_job(serve_process, "--max-attempts", "1")

    restarted = serve_process("--workers", "1", "--max-attempts", "1", data_dir=data_dir)
    with restarted.client() as client:
        job = wait_for_job(client, job_id, lambda job: job["status"] == "failed", timeout=10)
    assert job["error"]["code"] == "worker_lost"
    assert job["error"]["retryable"] is True
    assert "1 attempts" in job["error"]["message"]


def test_a_second_server_on_the_same_data_dir_refuses_to_start(
    serve_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    first = serve_process("--workers", "0")

    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "genwire",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(first.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert second.returncode == 1
    assert f"in use by genwire pid {first.process.pid}" in second.stderr
    assert "Traceback" not in second.stderr
    assert "serving on" not in second.stderr
    with first.client() as client:
        assert client.get("/healthz").status_code == 200


def test_sigterm_stops_the_server_and_gives_its_running_job_back_to_the_queue(
    serve_process: Callable[..., ServerProcess],
) -> None:
    server = serve_process("--workers", "1")
    with server.client() as client:
        job_id = client.post(
            "/api/jobs",
            json={"pipeline": "demo.synthetic", "input": {"steps": 600, "step_ms": 100}},
        ).json()["id"]
        wait_for_job(client, job_id, lambda job: job["progress"] >= 5, timeout=30)

    server.process.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.log()

    events = _events_of(server.data_dir, job_id)
    last = events[-1]
    assert last.type is EventType.JOB_STATUS
    assert last.payload["status"] == "queued"
    assert last.payload["attempt"] == 2
    assert "shut down" in last.payload["message"]


def test_a_restarted_server_leaves_alone_the_jobs_a_live_worker_process_runs(
    serve_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = serve_process("--workers", "0")
    database = f"sqlite:///{server.data_dir / 'genwire.db'}"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "genwire",
            "worker",
            "--database",
            database,
            "--data-dir",
            str(server.data_dir),
            "--concurrency",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with server.client() as client:
            job_id = client.post("/api/jobs", json=LONG_JOB).json()["id"]
            wait_for_job(client, job_id, lambda job: job["progress"] >= 20, timeout=30)
        server.kill()

        # With a pool of its own: it would run the job again had it requeued it.
        restarted = serve_process("--workers", "1", data_dir=server.data_dir)
        with restarted.client() as client:
            job = wait_for_job(client, job_id, lambda job: job["status"] == "succeeded", timeout=30)
        assert job["attempt"] == 1, "the worker kept its job; the server did not requeue it"
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_a_stream_on_the_server_sees_the_events_a_worker_process_appends(
    serve_process: Callable[..., ServerProcess],
) -> None:
    """Regression: the in-process bus never hears another process's appends, so a
    stream on `serve --workers 0` waited forever while a `genwire worker` ran the job."""
    server = serve_process("--workers", "0")
    database = f"sqlite:///{server.data_dir / 'genwire.db'}"
    worker = subprocess.Popen(
        [sys.executable, "-m", "genwire", "worker", "--database", database, "--concurrency", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with server.client() as client:
            job_id = client.post(
                "/api/jobs",
                json={"pipeline": "demo.synthetic", "input": {"steps": 8, "step_ms": 50}},
            ).json()["id"]
            with connect_sse(client, "GET", f"/api/jobs/{job_id}/events") as source:
                types = [
                    json.loads(message.data)["type"]
                    for message in source.iter_sse()
                    if message.data
                ]
        assert types[-1] == "job-completed"
        assert types.count("step-progress") == 8
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_sigterm_ends_open_streams_at_once_so_the_server_stops_promptly(
    serve_process: Callable[..., ServerProcess],
) -> None:
    server = serve_process("--workers", "0", "--shutdown-grace", "0")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with connect_sse(client, "GET", "/api/events") as source:
            assert source.response.status_code == 200
            server.process.send_signal(signal.SIGTERM)
            # The stream ends (the server closes it) instead of hanging until killed.
            leftover = [message for message in source.iter_sse() if message.data]
        assert leftover == []
    assert server.process.wait(timeout=10) in (0, -signal.SIGTERM)
    assert "Cancel" not in server.log()
