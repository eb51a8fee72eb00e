"""Row 9: clients that drop in the middle of a create's body, and what the server's
log says about it at its default level."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from bench.hostile.report import Row, progress
from bench.hostile.server import error_lines, log_lines_after, serving, traceback_lines
from bench.hostile.wire import connect

NAME = "dropped-upload"
BODY_BYTES = 100_000
SETTLE_S = 2.0  #: for the server to notice the last drop and log it


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument_group(NAME).add_argument(
        "--drops", type=int, default=10, help="uploads dropped halfway"
    )


async def run(options: argparse.Namespace) -> list[Row]:
    async with serving() as server:
        offset = len(server.log_text())
        head = (
            f"POST /api/jobs HTTP/1.1\r\nHost: {server.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {BODY_BYTES}\r\n\r\n"
        ).encode()
        for _ in range(options.drops):
            _reader, writer = await connect(server.host, server.port)
            writer.write(head + b'{"pipeline": "' + b"x" * (BODY_BYTES // 2 - 14))
            await asyncio.wait_for(writer.drain(), 10.0)
            await asyncio.sleep(0.1)  # the server has begun reading the body
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await asyncio.sleep(SETTLE_S)
        lines = log_lines_after(server, offset)
    errors, tracebacks = error_lines(lines), traceback_lines(lines)
    others = len(lines) - tracebacks
    sample = f"; the first: `{lines[0].strip()[:160]}`" if lines else ""
    happened = (
        f"{errors} log lines at ERROR, {tracebacks} traceback lines, {others} other lines "
        f"({len(lines)} lines in all){sample}"
    )
    progress(NAME, happened)
    return [
        Row(
            NAME,
            f"{options.drops} clients send a `POST /api/jobs` head with `Content-Length: "
            f"{BODY_BYTES}` and close after half the body",
            happened,
        )
    ]
