"""The bus wakes whoever follows a topic; the durable log stays the source of truth.

A notification says only "something new under this topic": a woken reader reads the
log from its own cursor, so a lost or merged notification can delay but never lose
an event. Topics are named in `genwire.bus.topics`; the `Bus` interface every bus
implements is in `genwire.interfaces`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


class Subscription:
    """A level-triggered wake-up: notifications that arrive between waits merge."""

    def __init__(self, topics: tuple[str, ...]) -> None:
        self.topics = topics
        self._woken = asyncio.Event()

    def notify(self) -> None:
        self._woken.set()

    async def wait(self, timeout: float | None) -> bool:
        """True when notified (and re-armed), False when `timeout` passed first."""
        if timeout is None:  # a feed's wait for news: no time-out to arm at every event
            await self._woken.wait()
            self._woken.clear()
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._woken.wait()
        except TimeoutError:
            return False
        self._woken.clear()
        return True


class LocalFanout:
    """Subscriptions of this process by topic; every bus delivers through one."""

    def __init__(self) -> None:
        self._by_topic: dict[str, set[Subscription]] = {}

    def wake(self, topic: str) -> None:
        for subscription in self._by_topic.get(topic, ()):
            subscription.notify()

    @contextmanager
    def subscribe(self, *topics: str) -> Iterator[Subscription]:
        subscription = Subscription(topics)
        for topic in topics:
            self._by_topic.setdefault(topic, set()).add(subscription)
        try:
            yield subscription
        finally:
            for topic in topics:
                followers = self._by_topic.get(topic)
                if followers is not None:
                    followers.discard(subscription)
                    if not followers:
                        del self._by_topic[topic]
