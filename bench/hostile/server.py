"""A real `genwire serve` per scenario (uvicorn on a loopback port, SQLite in a
temporary folder), started at its default log level unless a scenario says not."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bench._server import SERVING, Endpoint, launch_logged, serve_command, stop_process, wait_logged

#: The module of the bench's own pipelines (`bench.endless`), for `pipelines=True`.
PIPELINES_MODULE = "bench.hostile.pipelines"


def new_key(name: str) -> str:
    """An API key long and random enough that finding it in a log means it leaked."""
    return f"{name}_{secrets.token_hex(16)}"


@dataclass(frozen=True)
class Server(Endpoint):
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def fd_limit(self) -> int:
        """The server's soft limit on open files."""
        for line in Path(f"/proc/{self.pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
        raise RuntimeError(f"no open-files limit for {self.pid}")

    def open_fds(self) -> int:
        """The server's open file descriptors now (0 once it has gone)."""
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return 0


@asynccontextmanager
async def serving(
    *,
    keys: Mapping[str, str] | None = None,
    extra: Sequence[str] = (),
    pipelines: bool = False,
) -> AsyncIterator[Server]:
    """`genwire serve` on port 0 with `keys` (key → tenant) as GENWIRE_API_KEYS and
    `extra` flags; stopped on the way out, whatever happened."""
    env = {"GENWIRE_API_KEYS": ",".join(f"{key}:{tenant}" for key, tenant in (keys or {}).items())}
    options = [
        # Only shutdown is quicker: a running job is not waited for when a scenario ends.
        "--shutdown-grace",
        "0",
        *(["--pipelines", PIPELINES_MODULE] if pipelines else []),
        *extra,
    ]
    with tempfile.TemporaryDirectory(prefix="genwire-hostile-") as folder:
        data_dir = Path(folder)
        log = data_dir / "serve.log"
        process = launch_logged(serve_command(data_dir, *options), log, env)
        try:
            match = await asyncio.to_thread(wait_logged, process, log, SERVING)
            yield Server(match.group(1), process, log)
        finally:
            await asyncio.to_thread(stop_process, process)


def log_lines_after(server: Server, offset: int) -> list[str]:
    """The lines the server logged after the first `offset` characters of its log."""
    return server.log_text()[offset:].splitlines()


#: The first line of a log record: genwire's format, or uvicorn's `LEVEL:` prefix.
LOG_RECORD = re.compile(r"^(\d{4}-\d\d-\d\d |(DEBUG|INFO|WARNING|ERROR|CRITICAL):)")


def traceback_lines(lines: Sequence[str]) -> int:
    """Lines that belong to tracebacks: from a `Traceback (…)` line to the next log
    record, chained exceptions and the lines between them included."""
    count = 0
    inside = False
    for line in lines:
        if LOG_RECORD.match(line):
            inside = False
        elif "Traceback (most recent call last)" in line:
            inside = True
        count += inside
    return count


def error_lines(lines: Sequence[str]) -> int:
    """Log records at ERROR or CRITICAL."""
    return sum(1 for line in lines if re.match(r"^(\S+ \S+ )?(ERROR|CRITICAL)\b", line))
