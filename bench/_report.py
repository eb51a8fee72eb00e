"""What both benchmarks share: percentiles, an aligned table, a scratch database."""

from __future__ import annotations

import os
import platform
import secrets
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


def percentile_ms(seconds: Sequence[float], percent: int) -> float:
    """The `percent`th percentile of durations in seconds, in milliseconds."""
    if len(seconds) < 2:
        return seconds[0] * 1000 if seconds else float("nan")
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return cuts[percent - 1] * 1000


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Right-aligned columns; floats to one decimal place."""
    cells = [list(headers)] + [
        [f"{value:,.1f}" if isinstance(value, float) else str(value) for value in row]
        for row in rows
    ]
    widths = [max(len(line[column]) for line in cells) for column in range(len(headers))]
    for index, line in enumerate(cells):
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * width for width in widths))


def describe_machine() -> str:
    """Cores, Python and the 1-minute load: figures from a busy machine are slower."""
    return (
        f"{os.cpu_count()} cores, Python {platform.python_version()} "
        f"({sys.implementation.name}), {platform.system()} {platform.release()}, "
        f"load {os.getloadavg()[0]:.1f}"
    )


@dataclass(frozen=True)
class ScratchDatabase:
    url: str  #: what `SqlStore(url)` takes
    folder: Path  #: a temporary folder for files (artifacts, the SQLite file)


@asynccontextmanager
async def scratch_database(server_url: str | None) -> AsyncIterator[ScratchDatabase]:
    """A fresh SQLite file in a temp folder, or, given a PostgreSQL server URL, a fresh
    database `genwire_bench_<random>` on that server, dropped afterwards."""
    with tempfile.TemporaryDirectory(prefix="genwire-bench-") as temp:
        folder = Path(temp)
        if server_url is None:
            yield ScratchDatabase(f"sqlite:///{folder / 'genwire.db'}", folder)
            return
        import asyncpg  # type: ignore[import-untyped]

        name = f"genwire_bench_{secrets.token_hex(5)}"
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            try:
                url = urlsplit(server_url)._replace(path=f"/{name}").geturl()
                yield ScratchDatabase(url, folder)
            finally:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
