"""PostgreSQL LISTEN/NOTIFY as a bus, weighed: write transactions per second with and
without a `pg_notify` in each, with 1, 4 and 16 writers at once and one listener.

Each transaction inserts one small row, as an event append does (without genwire's
advisory lock, so the writers overlap as they would if NOTIFY were the only thing
ordering them). A notifying transaction takes a database-wide lock at commit to
queue its notification; this measures what that costs here.

    python -m bench.listen_notify
    python -m bench.listen_notify --database postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench._report import describe_machine, percentile_ms, print_table, scratch_database

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


async def _writer(url: str, notify: bool, until: float, latencies: list[float]) -> int:
    import asyncpg  # type: ignore[import-untyped]

    connection: Any = await asyncpg.connect(url)
    statement = (
        "WITH row AS (INSERT INTO appended (body) VALUES ($1) RETURNING seq) "
        "SELECT pg_notify('genwire_wake', seq::text) FROM row"
        if notify
        else "INSERT INTO appended (body) VALUES ($1)"
    )
    commits = 0
    try:
        while time.monotonic() < until:
            started = time.perf_counter()
            async with connection.transaction():
                await connection.execute(statement, '{"type": "step-progress"}')
            latencies.append(time.perf_counter() - started)
            commits += 1
    finally:
        await connection.close()
    return commits


async def _measure(url: str, writers: int, notify: bool, window_s: float) -> list[object]:
    import asyncpg

    heard: list[str] = []
    listener: Any = await asyncpg.connect(url)
    await listener.add_listener("genwire_wake", lambda *args: heard.append(args[-1]))
    latencies: list[float] = []
    until = time.monotonic() + window_s
    try:
        commits = sum(
            await asyncio.gather(*(_writer(url, notify, until, latencies) for _ in range(writers)))
        )
        await asyncio.sleep(0.2)  # the last notifications on their way
    finally:
        await listener.close()
    return [
        "NOTIFY" if notify else "plain",
        writers,
        f"{commits / window_s:,.0f}",
        f"{percentile_ms(latencies, 50):.2f}",
        f"{percentile_ms(latencies, 99):.2f}",
        f"{len(heard):,}" if notify else "–",
    ]


async def main(server: str, window_s: float, writer_counts: list[int]) -> None:
    print(f"listen_notify; {describe_machine()}")
    rows = []
    async with scratch_database(server) as database:
        import asyncpg

        setup: Any = await asyncpg.connect(database.url)
        try:
            await setup.execute(
                "CREATE TABLE appended (seq BIGSERIAL PRIMARY KEY, body JSONB NOT NULL)"
            )
        finally:
            await setup.close()
        for writers in writer_counts:
            for notify in (False, True):
                print(f"… {writers} writer(s), {'NOTIFY' if notify else 'plain'}", flush=True)
                rows.append(await _measure(database.url, writers, notify, window_s))
    print()
    print_table(["commit", "writers", "commits/s", "p50 ms", "p99 ms", "heard"], rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=DEFAULT_SERVER, help="a PostgreSQL server")
    parser.add_argument("--window", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--writers", default="1,4,16", help="concurrent writers per run")
    arguments = parser.parse_args()
    counts = [int(item) for item in arguments.writers.split(",")]
    asyncio.run(main(arguments.database, arguments.window, counts))
