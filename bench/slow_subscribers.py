"""Slow subscribers: SSE streams that never read, beside a job at a high event rate.

Starts a real `genwire serve` (SQLite, one worker) per run, creates one
`demo.synthetic` job that emits `--rate` events/s, and follows it with one honest
reader. In the second run it also opens `--slow` raw TCP connections that send
`GET /api/jobs/{id}/events` with a small receive buffer and then never read. It
prints the server's RSS (before any stream, once every stream has opened and
caught up, at its peak, once the non-readers were dropped and the job ended), how
many non-readers the server dropped (reset, or closed with bytes still unsent), and
the job's rate and the honest reader's lag with and without them. The job waits
behind another one until every stream has opened, so that opening them is not
measured. SPEC §4.6: past a bounded buffer a slow subscriber is
disconnected; it must not slow the job or the others, and its memory comes back.

    python -m bench.slow_subscribers                          # 1 000 non-readers, ~1 000 events/s
    python -m bench.slow_subscribers --slow 200 --events 4000 # smaller
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import resource
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

from bench._report import describe_machine, percentile_ms, print_table
from bench._server import rss_kib, running_server

#: /proc/net/tcp states (hex): a server end still open, and one closed with bytes unsent.
ESTABLISHED = "01"
FIN_WAIT1 = "04"
SAMPLE_S = 0.05  #: how often the watcher reads the server's RSS
DROPS_EVERY = 5  #: … and, every this many samples, the non-readers' state
DROP_WAIT_S = 30.0  #: how long after the job the non-readers may take to be dropped
SETTLE_S = 2.0  #: after the job and the drops, before the last RSS reading


@dataclass
class HonestReader:
    """What the one reader that keeps up saw: each step's id, append time, arrival."""

    seqs: list[int] = field(default_factory=list)
    appended: list[float] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)
    completed: bool = False


@dataclass
class Watch:
    """What the watcher thread saw of the server and the non-readers."""

    peak_kib: int = 0
    reset: int = 0  #: non-readers whose connection the server reset (abort)
    closing: int = 0  #: … that the server closed, its unsent bytes still queued
    open: int = 0
    most_held: int = 0  #: streams written by their feed (the fast path), at most
    most_following: int = 0  #: streams still in their own ASGI request, at most
    all_dropped_at: float | None = None  #: `time.time()` when none was left open
    all_dropped: threading.Event = field(default_factory=threading.Event)


async def follow(host: str, port: int, path: str, into: HonestReader) -> None:
    """Reads the stream at `path` until the job's terminal event."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    await reader.readuntil(b"\r\n\r\n")
    pending = b""
    try:
        while not into.completed:
            piece = await reader.read(65536)
            if not piece:
                return
            now = time.time()
            pending += piece
            *frames, pending = pending.split(b"\n\n")
            for frame in frames:
                for line in frame.split(b"\n"):
                    if line.startswith(b"data: "):
                        event = json.loads(line[6:])
                        if event["type"] == "step-progress":
                            into.seqs.append(int(event["id"]))
                            into.appended.append(_timestamp(event["ts"]))
                            into.arrived.append(now)
                        elif event["type"] in ("job-completed", "job-failed", "job-cancelled"):
                            into.completed = True
    finally:
        writer.close()


def _timestamp(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def open_non_readers(
    address: tuple[str, int], path: str, count: int, rcvbuf: int
) -> list[socket.socket]:
    """`count` connections that ask for `path` and then never read."""
    request = f"GET {path} HTTP/1.1\r\nHost: {address[0]}\r\nAccept: text/event-stream\r\n\r\n"
    sockets = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: the window
        sock.connect(address)
        sock.sendall(request.encode())
        sockets.append(sock)
    return sockets


def server_states(server_port: int) -> dict[int, str]:
    """The state of each of the server's connections on `server_port`, by client port."""
    states = {}
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = row.split()[1:4]
        if int(local.split(":")[1], 16) == server_port:
            states[int(remote.split(":")[1], 16)] = state
    return states


def watch(
    url: str, pid: int, sockets: list[socket.socket], into: Watch, stop: threading.Event
) -> None:
    """Samples the server's RSS, which non-readers it still holds, and where."""
    server_port = int(url.rsplit(":", 1)[1])
    metrics = httpx.Client(base_url=url, timeout=30)
    poller = select.poll()
    by_fd = {}
    for sock in sockets:
        poller.register(sock, select.POLLERR | select.POLLHUP | select.POLLRDHUP)
        by_fd[sock.fileno()] = sock.getsockname()[1]
    ports = set(by_fd.values())
    tick = 0
    while not stop.is_set():
        into.peak_kib = max(into.peak_kib, rss_kib(pid))
        # Once none is left, looking costs the machine the server runs on.
        if sockets and not into.all_dropped.is_set() and tick % DROPS_EVERY == 0:
            reset = {
                by_fd[fd]
                for fd, flags in poller.poll(0)
                if flags & (select.POLLERR | select.POLLHUP)
            }
            states = server_states(server_port)
            held = {port for port in ports - reset if states.get(port) == ESTABLISHED}
            into.reset = len(reset)
            into.closing = sum(1 for port in ports - reset if states.get(port) == FIN_WAIT1)
            into.open = len(held)
            if not held and into.all_dropped_at is None:
                into.all_dropped_at = time.time()
                into.all_dropped.set()
            connections = _connections(metrics.get("/metrics").text)
            into.most_held = max(into.most_held, connections.get("held", 0))
            into.most_following = max(into.most_following, connections.get("following", 0))
        tick += 1
        stop.wait(SAMPLE_S)
    metrics.close()


