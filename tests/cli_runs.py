"""The `genwire` command run as a person runs it: a child process, against a server."""

from __future__ import annotations

import os
import subprocess
import sys


def run_genwire(
    url: str, *args: str, key: str | None = None, columns: int = 80, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`genwire ARGS` against `url` with `key` (none: no GENWIRE_API_KEY) in a terminal
    `columns` wide, without colour; the caller's own GENWIRE_URL and key do not leak in."""
    env = {k: v for k, v in os.environ.items() if k not in ("GENWIRE_API_KEY", "GENWIRE_URL")}
    env.update(GENWIRE_URL=url, COLUMNS=str(columns), NO_COLOR="1")
    if key is not None:
        env["GENWIRE_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "genwire", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
