"""The in-process bus of the embedded default: one process, no broker."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from genwire.bus.announced import AnnouncedEvents
from genwire.bus.base import LocalFanout, Subscription


class LocalBus:
    def __init__(self) -> None:
        self.fanout = LocalFanout()

    @property
    def announced(self) -> AnnouncedEvents | None:
        return None  # nothing to hear: no other process is on this bus

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(self, topics: list[str], event_ids: Sequence[int] = ()) -> None:
        for topic in topics:
            self.fanout.wake(topic)

    @contextmanager
    def subscribe(self, *topics: str) -> Iterator[Subscription]:
        with self.fanout.subscribe(*topics) as subscription:
            yield subscription