def _connections(exposition: str) -> dict[str, int]:
    """`genwire_connections` by state, from `GET /metrics`."""
    found = {}
    for line in exposition.splitlines():
        if line.startswith("genwire_connections{"):
            labels, value = line.rsplit(" ", 1)
            found[labels.split('"')[1]] = int(float(value))
    return found


async def run(url: str, pid: int, args: argparse.Namespace, slow: int) -> list[str]:
    host, port = url.removeprefix("http://").split(":")
    await asyncio.sleep(1.0)  # start-up's garbage settled
    idle = rss_kib(pid)
    watched = Watch()
    stop = threading.Event()
    sockets: list[socket.socket] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        # A job that holds the one worker slot: every stream opens and catches up
        # before the measured job starts, so that opening them is not measured.
        gate = await _create_job(client, steps=1, step_ms=600_000)
        job_id = await _create_job(client, steps=args.events, step_ms=1000.0 / args.rate)
        path = f"/api/jobs/{job_id}/events"
        honest = HonestReader()
        reading = asyncio.create_task(follow(host, int(port), path, honest))
        sockets = await asyncio.to_thread(
            open_non_readers, (host, int(port)), path, slow, args.rcvbuf
        )
        await _until_held(client, slow + 1)
        before = rss_kib(pid)
        watcher = threading.Thread(target=watch, args=(url, pid, sockets, watched, stop))
        watcher.start()
        started_at = time.time()
        await client.post(f"/api/jobs/{gate}/cancel")
        try:
            async with asyncio.timeout(args.events / args.rate * 20 + 60):
                await reading
            if slow:  # after the job: those still held stay counted as open
                await asyncio.to_thread(watched.all_dropped.wait, DROP_WAIT_S)
            await asyncio.sleep(SETTLE_S)
            after = rss_kib(pid)
        finally:
            stop.set()
            watcher.join()
            for sock in sockets:
                sock.close()
    return _row(slow, honest, watched, started_at, (idle, before, after))


async def _until_held(client: httpx.AsyncClient, count: int) -> None:
    """Until `count` streams are held (written to by their feed: they caught up)."""
    async with asyncio.timeout(120):
        while True:
            if _connections((await client.get("/metrics")).text).get("held") == count:
                return
            await asyncio.sleep(0.1)


async def _create_job(client: httpx.AsyncClient, *, steps: int, step_ms: float) -> str:
    created = await client.post(
        "/api/jobs",
        json={"pipeline": "demo.synthetic", "input": {"steps": steps, "step_ms": step_ms}},
    )
    created.raise_for_status()
    job_id: str = created.json()["id"]
    return job_id


def _row(
    slow: int,
    honest: HonestReader,
    watched: Watch,
    started_at: float,
    rss: tuple[int, int, int],
) -> list[str]:
    idle, before, after = rss
    appended, arrived, seqs = honest.appended, honest.arrived, honest.seqs
    held_until = watched.all_dropped_at
    while_held = after_drops = "–"
    if slow and held_until is not None:
        while_held = _rate([stamp for stamp in appended if stamp <= held_until])
        after_drops = _rate([stamp for stamp in appended if stamp > held_until])
    lags = sorted(got - put for got, put in zip(arrived, appended, strict=True))
    in_order = all(b > a for a, b in itertools.pairwise(seqs))
    return [
        f"{slow}",
        f"{watched.reset}/{watched.closing}/{watched.open}" if slow else "–",
        f"{watched.most_held}/{watched.most_following}" if slow else "–",
        f"{held_until - started_at:.1f}" if slow and held_until is not None else "–",
        f"{len(appended)}{'' if in_order else ' (out of order)'}",
        _rate(appended),
        while_held,
        after_drops,
        f"{percentile_ms(lags, 50):.1f}",
        f"{percentile_ms(lags, 99):.1f}",
        f"{lags[-1] * 1000 if lags else float('nan'):.1f}",
        f"{idle / 1024:.1f}",
        f"{before / 1024:.1f}",
        f"{watched.peak_kib / 1024:.1f}",
        f"{after / 1024:.1f}",
        f"{(watched.peak_kib - before) / slow:,.0f}" if slow else "–",
    ]


def _rate(stamps: list[float]) -> str:
    """Events per second between the first and the last of `stamps`."""
    if len(stamps) < 2 or stamps[-1] <= stamps[0]:
        return "–"
    return f"{(len(stamps) - 1) / (stamps[-1] - stamps[0]):,.0f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slow", type=int, default=1000, help="connections that never read")
    parser.add_argument("--rate", type=float, default=1000.0, help="the job's events per second")
    parser.add_argument("--events", type=int, default=12000, help="the job's steps")
    parser.add_argument("--rcvbuf", type=int, default=4096, help="SO_RCVBUF of a non-reader")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run without them")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"slow_subscribers; {describe_machine()}")
    print(f"one job: {args.events} steps at {args.rate:g}/s; non-readers' SO_RCVBUF {args.rcvbuf}")
    rows = []
    for slow in ([] if args.no_baseline else [0]) + [args.slow]:
        async with running_server(extra=["--workers", "1"]) as (url, pid):
            rows.append(await run(url, pid, args, slow))
    print_table(
        [
            "non-readers",
            "reset/closing/open",
            "most held/following",
            "all gone s",
            "steps seen",
            "job ev/s",
            "ev/s while held",
            "ev/s after",
            "lag p50 ms",
            "p99 ms",
            "max ms",
            "RSS idle MiB",
            "streams open MiB",
            "peak MiB",
            "after MiB",
            "peak KiB/non-reader",
        ],
        rows,
    )


if __name__ == "__main__":
    asyncio.run(main())
