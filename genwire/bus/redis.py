"""The bus of a scaled-out deployment: wake-ups shared by every API node and worker
through one Redis pub/sub channel (`--bus redis://…`).

Each process holds one subscription, however many feeds and jobs it follows, and
fans a message out to its own subscribers (`LocalFanout`). A message carries topic
names and event ids, never an event: readers read the durable log from their own
cursor. It is sent after the commit, without holding up the writer: announcements
that pile up while one is on the wire go out together in the next.

Redis pub/sub delivers at most once, and not at all while a process is cut off.
Nothing is lost by that: the feeds' backstop (`genwire.delivery.backstop`) finds
committed events nobody announced, and while the subscription is down the feeds
look again every second, as without a bus. The subscription comes back by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from genwire.bus.announced import AnnouncedEvents
from genwire.bus.base import LocalFanout, Subscription

log = logging.getLogger("genwire.bus")

DEFAULT_CHANNEL = "genwire:wake"
#: Ids kept for one message at most; past it they are dropped, and the backstop
#: counts those events as unannounced (they were: nobody could be told).
MAX_PENDING_IDS = 10_000
CONNECT_TIMEOUT_S = 2.0
#: An idle subscription pings Redis this often, so a dead connection is noticed.
HEALTH_CHECK_S = 5.0
RECONNECT_MAX_S = 2.0
#: How long start() waits for the subscription before going on without it.
START_WAIT_S = 5.0


def split_channel(url: str) -> tuple[str, str]:
    """The URL without genwire's own `channel` query parameter, and the channel: one
    Redis can carry several deployments (pub/sub ignores database numbers)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    channel = next((value for key, value in query if key == "channel"), DEFAULT_CHANNEL)
    rest = urlencode([(key, value) for key, value in query if key != "channel"])
    return urlunsplit(parts._replace(query=rest)), channel


class RedisBus:
    def __init__(self, url: str) -> None:
        self._url, self.channel = split_channel(url)
        self.fanout = LocalFanout()
        self._announced = AnnouncedEvents()
        #: tells this process's own messages apart from the others'
        self._origin = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._client: Redis | None = None
        self._pending_topics: set[str] = set()
        self._pending_ids: list[int] = []
        self._wanted = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def announced(self) -> AnnouncedEvents:
        return self._announced

    async def start(self) -> None:
        self._client = Redis.from_url(
            self._url,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_keepalive=True,
            health_check_interval=HEALTH_CHECK_S,
        )
        self._tasks = [
            asyncio.create_task(self._listen(self._client), name="genwire-bus-listen"),
            asyncio.create_task(self._send(self._client), name="genwire-bus-send"),
        ]
        try:
            async with asyncio.timeout(START_WAIT_S):
                await self._subscribed.wait()
        except TimeoutError:
            log.warning(
                "the bus at %s does not answer; going on without it (feeds look again "
                "every second) until it does",
                _safe(self._url),
            )

    async def close(self) -> None:
        if self._client is None:
            return
        if self._pending_topics:  # a last announcement, if Redis takes it at once
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._client.publish(self.channel, self._take_pending())
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()
        self._client = None
        self._announced.connected = False

    async def publish(self, topics: list[str], event_ids: Sequence[int] = ()) -> None:
        for topic in topics:
            self.fanout.wake(topic)  # this process's own readers: no round trip
        self._announced.note(event_ids)
        self._pending_topics.update(topics)
        if len(self._pending_ids) < MAX_PENDING_IDS:
            self._pending_ids.extend(event_ids)
        self._wanted.set()

    @contextmanager
    def subscribe(self, *topics: str) -> Iterator[Subscription]:
        with self.fanout.subscribe(*topics) as subscription:
            yield subscription

    def _take_pending(self) -> bytes:
        message = {"o": self._origin, "t": sorted(self._pending_topics), "e": self._pending_ids}
        self._pending_topics, self._pending_ids = set(), []
        return orjson.dumps(message)

    async def _send(self, client: Redis) -> None:
        """One message at a time; what comes meanwhile goes out together in the next."""
        failing = False
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            if not self._pending_topics:
                continue
            message = self._take_pending()
            try:
                await client.publish(self.channel, message)
            except (RedisError, OSError) as error:
                self._announced.publish_failures += 1
                if not failing:  # once per outage, not once per event
                    log.warning("announcing on the bus failed (%s); feeds will catch up", error)
                failing = True
                continue
            failing = False
            self._announced.published += 1

    async def _listen(self, client: Redis) -> None:
        """Keep one subscription up, reconnecting with a capped backoff."""
        backoff = 0.1
        subscribed_before = False
        while True:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if subscribed_before:
                    self._announced.outages += 1
                    log.warning("the bus is back; feeds look again once")
                subscribed_before = True
                self._announced.connected = True
                self._subscribed.set()
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(timeout=HEALTH_CHECK_S)
                    if message is not None:
                        self._receive(message["data"])
            except (RedisError, OSError) as error:
                if self._announced.connected:
                    log.warning("lost the bus (%s); feeds look again every second", error)
                self._announced.connected = False
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_S)

    def _receive(self, data: Any) -> None:
        try:
            message = orjson.loads(data)
            origin, topics, event_ids = message["o"], message["t"], message["e"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("ignored a message on the bus that genwire did not send")
            return
        if origin == self._origin:
            return  # woken already, when it was published
        self._announced.received += 1
        self._announced.note(event_ids)
        for topic in topics:
            self.fanout.wake(topic)


def _safe(url: str) -> str:
    """The URL without its password, for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
