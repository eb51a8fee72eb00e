"""Row 1: half-sent requests from one client address, while an honest client asks
`/healthz`; and two single-connection probes, a short body and a 1 MB header."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import sys
from collections import Counter
from typing import Any

from bench.hostile.report import Row, counted, number, progress, spread
from bench.hostile.server import Server, serving
from bench.hostile.wire import exchange, healthz

NAME = "half-open"
HOSTILE_ADDRESS = "127.0.0.2"
PER_CHILD = 5_000  #: connections per child process, far from its descriptor limit
LINE_EVERY_S = 10.0
HEALTHZ_EVERY_S = 0.5
HEALTHZ_TIMEOUT_S = 5.0
BIG_HEADER_TRIES = 5
OPEN_WITHIN_S = 180.0  #: for every child to have tried all its connections
OUTCOMES_WITHIN_S = 30.0
OUTCOMES_LINE_LIMIT = 16 * 1024 * 1024  #: a child's outcomes come as one JSON line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(NAME)
    group.add_argument("--half-open", type=int, default=19_990, help="half-sent requests")
    group.add_argument(
        "--hold",
        type=float,
        default=60.0,
        help="seconds they are held once all are open (less if the server ends them all)",
    )
    group.add_argument("--healthz", type=int, default=80, help="/healthz probes, 2 a second")
    group.add_argument(
        "--body-wait", type=float, default=60.0, help="seconds to wait for the short body's answer"
    )


async def run(options: argparse.Namespace) -> list[Row]:
    async with serving() as server:
        progress(NAME, f"server {server.url}, descriptor limit {number(server.fd_limit())}")
        short_body, big_header = await asyncio.gather(
            _short_body(server, options.body_wait), _big_header(server)
        )
        flood = await _flood(server, options)
    return [
        flood,
        Row(
            NAME,
            "one `POST /api/jobs` with `Content-Length: 10` that sends 2 bytes",
            short_body,
        ),
        Row(NAME, f"`GET /healthz` with a 1 MB header, {BIG_HEADER_TRIES} times", big_header),
    ]


async def _short_body(server: Server, wait_s: float) -> str:
    request = (
        f"POST /api/jobs HTTP/1.1\r\nHost: {server.host}\r\nContent-Type: application/json\r\n"
        'Content-Length: 10\r\n\r\n{"'
    ).encode()
    answer = await exchange(server.host, server.port, request, wait_s)
    progress(NAME, f"short body: {answer.describe(wait_s)}")
    return answer.describe(wait_s)


async def _big_header(server: Server) -> str:
    """Several tries: a server that answers and closes while the header is still
    coming resets the connection, which may destroy its answer before it is read."""
    request = (
        f"GET /healthz HTTP/1.1\r\nHost: {server.host}\r\nX-Big: {'a' * 1_000_000}\r\n\r\n"
    ).encode()
    answers: Counter[str] = Counter()
    for _ in range(BIG_HEADER_TRIES):
        answer = await exchange(server.host, server.port, request, 30.0)
        answers[answer.describe(30.0).split(" after ")[0]] += 1
    progress(NAME, f"1 MB header: {counted(answers)}")
    return counted(answers)


async def _flood(server: Server, options: argparse.Namespace) -> Row:
    total: int = options.half_open
    baseline = server.open_fds()
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.hostile.trickle",
            server.host,
            str(server.port),
            HOSTILE_ADDRESS,
            str(share),
            str(LINE_EVERY_S),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=OUTCOMES_LINE_LIMIT,
        )
        for share in _shares(total, math.ceil(total / PER_CHILD))
    ]
    peak = [baseline]
    sampling = asyncio.create_task(_sample_fds(server, peak))
    # From the first connection on: the server is most loaded while they are opened.
    probes = asyncio.create_task(_probe_healthz(server, options.healthz))
    try:
        progress(NAME, f"opening {number(total)} half-sent requests from {HOSTILE_ADDRESS}")
        opened = await asyncio.wait_for(
            asyncio.gather(*(_json_line(child) for child in children)), OPEN_WITHIN_S
        )
        connected = sum(int(report["connected"]) for report in opened)
        failed: Counter[str] = Counter()
        for report in opened:
            failed.update(report["failed"])
        progress(NAME, f"{number(connected)} connected, {counted(failed)} failed")
        # Each child reports once the server has ended all its connections, or when told.
        reports = [asyncio.create_task(_json_line(child)) for child in children]
        await asyncio.wait(reports, timeout=options.hold)
        _stop(children)
        ended = await asyncio.wait_for(asyncio.gather(*reports), OUTCOMES_WITHIN_S)
        healthy = await probes
    finally:
        sampling.cancel()
        probes.cancel()
        _stop(children)
        for child in children:
            try:
                await asyncio.wait_for(child.wait(), 10.0)
            except TimeoutError:
                child.kill()
                await child.wait()
    outcomes = [outcome for report in ended for outcome in report["outcomes"]]
    accept_errors = len(re.findall(r"(?i)too many open files", server.log_text()))
    done = (
        f"{number(total)} half-sent requests from {HOSTILE_ADDRESS} (`GET /healthz HTTP/1.1`, then "
        f"one header line every {LINE_EVERY_S:g} s, never finished), held up to {options.hold:g} s "
        "once all were tried; `/healthz` probed from the first connection on"
    )
    happened = (
        f"{number(connected)} connected ({counted(failed)} failed to connect); server fds at "
        f"peak {number(peak[0])} (before {baseline}, limit {number(server.fd_limit())}), "
        f"'too many open files' logged {accept_errors}×; {_outcomes(outcomes)}; "
        f"`/healthz` from 127.0.0.1 meanwhile: {healthy}"
    )
    return Row(NAME, done, happened)


def _stop(children: list[asyncio.subprocess.Process]) -> None:
    """Tells each child to close its connections and report (an end of input does too)."""
    for child in children:
        if child.stdin is not None and not child.stdin.is_closing():
            child.stdin.write(b"stop\n")
            child.stdin.close()


def _shares(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


async def _json_line(child: asyncio.subprocess.Process) -> dict[str, Any]:
    assert child.stdout is not None
    line = await child.stdout.readline()
    if not line:
        raise RuntimeError(f"a trickle child exited ({await child.wait()}) without a report")
    report: dict[str, Any] = json.loads(line)
    return report


async def _sample_fds(server: Server, peak: list[int]) -> None:
    while True:
        peak[0] = max(peak[0], await asyncio.to_thread(server.open_fds))
        await asyncio.sleep(0.5)


async def _probe_healthz(server: Server, count: int) -> str:
    """`count` probes, one every HEALTHZ_EVERY_S on a connection of its own."""
    probes = []
    for _ in range(count):
        probes.append(asyncio.create_task(healthz(server.host, server.port, HEALTHZ_TIMEOUT_S)))
        await asyncio.sleep(HEALTHZ_EVERY_S)
    times = [took for took in await asyncio.gather(*probes) if took is not None]
    slowest = f", slowest {max(times):.2f} s" if times else ""
    return (
        f"{len(times)}/{count} answered 200 within {HEALTHZ_TIMEOUT_S:g} s over "
        f"{count * HEALTHZ_EVERY_S:g} s{slowest}"
    )


def _outcomes(outcomes: list[list[Any]]) -> str:
    """What the server did: answered (by status, and whether it then closed), closed
    or reset without an answer, or left open."""
    parts = []
    for status in sorted({o[0] for o in outcomes if o[0] is not None}):
        answered = [o for o in outcomes if o[0] == status]
        ends = Counter(o[2] for o in answered)
        parts.append(
            f"answered {status} ×{number(len(answered))} after {spread([o[1] for o in answered])}"
            f" (then {counted(ends)})"
        )
    for end in ("closed", "reset"):
        silent = [o[3] for o in outcomes if o[2] == end and o[0] is None]
        if silent:
            parts.append(f"{end} without an answer ×{number(len(silent))} after {spread(silent)}")
    still_open = sum(1 for o in outcomes if o[2] == "open" and o[0] is None)
    parts.append(f"open without an answer at the end ×{number(still_open)}")
    return "; ".join(parts)
