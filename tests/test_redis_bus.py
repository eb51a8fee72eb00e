"""The Redis bus between processes (`--bus redis://…`): each `RedisBus` here stands
for one process, with its own connections to a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
import redis.asyncio

from genwire.bus.redis import RedisBus, split_channel
from tests.redis_servers import PrivateRedis, channel_url
from tests.waiting import eventually

Buses = Callable[[str], AbstractAsyncContextManager[RedisBus]]


@pytest.fixture
def started() -> Buses:
    @asynccontextmanager
    async def start(url: str) -> AsyncIterator[RedisBus]:
        bus = RedisBus(url)
        await bus.start()
        try:
            yield bus
        finally:
            await bus.close()

    return start


def test_the_channel_is_genwires_own_query_parameter() -> None:
    assert split_channel("redis://h:1/2?channel=prod&socket_timeout=3") == (
        "redis://h:1/2?socket_timeout=3",
        "prod",
    )
    assert split_channel("redis://h:1/2") == ("redis://h:1/2", "genwire:wake")


async def test_an_announcement_wakes_another_process_and_its_sender_at_once(
    redis_url: str, started: Buses
) -> None:
    async with started(redis_url) as sender, started(redis_url) as other:
        assert sender.announced.connected
        assert other.announced.connected
        with other.subscribe("job:a") as remote, sender.subscribe("job:a") as local:
            await sender.publish(["job:a"], [7])
            # The sender's own readers need no round trip through Redis.
            assert await local.wait(0.5)
            assert await remote.wait(10)
        # An answer from the other side: once the sender has it, it has read its own
        # message too (one channel keeps order), and must not have counted it.
        await other.publish(["job:b"], [8])
        await eventually(lambda: sender.announced.received == 1, "the other's announcement")

    assert other.announced.received == 1
    assert sender.announced.published == other.announced.published == 1


async def test_announcements_made_while_one_is_on_the_wire_go_out_together(
    redis_url: str, started: Buses
) -> None:
    async with started(redis_url) as sender, started(redis_url) as other:
        other.announced.tracking = True
        topics = [f"job:{n}" for n in range(200)]
        with other.subscribe(*topics) as woken:
            for seq, topic in enumerate(topics, start=1):
                await sender.publish([topic], [seq])  # returns before anything is sent
            await eventually(lambda: other.announced.count_between(0, 200) == 200, "every id heard")
            assert await woken.wait(1)

    assert 1 <= other.announced.received < 200, "announcements were not merged"


async def test_a_message_genwire_did_not_send_is_ignored(redis_url: str, started: Buses) -> None:
    url, channel = split_channel(redis_url)
    async with started(redis_url) as bus:
        with bus.subscribe("job:x") as woken:
            client = redis.asyncio.Redis.from_url(url)
            try:
                await client.publish(channel, b"not json")
                await client.publish(channel, b'{"o": "elsewhere", "t": ["job:x"], "e": [1]}')
            finally:
                await client.aclose()
            assert await woken.wait(10)

    assert bus.announced.received == 1


async def test_the_subscription_comes_back_by_itself_after_an_outage(
    private_redis: PrivateRedis, started: Buses
) -> None:
    url = channel_url(private_redis.url)
    async with started(url) as bus, started(url) as other:
        private_redis.stop()
        await eventually(lambda: not bus.announced.connected, "the bus notices the outage")
        await bus.publish(["job:a"], [1])  # committed is committed: this must not raise
        await eventually(lambda: bus.announced.publish_failures >= 1, "a failed announcement")

        private_redis.start()
        await eventually(lambda: bus.announced.connected, "the subscription is back")
        await eventually(lambda: other.announced.connected, "the other's too")
        with bus.subscribe("job:b") as woken:
            await other.publish(["job:b"], [2])
            assert await woken.wait(10)

    assert bus.announced.outages == 1


async def test_a_bus_that_cannot_reach_redis_starts_and_wakes_its_own_process(
    private_redis: PrivateRedis, started: Buses
) -> None:
    url = channel_url(private_redis.url)
    private_redis.stop()
    async with started(url) as bus:
        assert not bus.announced.connected
        with bus.subscribe("job:a") as woken:
            await bus.publish(["job:a"], [1])
            assert await woken.wait(1)
        private_redis.start()
        await eventually(lambda: bus.announced.connected, "the subscription once Redis is up")

    assert bus.announced.outages == 0  # a first connection is not an outage ending
