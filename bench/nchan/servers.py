"""A server under test as the scenarios see it, and what both servers' processes share."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STEPS = 1_000_000  #: the measured job outlasts every run; its server is stopped instead


@dataclass(frozen=True)
class Running:
    port: int
    pid: int  #: the process whose CPU and memory are the server's


@dataclass(frozen=True)
class Source:
    """Where the subscribers connect, and what starts the measured events."""

    path: str
    start: Callable[[], None]
    mode: str = "sse"  #: or "poll" (genwire's long-poll)
    after: str | None = None  #: the cursor a long-poll starts from


@dataclass(frozen=True)
class Target:
    name: str
    serve: Callable[[int, int], AbstractContextManager[Running]]
    flow: Callable[[Running, float, str], AbstractContextManager[Source]]
    idle: Callable[[Running], AbstractContextManager[Source]]


def stop_process(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
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
