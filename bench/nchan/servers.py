"""A server under test as the scenarios see it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

STEPS = 1_000_000  #: the measured job outlasts every run; its server is stopped instead


@dataclass(frozen=True)
class Running:
    port: int
    pid: int  #: the process whose CPU and memory are the server's


@dataclass(frozen=True)
class Source:
    """Where the subscribers connect, and what starts the measured events."""

    path: str
    start: Callable[[], None]
    mode: str = "sse"  #: or "poll" (genwire's long-poll)
    after: str | None = None  #: the cursor a long-poll starts from


@dataclass(frozen=True)
class Target:
    name: str
    serve: Callable[[int, int], AbstractContextManager[Running]]
    flow: Callable[[Running, float, str], AbstractContextManager[Source]]
    idle: Callable[[Running], AbstractContextManager[Source]]
