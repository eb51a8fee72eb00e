"""An SSE stream read from its raw bytes, frame by frame, noting when each frame
arrived: what the checks of buffering and keepalives measure (a client library's
reader would hide both)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from genwire.client import TERMINAL_EVENT_TYPES, parse_time


@dataclass
class Frame:
    """One SSE frame as it reached the client (`at`: monotonic seconds)."""

    at: float
    event: dict[str, Any] | None = None
    comment: str | None = None


@dataclass
class StreamRead:
    """What reading one SSE stream saw."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    opened_at: float = 0.0
    frames: list[Frame] = field(default_factory=list)
    closed_at: float | None = None  # when the server ended it
    error: str | None = None
    timed_out: bool = False  # the deadline passed while waiting for data

    @property
    def events(self) -> list[Frame]:
        return [frame for frame in self.frames if frame.event is not None]

    def terminal(self) -> dict[str, Any] | None:
        for frame in self.events:
            assert frame.event is not None
            if frame.event.get("type") in TERMINAL_EVENT_TYPES:
                return frame.event
        return None


def parse_frame(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """An SSE frame's event (its `data:` JSON) or its comment text."""
    data: list[str] = []
    comment = None
    for line in raw.decode("utf-8", "replace").split("\n"):
        if line.startswith(":"):
            comment = line[1:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        try:
            event = orjson.loads("\n".join(data))
        except orjson.JSONDecodeError:
            return None, None
        return (event if isinstance(event, dict) else None), None
    return None, comment


def read_stream(
    http: httpx.Client,
    path: str,
    deadline: float,
    until: Callable[[Frame], bool],
) -> StreamRead:
    """Read an SSE stream's raw bytes frame by frame, noting when each arrived, until
    `until(frame)`, the server's close, or `deadline` (monotonic) — whichever first.
    It connects within `http`'s connect timeout."""
    seen = StreamRead()
    remaining = max(0.1, deadline - time.monotonic())
    timeout = httpx.Timeout(http.timeout.connect, read=remaining)
    try:
        with http.stream("GET", path, timeout=timeout) as response:
            seen.status = response.status_code
            seen.headers = {key.lower(): value for key, value in response.headers.items()}
            seen.opened_at = time.monotonic()
            if response.status_code != 200:
                response.read()
                seen.closed_at = time.monotonic()
                return seen
            for frame in _frames(response.iter_raw()):
                seen.frames.append(frame)
                if until(frame) or time.monotonic() >= deadline:
                    return seen
            seen.closed_at = time.monotonic()
    except httpx.TimeoutException:
        seen.error = "no data before the deadline"
        seen.timed_out = True
    except httpx.HTTPError as error:
        seen.error = f"{type(error).__name__}: {error}"
    return seen


def _frames(chunks: Iterator[bytes]) -> Iterator[Frame]:
    pending = b""
    for chunk in chunks:
        pending += chunk.replace(b"\r\n", b"\n")
        while b"\n\n" in pending:
            raw, pending = pending.split(b"\n\n", 1)
            event, comment = parse_frame(raw)
            if event is not None or comment is not None:
                yield Frame(time.monotonic(), event, comment)


def appended_at(event: dict[str, Any]) -> float | None:
    """When the server appended the event (its `ts`), in epoch seconds; None when the
    event carries no readable time."""
    try:
        moment = parse_time(str(event["ts"]))
    except (KeyError, ValueError):
        return None
    return moment.timestamp() if moment else None
