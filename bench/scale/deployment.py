"""The processes of one scale-out measurement: API nodes (`genwire serve`) and worker
processes (`genwire worker`) on one scratch PostgreSQL database and, with a bus, one
Redis channel of their own; all stopped together, whatever happens."""

from __future__ import annotations

import base64
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from bench._report import ScratchDatabase, scratch_database
from bench._server import (
    Endpoint,
    launch_logged,
    start_server,
    stop_processes,
    surface_errors,
    wait_logged,
)

DATABASE_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
BUS_SERVER = "redis://127.0.0.1:6379"
KEEPALIVE_S = 10.0
ERRORS = r" (ERROR|CRITICAL) |^Traceback"


@dataclass(frozen=True)
class Node(Endpoint):
    """An API node: where it listens, and the process whose CPU is its own."""

    pid: int


def with_channel(bus_server: str) -> str:
    """The bus URL with a channel of its own, so another run or another deployment on
    the same Redis cannot wake this one's feeds."""
    parts = urlsplit(bus_server)
    query = [*parse_qsl(parts.query), ("channel", f"genwire-bench-{secrets.token_hex(5)}")]
    return parts._replace(query=urlencode(query)).geturl()


class Deployment:
    def __init__(self, database: ScratchDatabase, bus: str | None) -> None:
        self.database = database
        self.bus = bus  #: with its own channel; None: each process's own bus only
        # Nodes on a shared database must sign webhooks alike (they refuse to start
        # otherwise), though no webhook is sent here.
        secret = base64.b64encode(secrets.token_bytes(24)).decode()
        self._env = {"GENWIRE_WEBHOOK_SECRET": f"whsec_{secret}"}
        self._processes: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def _shared_options(self) -> list[str]:
        bus = ["--bus", self.bus] if self.bus else []
        return ["--database", self.database.url, *bus, "--shutdown-grace", "0"]

    def _folder(self, name: str) -> Path:
        folder = self.database.folder / name
        folder.mkdir()
        return folder

    def serve(self, name: str, workers: int) -> Node:
        """`genwire serve` with `workers` in-process slots (0: API only)."""
        folder = self._folder(name)
        options = [*self._shared_options(), "--workers", str(workers)]
        process, url = start_server(folder, KEEPALIVE_S, options, self._env)
        self._processes.append((name, process, folder / "serve.log"))
        return Node(url, process.pid)

    def workers(self, count: int, concurrency: int) -> list[int]:
        """`count` `genwire worker` processes of `concurrency` slots, started side by
        side; answers their pids once every one runs."""
        started = []
        for index in range(count):
            folder = self._folder(f"worker-{index}")
            command = [sys.executable, "-m", "genwire", "worker", "--data-dir", str(folder)]
            command += [*self._shared_options(), "--concurrency", str(concurrency)]
            log = folder / "worker.log"
            process = launch_logged(command, log, self._env)
            self._processes.append((f"worker-{index}", process, log))
            started.append((process, log))
        for process, log in started:
            wait_logged(process, log, r"genwire worker .* running \d+ slot")
        return [process.pid for process, _ in started]

    def stop(self) -> None:
        stop_processes([process for _, process, _ in self._processes])
        for name, _, log in self._processes:
            surface_errors(name, log, ERRORS)


@asynccontextmanager
async def deployment(database_server: str, bus_server: str | None) -> AsyncIterator[Deployment]:
    """A fresh database (dropped afterwards) and, with `bus_server`, a fresh channel;
    every process started through the deployment is stopped on the way out."""
    async with scratch_database(database_server) as database:
        running = Deployment(database, with_channel(bus_server) if bus_server else None)
        try:
            yield running
        finally:
            running.stop()
