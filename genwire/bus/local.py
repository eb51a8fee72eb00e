"""The in-process bus of the embedded default: one process, no broker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from genwire.bus.base import LocalFanout, Subscription


class LocalBus:
    def __init__(self) -> None:
        self.fanout = LocalFanout()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(self, topics: list[str]) -> None:
        for topic in topics:
            self.fanout.wake(topic)

    @contextmanager
    def subscribe(self, *topics: str) -> Iterator[Subscription]:
        with self.fanout.subscribe(*topics) as subscription:
            yield subscription
