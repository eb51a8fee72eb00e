"""One child process of the half-open scenario (`half_open`): COUNT connections from
SOURCE, each a request that never ends (`GET /healthz HTTP/1.1`, then one header
line every INTERVAL seconds), and what the server did to each.

    python -m bench.hostile.trickle HOST PORT SOURCE COUNT INTERVAL

It prints one JSON line once every connection was tried (`connected`, `failed`),
holds them until a line (or the end) on stdin or until the server has ended them
all, then prints one JSON line of `outcomes`: `[status, answer_s, end, end_s]` per connection, `end` being `open`,
`closed` or `reset`. Several children share the connections so that no process
nears the descriptor limit.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench.hostile.wire import abort, connect, status_of

CONNECTS_AT_ONCE = 500
#: A hostile client waits out the server's full accept queue (SYN retries).
CONNECT_TIMEOUT_S = 30.0
#: A child left alone (its parent gone without a word) still ends.
MAX_HOLD_S = 900.0


@dataclass
class Trickle:
    """One never-ending request and what the server did with it."""

    connected_at: float
    status: int | None = None
    answer_s: float | None = None
    end: str = "open"
    end_s: float | None = None

    def ended(self, how: str) -> None:
        self.end = how
        self.end_s = time.monotonic() - self.connected_at

    def outcome(self) -> list[object]:
        def rounded(seconds: float | None) -> float | None:
            return None if seconds is None else round(seconds, 2)

        return [self.status, rounded(self.answer_s), self.end, rounded(self.end_s)]


async def hold(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, trickle: Trickle, interval: float
) -> None:
    """Writes one more header line every `interval` while reading whatever comes
    back, until the server closes or resets the connection (or the task is cancelled)."""
    writer.write(b"GET /healthz HTTP/1.1\r\n")
    received = b""
    line = 0
    next_line = time.monotonic() + interval
    while True:
        try:
            chunk = await asyncio.wait_for(
                reader.read(4096), max(0.0, next_line - time.monotonic())
            )
        except TimeoutError:
            line += 1
            writer.write(b"X-Trickle-%d: x\r\n" % line)
            next_line += interval
            continue
        except OSError:
            trickle.ended("reset")
            return
        if not chunk:
            trickle.ended("closed")
            return
        if trickle.status is None:
            received += chunk
            if b"\r\n" in received:
                trickle.status = status_of(received.split(b"\r\n", 1)[0])
                trickle.answer_s = time.monotonic() - trickle.connected_at


async def main(host: str, port: int, source: str, count: int, interval: float) -> None:
    # A write to a connection the server closed is expected here, not worth a warning.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    started = time.monotonic()
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)
    failed: Counter[str] = Counter()
    trickles: list[Trickle] = []
    writers: list[asyncio.StreamWriter] = []
    tasks: list[asyncio.Task[None]] = []

    async def open_one() -> None:
        async with gate:
            try:
                reader, writer = await connect(host, port, source, CONNECT_TIMEOUT_S)
            except TimeoutError:
                failed["connect timed out"] += 1
                return
            except OSError as error:
                failed[errno.errorcode.get(error.errno or 0, type(error).__name__)] += 1
                return
        trickle = Trickle(time.monotonic())
        trickles.append(trickle)
        writers.append(writer)
        tasks.append(asyncio.create_task(hold(reader, writer, trickle, interval)))

    await asyncio.gather(*(open_one() for _ in range(count)))
    report = {"connected": len(trickles), "failed": failed, "open_s": time.monotonic() - started}
    print(json.dumps(report), flush=True)

    stdin = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    told = asyncio.create_task(stdin.readline())
    # Until told, or until the server has ended every connection.
    waits: list[asyncio.Future[Any]] = [told, asyncio.gather(*tasks, return_exceptions=True)]
    await asyncio.wait(waits, timeout=MAX_HOLD_S, return_when=asyncio.FIRST_COMPLETED)
    told.cancel()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for writer in writers:
        abort(writer)
    print(json.dumps({"outcomes": [trickle.outcome() for trickle in trickles]}), flush=True)


if __name__ == "__main__":
    host, port, source, count, interval = sys.argv[1:6]
    asyncio.run(main(host, int(port), source, int(count), float(interval)))
