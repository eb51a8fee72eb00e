"""genwire as a target: `genwire serve` started by bench/_server.py, the measured
events appended by a `demo.synthetic` job."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench._jobs import HOLD_MS, create_job, running_job
from bench._server import start_server, stop_process, surface_errors
from bench.nchan.servers import STEPS, Running, Source, Target


@contextlib.contextmanager
def genwire_server(keepalive: int, connections: int) -> Iterator[Running]:
    """`genwire serve` (SQLite, one worker slot) on a free port, in a temporary folder."""
    del connections  # one process takes what the file limit allows
    with tempfile.TemporaryDirectory(prefix="genwire-bench-") as folder:
        options = ["--workers", "1", "--shutdown-grace", "0"]
        process, url = start_server(Path(folder), keepalive, options)
        try:
            yield Running(int(url.rsplit(":", 1)[1]), process.pid)
        finally:
            stop_process(process)
            surface_errors("genwire", Path(folder) / "serve.log", r" (ERROR|CRITICAL) |^Traceback")


@contextlib.contextmanager
def genwire_flow(server: Running, rate: float, transport: str) -> Iterator[Source]:
    """The measured job waits, queued, behind a gate job that holds the server's one
    worker slot; starting the source cancels the gate. So every subscriber is
    connected before the first measured event is appended."""
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as http:
        gate = running_job(http, steps=1, step_ms=HOLD_MS)
        job = create_job(http, steps=STEPS, step_ms=1000.0 / rate if rate else 0.0)
        paths = {
            "job": f"/api/jobs/{job['id']}/events",
            "tenant": "/api/events",
            "poll": f"/api/jobs/{job['id']}/poll",
        }

        def start() -> None:
            http.post(f"/api/jobs/{gate['id']}/cancel").raise_for_status()

        if transport == "poll":
            yield Source(paths["poll"], start, mode="poll", after=job["last_event_id"])
        else:
            yield Source(paths[transport], start)


@contextlib.contextmanager
def genwire_idle(server: Running) -> Iterator[Source]:
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as http:
        job = running_job(http, steps=1, step_ms=HOLD_MS)
        yield Source(f"/api/jobs/{job['id']}/events", lambda: None)


GENWIRE = Target("genwire", genwire_server, genwire_flow, genwire_idle)
