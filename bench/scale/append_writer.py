"""One writer process of the `appends` scenario (started by `bench.scale.appends`).

    python -m bench.scale.append_writer DATABASE_URL INDEX FOLDER

It claims a job of its own and says `ready`; then it reads `START WINDOW` (a wall
clock time and seconds) from stdin, appends through the fenced path from START for
WINDOW seconds, and writes each append's duration in seconds as one JSON list.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from bench._appends import append_steps, claimed_reporter
from genwire.bus import LocalBus
from genwire.pipelines import default_registry
from genwire.service import JobService
from genwire.storage import LocalStorage
from genwire.store import SqlStore

#: more steps than any window reaches: the window ends the run, not the count
STEPS = 1_000_000


async def run(url: str, index: int, folder: Path) -> None:
    store = SqlStore(url)
    service = JobService(store, LocalBus(), default_registry(), LocalStorage(folder / "files"))
    try:
        reporter = await claimed_reporter(service, index)
        print("ready", flush=True)
        start_at, window_s = map(float, sys.stdin.readline().split())
        await asyncio.sleep(max(0.0, start_at - time.time()))
        latencies: list[float] = []
        await append_steps(reporter, STEPS, latencies, until=start_at + window_s)
        print(json.dumps(latencies), flush=True)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])))
