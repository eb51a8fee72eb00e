"""Row 3: thousands of streams on `/api/events` from one client address, and what
they cost another client's create-and-stream."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter

import httpx

from bench.hostile.report import Row, counted, number, percentiles, progress
from bench.hostile.server import Server, new_key, serving
from bench.hostile.wire import abort, connect, read_answer

NAME = "streams-one-client"
HOSTILE_ADDRESS = "127.0.0.3"
OPENS_AT_ONCE = 200
ANSWER_TIMEOUT_S = 15.0
TRY_TIMEOUT_S = 60.0
#: The other client's job: short, ~25 events.
SHORT_JOB = {"pipeline": "demo.synthetic", "input": {"steps": 10, "step_ms": 10}}
ENDS = (b"event: job-completed", b"event: job-failed", b"event: job-cancelled")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(NAME)
    group.add_argument("--streams", type=int, default=5_000, help="streams from one address")
    group.add_argument("--tries", type=int, default=20, help="create-and-streams before and while")


async def run(options: argparse.Namespace) -> list[Row]:
    """Without keys (every client one tenant, so the other client's events reach every
    stream), then with a key each (the streams see none of them)."""
    return [await _measure(options, keyed=False), await _measure(options, keyed=True)]


async def _measure(options: argparse.Namespace, *, keyed: bool) -> Row:
    hostile_key, honest_key = new_key("ka"), new_key("kb")
    keys = {hostile_key: "alice", honest_key: "bob"} if keyed else {}
    hostile = f"Authorization: Bearer {hostile_key}\r\n" if keyed else ""
    honest = {"authorization": f"Bearer {honest_key}"} if keyed else {}
    answers: Counter[str] = Counter()
    async with (
        serving(keys=keys) as server,
        httpx.AsyncClient(base_url=server.url, headers=honest) as http,
    ):
        before = await _tries(http, options.tries)
        progress(NAME, f"create-and-stream alone: {percentiles(before)}")
        open_streams: list[asyncio.StreamWriter] = []
        drains: list[asyncio.Task[None]] = []
        try:
            gate = asyncio.Semaphore(OPENS_AT_ONCE)
            await asyncio.gather(
                *(
                    _open_stream(server, hostile, gate, answers, open_streams, drains)
                    for _ in range(options.streams)
                )
            )
            progress(NAME, f"{number(options.streams)} streams asked: {counted(answers)}")
            during = await _tries(http, options.tries)
            progress(NAME, f"create-and-stream while they are open: {percentiles(during)}")
        finally:
            for drain in drains:
                drain.cancel()
            await asyncio.gather(*drains, return_exceptions=True)
            for writer in open_streams:
                abort(writer)
    who = (
        "with API keys: the streams tenant A's, the other client tenant B"
        if keyed
        else "no API keys: every client is one tenant"
    )
    done = (
        f"{number(options.streams)} streams on `/api/events` from {HOSTILE_ADDRESS} ({who}); "
        f"another client creates a 10-step job and reads its stream to the end, {options.tries} "
        "times before and while they are open"
    )
    happened = (
        f"{counted(answers)}; the other client's create-and-stream {percentiles(before)} "
        f"before, {percentiles(during)} while they are open"
    )
    return Row(NAME, done, happened)


async def _open_stream(
    server: Server,
    auth: str,
    gate: asyncio.Semaphore,
    answers: Counter[str],
    open_streams: list[asyncio.StreamWriter],
    drains: list[asyncio.Task[None]],
) -> None:
    """One stream: its answer counted; a 200 is then read (and dropped) until the end."""
    async with gate:
        try:
            reader, writer = await connect(server.host, server.port, HOSTILE_ADDRESS)
        except OSError as error:
            answers[f"connect failed ({type(error).__name__})"] += 1
            return
        open_streams.append(writer)
        writer.write(
            f"GET /api/events HTTP/1.1\r\nHost: {server.host}\r\n{auth}"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        answer = await read_answer(reader, ANSWER_TIMEOUT_S)
    if answer.status is None:
        answers["reset" if answer.reset else "closed" if answer.closed else "no answer"] += 1
        return
    answers[f"{answer.status}{_code(answer.body)}"] += 1
    if answer.status == 200:
        drains.append(asyncio.create_task(_drain(reader)))


def _code(body: bytes) -> str:
    """` too-many-streams` from a problem's body, if it came whole with the head."""
    try:
        return f" {json.loads(body)['code']}"
    except (ValueError, KeyError, TypeError):
        return ""


async def _drain(reader: asyncio.StreamReader) -> None:
    try:
        while await reader.read(65536):
            pass
    except OSError:
        pass


async def _tries(http: httpx.AsyncClient, tries: int) -> list[float]:
    """Seconds from each create to its stream's end; a try that fails is left out."""
    times = []
    for _ in range(tries):
        started = time.monotonic()
        try:
            await asyncio.wait_for(_create_and_stream(http), TRY_TIMEOUT_S)
        except (OSError, httpx.HTTPError) as error:
            progress(NAME, f"a create-and-stream failed: {type(error).__name__}: {error}")
            continue
        times.append(time.monotonic() - started)
    return times


async def _create_and_stream(http: httpx.AsyncClient) -> None:
    job = (await http.post("/api/jobs", json=SHORT_JOB)).raise_for_status().json()
    async with http.stream("GET", job["urls"]["events"], timeout=TRY_TIMEOUT_S) as stream:
        stream.raise_for_status()
        async for line in stream.aiter_lines():
            if line.encode().startswith(ENDS):
                return
