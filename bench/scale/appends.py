"""Events appended per second by 1, 2, 4… writer processes on one PostgreSQL database.

Each writer is an OS process of its own (`bench.scale.append_writer`) with its own
store and connection pool, appending to a job of its own through the real fenced
path, one append after another. All start at one wall-clock instant and stop at the
end of the same window; the figure is every append they completed in it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from bench._report import percentile_ms, scratch_database
from bench._server import stop_processes
from genwire.store import SqlStore

HEADERS = ["writers", "window s", "events", "events/s", "per writer/s", "p50 ms", "p99 ms"]
#: from the go to the start of the window: every writer has read it by then
LEAD_S = 0.5


async def measure(database_server: str, writers: list[int], window_s: float) -> list[list[object]]:
    return [await _run(database_server, count, window_s) for count in writers]


async def _run(database_server: str, writers: int, window_s: float) -> list[object]:
    async with scratch_database(database_server) as database:
        store = SqlStore(database.url)
        await store.migrate()  # once, before the writers race to
        await store.close()
        processes: list[subprocess.Popen[str]] = []
        try:
            for index in range(writers):
                processes.append(_launch(database.url, database.folder / f"writer-{index}", index))
            for index, process in enumerate(processes):
                _expect(process, "ready", database.folder / f"writer-{index}")
            start_at = time.time() + LEAD_S
            for process in processes:
                assert process.stdin is not None
                process.stdin.write(f"{start_at} {window_s}\n")
                process.stdin.flush()
            latencies: list[float] = []
            for index, process in enumerate(processes):
                line = _expect(process, None, database.folder / f"writer-{index}")
                latencies += json.loads(line)
        finally:
            stop_processes(processes)
    latencies.sort()
    return [
        writers,
        window_s,
        len(latencies),
        len(latencies) / window_s,
        len(latencies) / window_s / writers,
        percentile_ms(latencies, 50),
        percentile_ms(latencies, 99),
    ]


def _launch(url: str, folder: Path, index: int) -> subprocess.Popen[str]:
    folder.mkdir()
    command = [sys.executable, "-m", "bench.scale.append_writer", url, str(index), str(folder)]
    with (folder / "writer.log").open("w") as log:
        return subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
        )


def _expect(process: subprocess.Popen[str], wanted: str | None, folder: Path) -> str:
    """The writer's next line (it must be `wanted`, if given); its log if it has none."""
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line or (wanted is not None and line != wanted):
        process.wait(timeout=30)
        raise RuntimeError(f"a writer said {line!r}:\n{(folder / 'writer.log').read_text()}")
    return line
