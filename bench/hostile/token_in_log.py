"""Row 6: a job's stream token used as a browser uses it (the stream, long-polls),
then the server's whole log at its default level searched for it and for the keys."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import httpx

from bench.hostile.report import Row, progress
from bench.hostile.server import new_key, serving

NAME = "token-in-log"
#: Long enough for its long-polls to wait (and park) between events.
JOB: dict[str, Any] = {"pipeline": "demo.synthetic", "input": {"steps": 40, "step_ms": 50}}
POLL_WAIT_S = 5
WITHIN_S = 60.0


async def run(options: argparse.Namespace) -> list[Row]:
    keys = {new_key("ka"): "alice", new_key("kb"): "bob"}
    key_a = next(iter(keys))
    async with serving(keys=keys) as server:
        headers = {"authorization": f"Bearer {key_a}"}
        async with (
            httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30.0) as keyed,
            httpx.AsyncClient(base_url=server.url, timeout=30.0) as browser,
        ):
            job = (await keyed.post("/api/jobs", json=JOB)).raise_for_status().json()
            events_url, poll_url = job["urls"]["events"], job["urls"]["poll"]
            token = events_url.partition("token=")[2]
            polls, events = await asyncio.wait_for(
                asyncio.gather(_poll(browser, poll_url), _stream(browser, events_url)), WITHIN_S
            )
        await asyncio.sleep(0.5)  # the last access lines
        lines = server.log_text().splitlines()
    with_token = [line for line in lines if token in line]
    with_signature = [line for line in lines if token.partition(".")[2] in line]
    with_key = [line for line in lines if any(key in line for key in keys)]
    access = next((line for line in lines if "/events?" in line), "no access line for the stream")
    happened = (
        f"the token in {len(with_token)} of {len(lines)} log lines, its signature alone in "
        f"{len(with_signature)}, an API key in {len(with_key)}; the stream's access line: "
        f"`{access.strip()[:160]}`"
    )
    progress(NAME, happened)
    done = (
        f"a job's `urls.events` read to the end with its `?token=` ({events} events) and "
        f"`urls.poll` long-polled {polls} times without a key; the server's whole log at its "
        "default level (info) searched"
    )
    return [Row(NAME, done, happened)]


async def _stream(browser: httpx.AsyncClient, url: str) -> int:
    events = 0
    async with browser.stream("GET", url) as stream:
        stream.raise_for_status()
        async for line in stream.aiter_lines():
            if line.startswith("data: "):
                events += 1
    return events


async def _poll(browser: httpx.AsyncClient, url: str) -> int:
    """Long-polls from the start to the end, each waiting up to POLL_WAIT_S: most
    catch up and wait, as a browser behind a proxy that blocks streams does."""
    after = "0"
    polls = 0
    deadline = time.monotonic() + WITHIN_S
    while time.monotonic() < deadline:
        answer = (await browser.get(f"{url}&after={after}&wait={POLL_WAIT_S}")).raise_for_status()
        polls += 1
        body = answer.json()
        after = body["last_event_id"]
        if body["done"]:
            break
    return polls
