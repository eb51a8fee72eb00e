"""A real `genwire serve` in a child process, on a free port, for one measurement."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path


def start_server(
    data_dir: Path, keepalive: float, extra: Sequence[str] = ()
) -> tuple[subprocess.Popen[bytes], str]:
    """Starts `genwire serve` on port 0 and answers the process and its URL."""
    log = data_dir / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "genwire",
                "serve",
                "--port",
                "0",
                "--data-dir",
                str(data_dir),
                "--log-level",
                "warning",
                "--keepalive",
                str(keepalive),
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r"serving on (http://\S+)", log.read_text())
        if match:
            return process, match.group(1)
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(log.read_text())


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


def rss_kib(pid: int) -> int:
    """The resident memory of process `pid`, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")
