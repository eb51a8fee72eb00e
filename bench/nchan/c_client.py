"""The C epoll load client (sseload.c): compiled once, run as a child process that
reports what its subscribers saw as JSON lines."""

from __future__ import annotations

import contextlib
import hashlib
import json
import queue
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._server import stop_process
from bench.nchan.servers import Source

CLIENT_SOURCE = Path(__file__).resolve().parent / "sseload.c"


@dataclass(frozen=True)
class Window:
    """One report of the load client: what it saw since its previous report."""

    seconds: float
    failed: int  #: connections that never were established
    deliveries: int
    events_per_connection: tuple[int, int]  #: min, max
    keepalives_per_connection: tuple[int, int]  #: min, max
    silence_max_ms: float  #: the longest time a connection heard nothing
    p50_ms: float
    p99_ms: float
    errors: int
    client_cpu_s: float

    @classmethod
    def parse(cls, report: dict[str, Any]) -> Window:
        latency = report["latency_ms"]
        return cls(
            seconds=report["window_s"],
            failed=report["failed"],
            deliveries=report["deliveries"],
            events_per_connection=(report["events_per_conn_min"], report["events_per_conn_max"]),
            keepalives_per_connection=(
                report["keepalives_per_conn_min"],
                report["keepalives_per_conn_max"],
            ),
            silence_max_ms=report["silence_max_ms"],
            p50_ms=latency["p50"],
            p99_ms=latency["p99"],
            errors=report["errors"] + report["bad_status"],
            client_cpu_s=report["client_cpu_s"],
        )


class LoadClient:
    """sseload as a child process: a `ready` report, then one window per mark()."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._process = process
        self._reports: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._reports.put(json.loads(line))
        self._reports.put(None)

    def report(self, kind: str, timeout: float) -> Window:
        try:
            found = self._reports.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(
                f"the load client sent no {kind!r} report in {timeout:g} s"
            ) from None
        if found is None:
            raise RuntimeError(f"the load client exited ({self._process.wait()})")
        if found["kind"] != kind:
            raise RuntimeError(f"the load client sent {found['kind']!r}, not {kind!r}")
        return Window.parse(found)

    def mark(self) -> Window:
        """Ends the current window (and starts the next): what it saw in it."""
        self._process.send_signal(signal.SIGUSR1)
        return self.report("mark", timeout=30)


def build_client() -> Path:
    """Compiles sseload.c once per version of its source, into a cache folder."""
    digest = hashlib.sha256(CLIENT_SOURCE.read_bytes()).hexdigest()[:12]
    binary = Path(tempfile.gettempdir()) / "genwire-bench" / f"sseload-{digest}"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(".partial")
        command = ["gcc", "-O2", "-Wall", "-Wextra", "-o", str(partial), str(CLIENT_SOURCE)]
        subprocess.run(command, check=True)
        partial.rename(binary)
    return binary


@contextlib.contextmanager
def load_client(binary: Path, port: int, source: Source, connections: int) -> Iterator[LoadClient]:
    command = [str(binary), "--port", str(port), "--path", source.path]
    command += ["--connections", str(connections), "--mode", source.mode]
    if source.after:
        command += ["--after", source.after]
    # Besides ending with this process (PR_SET_PDEATHSIG), it gives up after 15 min.
    command += ["--duration", "900"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        yield LoadClient(process)
    finally:
        stop_process(process)
