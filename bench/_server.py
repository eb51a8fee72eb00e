"""Child processes for the benchmarks: a real `genwire serve` on a free port, or any
command whose log says when it is ready; where they listen; stopping them; what they
cost."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
READY_WITHIN_S = 30.0  #: how long a child may take to say it is ready
SERVING = r"serving on (http://\S+)"  #: what `genwire serve` logs once it listens, and where


@dataclass(frozen=True)
class Endpoint:
    """Where a started server listens."""

    url: str

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 80


def start_logged(
    command: Sequence[str], log: Path, ready: str, env: Mapping[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], re.Match[str]]:
    """Starts `command` with its output in `log` and waits until a line of the log
    matches `ready`; answers the process and the match."""
    process = launch_logged(command, log, env)
    return process, wait_logged(process, log, ready)


def launch_logged(
    command: Sequence[str], log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Starts `command` with its output in `log` (and `env` over this environment)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=None if env is None else {**os.environ, **env},
        )


def wait_logged(process: subprocess.Popen[bytes], log: Path, ready: str) -> re.Match[str]:
    """Waits until a line of `log` matches `ready`. A child that exits or stays silent
    is stopped, and RuntimeError carries its log."""
    deadline = time.monotonic() + READY_WITHIN_S
    while time.monotonic() < deadline:
        match = re.search(ready, log.read_text())
        if match:
            return match
        if process.poll() is not None:
            break
        time.sleep(0.1)
    stop_process(process)
    raise RuntimeError(f"{process.args!r} did not start:\n{log.read_text()}")


def serve_command(data_dir: Path, *options: str) -> list[str]:
    """`genwire serve` on port 0 (a free one, said in its log as `SERVING`) with
    `data_dir` and `options`; its log belongs in `data_dir / "serve.log"`."""
    command = [sys.executable, "-m", "genwire", "serve", "--port", "0"]
    return [*command, "--data-dir", str(data_dir), *options]


def start_server(
    data_dir: Path,
    keepalive: float,
    extra: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Starts `genwire serve` on port 0 and answers the process and its URL."""
    options = ["--log-level", "warning", "--keepalive", str(keepalive), *extra]
    command = serve_command(data_dir, *options)
    process, match = start_logged(command, data_dir / "serve.log", SERVING, env)
    return process, match.group(1)


@asynccontextmanager
async def running_server(
    keepalive: float = 10.0, extra: Sequence[str] = ()
) -> AsyncIterator[tuple[str, int]]:
    """A fresh server per measurement, so one run's memory or queue is not the next's;
    answers its URL and pid."""
    with tempfile.TemporaryDirectory(prefix="genwire-bench-") as folder:
        process, url = start_server(Path(folder), keepalive, extra)
        try:
            yield url, process.pid
        finally:
            process.terminate()
            process.wait(timeout=30)


def stop_process(process: subprocess.Popen[Any]) -> None:
    stop_processes([process])


def stop_processes(processes: Sequence[subprocess.Popen[Any]], grace_s: float = 30.0) -> None:
    """SIGTERM to all at once, so they shut down side by side; SIGKILL to those still
    running after `grace_s`."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + grace_s
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def surface_errors(server: str, log: Path, pattern: str) -> None:
    """A server's errors go to stderr (the first in full, with the count): a figure
    from a run that had them is suspect."""
    if not log.exists():
        return
    lines = log.read_text().splitlines()
    found = [index for index, line in enumerate(lines) if re.search(pattern, line)]
    if not found:
        return
    # The first error, to where its traceback names the exception.
    end = found[0] + 1
    while end < len(lines) and (lines[end].startswith(" ") or lines[end].startswith("Traceback")):
        end += 1
    print(f"{server}: its log has errors ({len(found)} lines); the first ends:", file=sys.stderr)
    for line in [lines[found[0]], *lines[max(found[0] + 1, end - 8) : end + 1]]:
        print(f"  {line}", file=sys.stderr)


def rss_kib(pid: int) -> int:
    """The resident memory of process `pid`, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid`, all its threads, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S
