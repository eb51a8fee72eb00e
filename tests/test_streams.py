"""The stream guarantees of SPEC §4 on the wire: job streams, `/api/events` and long-poll
against real uvicorn servers, read with a parser genwire did not write (httpx-sse)
and with hand-written HTTP/1.1 on plain sockets."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import httpx
import pytest

from genwire.config import Settings
from genwire.delivery import WINDOW
from genwire.ids import new_id
from tests.conftest import ThreadedServer
from tests.waiting import eventually
from tests.wire import (
    TERMINAL_TYPES,
    Event,
    LiveServer,
    RawStream,
    all_events,
    assert_problem,
    cancel,
    client_of,
    create_job,
    direct_sinks,
    event_from_block,
    finished_job,
    hub_readers,
    idle_running_job,
    job_snapshot,
    poll,
    poll_all,
    read_events,
    server_end_established,
    serving_with_small_buffers,
    stalled_subscriber,
    wait_for,
)

RFC3339_MICROSECONDS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|\+00:00)$")
KEEPALIVE = re.compile(r"^: keepalive (\S+)$")
#: Events enough to overflow every buffer between a stalled reader and the server
#: (the kernel's on both sides, the transport's 64 KiB): about 700 KB of frames; and
#: more than a feed keeps in memory, so that early cursors are served from the store.
FLOOD_STEPS = 3 * WINDOW // 2
#: The longest wait a long-poll may ask for, twice the guard on a poll that must not
#: wait (and past the test client's read time-out): a poll that waits fails its test.
LONGEST_POLL_WAIT_S = 60
POLL_GUARD_S = 30


@contextlib.asynccontextmanager
async def raw_stream(
    url: str, path: str, headers: Mapping[str, str] | None = None
) -> AsyncIterator[RawStream]:
    stream = await RawStream.open(url, path, headers)
    try:
        yield stream
    finally:
        await stream.close()


def seen_terminals(count: int) -> Callable[[list[Event]], bool]:
    return lambda events: sum(event.type in TERMINAL_TYPES for event in events) == count


def assert_increasing_ids(events: list[Event]) -> None:
    ids = [event.id for event in events]
    assert all(isinstance(event_id, str) and event_id.isdigit() for event_id in ids), ids
    assert all(a < b for a, b in pairwise(ids)), ids
    assert all(int(a) < int(b) for a, b in pairwise(ids)), ids


# Job streams: cursors, resumption, the end


async def test_resuming_a_finished_job_at_every_cursor_delivers_exactly_the_rest(
    live_server: LiveServer,
) -> None:
    async with asyncio.timeout(60), client_of(live_server()) as client:
        job_id = await finished_job(client, "demo.synthetic", steps=5, step_ms=1, warn_at=3)
        path = f"/api/jobs/{job_id}/events"
        events = await all_events(client, job_id)

        assert_increasing_ids(events)
        assert [event.type in TERMINAL_TYPES for event in events].count(True) == 1
        assert events[-1].type == "job-completed"
        assert all(event.data["job_id"] == job_id for event in events)
        assert (await job_snapshot(client, job_id))["last_event_id"] == events[-1].id
        for position, event in enumerate(events[:-1]):
            rest = events[position + 1 :]
            assert await read_events(client, path, last_event_id=event.id) == rest
            assert await read_events(client, path, params={"last_event_id": event.id}) == rest


async def test_a_cursor_at_or_past_the_terminal_event_gets_204(live_server: LiveServer) -> None:
    async with asyncio.timeout(30), client_of(live_server()) as client:
        job_id = await finished_job(client, "demo.synthetic", steps=2, step_ms=1)
        path = f"/api/jobs/{job_id}/events"
        terminal = (await all_events(client, job_id))[-1].id
        for cursor in (terminal, str(int(terminal) + 1), "9" * 18):
            for response in (
                await client.get(path, headers={"Last-Event-ID": cursor}),
                await client.get(path, params={"last_event_id": cursor}),
            ):
                assert response.status_code == 204, (cursor, response.text)
                assert response.content == b""


async def test_the_last_event_id_header_wins_over_the_query(live_server: LiveServer) -> None:
    async with asyncio.timeout(30), client_of(live_server()) as client:
        job_id = await finished_job(client, "demo.synthetic", steps=3, step_ms=1)
        path = f"/api/jobs/{job_id}/events"
        events = await all_events(client, job_id)
        terminal = events[-1].id

        ended = await client.get(
            path, headers={"Last-Event-ID": terminal}, params={"last_event_id": "0"}
        )
        assert ended.status_code == 204
        after_first = {"last_event_id": terminal}
        rest = await read_events(client, path, last_event_id=events[0].id, params=after_first)
        assert rest == events[1:]
        assert await read_events(client, path, last_event_id="0", params=after_first) == events


async def test_resuming_a_long_job_from_anywhere_delivers_exactly_the_rest(
    live_server: LiveServer,
) -> None:
    """Past the events a feed keeps in memory, an early cursor is served from the
    store and then from the feed, with no seam between them."""
    server = live_server()
    async with asyncio.timeout(90), client_of(server) as client:
        job_id = await create_job(client, "demo.synthetic", steps=FLOOD_STEPS, step_ms=0)
        path = f"/api/jobs/{job_id}/events"
        full = await read_events(client, path)  # live, so the feed moves its window on
        assert full[-1].type == "job-completed"
        assert len(full) > FLOOD_STEPS
        for position in [*range(0, len(full) - 1, 397), len(full) - 2]:
            resumed = await read_events(client, path, last_event_id=full[position].id)
            assert resumed == full[position + 1 :], f"resumed after event {position}"


# Framing, on the raw bytes


async def test_the_raw_stream_opens_with_retry_and_frames_each_event(
    live_server: LiveServer,
) -> None:
    server = live_server()
    async with asyncio.timeout(30), client_of(server) as client:
        job_id = await finished_job(client, "demo.synthetic", steps=3, step_ms=1, warn_at=2)
        expected = await all_events(client, job_id)
        async with raw_stream(server.url, f"/api/jobs/{job_id}/events") as stream:
            assert stream.status == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["cache-control"] == "no-cache"
            assert stream.headers["x-accel-buffering"] == "no"
            events = await stream.read_events()
        body = bytes(stream.body)

    assert re.match(rb"retry: \d+\n\n", body), body[:40]
    blocks = body.split(b"\n\n")
    assert blocks[-1] == b"", "the body ends with the blank line of its last event"
    assert sum(block.startswith(b"retry:") for block in blocks) == 1
    assert event_from_block(blocks[-2].decode()) == expected[-1], "the terminal event is last"
    assert events == expected
    for event in events:
        assert event.data["job_id"] == job_id
        assert RFC3339_MICROSECONDS.match(event.data["ts"]), event.data["ts"]


async def test_keepalive_comments_flow_while_a_job_is_idle(live_server: LiveServer) -> None:
    """The server's own clock is the yardstick: a stream whose lifetime is ten keepalive
    intervals carries keepalives before it ends; one that ignored the interval (the
    default is 10 s) would carry none."""
    server = live_server(keepalive_s=0.3, stream_lifetime_s=3.0)
    async with asyncio.timeout(30), client_of(server) as client:
        job_id, cursor = await idle_running_job(client)
        path = f"/api/jobs/{job_id}/events"
        opened_at = datetime.now(UTC).replace(microsecond=0)  # keepalives say whole seconds
        async with raw_stream(server.url, path, {"Last-Event-ID": cursor}) as stream:
            assert stream.status == 200
            assert (await stream.next_block() or "").startswith("retry: ")
            keepalives: list[str] = []
            while (block := await stream.next_block()) is not None:
                assert block.startswith(":"), f"the job is idle, yet it sent {block!r}"
                keepalives.append(block)
        ended_at = datetime.now(UTC)
        await cancel(client, job_id)

    assert len(keepalives) >= 2, keepalives
    sent = [keepalive_time(keepalive) for keepalive in keepalives]
    assert sent == sorted(sent)
    assert opened_at <= sent[0], (opened_at, sent)
    assert sent[-1] <= ended_at, (sent, ended_at)


def keepalive_time(comment: str) -> datetime:
    match = KEEPALIVE.match(comment)
    assert match, comment
    return datetime.fromisoformat(match[1].replace("Z", "+00:00"))


# A cut connection


async def test_a_stream_cut_mid_job_resumes_without_loss_or_duplicate(
    live_server: LiveServer,
) -> None:
    server = live_server()
    async with asyncio.timeout(60), client_of(server) as client:
        job_id = await create_job(client, "demo.synthetic", steps=40, step_ms=20)
        path = f"/api/jobs/{job_id}/events"
        async with raw_stream(server.url, path) as stream:
            before_cut = await stream.read_events(10)
            assert (await job_snapshot(client, job_id))["status"] == "running"
        after_cut = await read_events(client, path, last_event_id=before_cut[-1].id)
        full = await all_events(client, job_id)

    assert all(event.type not in TERMINAL_TYPES for event in before_cut)
    assert before_cut + after_cut == full
    assert [event.type for event in full].count("step-progress") == 40
    assert full[-1].type == "job-completed"


# Caught-up streams


async def test_caught_up_streams_are_written_by_their_feed_and_end_with_the_job(
    live_server: LiveServer,
) -> None:
    server = live_server()
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, _ = await idle_running_job(client)
        path = f"/api/jobs/{job_id}/events"
        streams = [await RawStream.open(server.url, path) for _ in range(3)]
        tenant = await RawStream.open(server.url, "/api/events")
        try:
            await eventually(lambda: direct_sinks(server) == 4, "4 streams caught up")
            await cancel(client, job_id)
            received = []
            for stream in streams:
                events = []
                while (event := await stream.next_event()) is not None:
                    events.append(event)
                received.append(events)
            await eventually(lambda: direct_sinks(server) == 1, "the job streams detached")
        finally:
            for stream in [*streams, tenant]:
                await stream.close()
        await eventually(lambda: direct_sinks(server) == 0, "the tenant stream detached")
        full = await all_events(client, job_id)

    assert all(events == full for events in received)
    assert full[-1].type == "job-cancelled"


# Slow subscribers


@pytest.fixture
def small_buffer_server(tmp_path: Path) -> Iterator[ThreadedServer]:
    """A live server whose connections have a small send buffer and drop a client
    after 1 s without progress."""
    settings = Settings(
        data_dir=tmp_path / "small-buffers", stream_send_timeout_s=1.0, peer_timeout_s=1.0
    )
    with serving_with_small_buffers(settings) as server:
        yield server


async def read_until_cut(sock: socket.socket, into: list[Event]) -> None:
    """Read the response on `sock`, keeping each whole event, until the connection breaks."""
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    stream = await RawStream.start(reader, writer)
    try:
        assert stream.status == 200
        while (event := await stream.next_event()) is not None:
            into.append(event)
    finally:
        await stream.close()


async def test_a_subscriber_that_stops_reading_is_dropped_without_holding_back_others(
    small_buffer_server: ThreadedServer,
) -> None:
    server = small_buffer_server
    async with asyncio.timeout(90), client_of(server) as client:
        job_id = await create_job(client, "demo.synthetic", steps=FLOOD_STEPS, step_ms=0)
        path = f"/api/jobs/{job_id}/events"
        stalled = stalled_subscriber(server, path)
        try:
            follower = await read_events(client, path)
            await wait_for(client, job_id, lambda job: job["status"] == "succeeded")
            await eventually(lambda: hub_readers(server) == 0, "the stalled stream is released")

            prefix: list[Event] = []
            with pytest.raises((asyncio.IncompleteReadError, ConnectionResetError)):
                await read_until_cut(stalled, prefix)
        finally:
            stalled.close()
        resumed = await read_events(client, path, last_event_id=prefix[-1].id if prefix else None)
        full = await all_events(client, job_id)

    assert follower == full
    assert [event.type for event in full].count("step-progress") == FLOOD_STEPS
    assert all(event.type not in TERMINAL_TYPES for event in prefix)
    assert prefix + resumed == full


@pytest.mark.skipif(sys.platform != "linux", reason="reads the kernel's table of TCP sockets")
async def test_a_dropped_subscriber_is_disconnected_even_if_it_never_reads(
    small_buffer_server: ThreadedServer,
) -> None:
    """Bug: a stream dropped for not reading kept its connection open, with the
    unsent frames queued behind a zero window, for as long as the client never read
    — the server asked its transport to close, which waits for the buffer to drain."""
    server = small_buffer_server
    async with asyncio.timeout(90), client_of(server) as client:
        job_id = await create_job(client, "demo.synthetic", steps=FLOOD_STEPS, step_ms=0)
        stalled = stalled_subscriber(server, f"/api/jobs/{job_id}/events")
        try:
            assert server_end_established(server, stalled)
            await wait_for(client, job_id, lambda job: job["status"] == "succeeded")
            await eventually(lambda: hub_readers(server) == 0, "the stalled stream is released")
            await eventually(
                lambda: not server_end_established(server, stalled),
                "the server lets go of the dropped subscriber's connection",
            )
        finally:
            stalled.close()


# Disconnects


async def test_closed_streams_are_noticed_and_released(live_server: LiveServer) -> None:
    # No keepalive and no event is due: no failed write can reveal the closed
    # connections, only the server watching them.
    server = live_server(keepalive_s=3600)
    async with asyncio.timeout(30), client_of(server) as client:
        job_id, _ = await idle_running_job(client)
        streams = [
            await RawStream.open(server.url, f"/api/jobs/{job_id}/events") for _ in range(20)
        ]
        try:
            assert all(stream.status == 200 for stream in streams)
            await eventually(lambda: hub_readers(server) == 20, "20 streams follow the job")
        finally:
            for stream in streams:
                await stream.close()
        await eventually(lambda: hub_readers(server) == 0, "closed streams released")
        await cancel(client, job_id)


# Maximum lifetime


async def test_a_stream_ends_after_its_lifetime_and_resumes_where_it_ended(
    live_server: LiveServer,
) -> None:
    server = live_server(stream_lifetime_s=1.0)
    async with asyncio.timeout(30), client_of(server) as client:
        job_id, _ = await idle_running_job(client)
        path = f"/api/jobs/{job_id}/events"
        async with raw_stream(server.url, path) as stream:
            assert stream.headers["transfer-encoding"] == "chunked"
            # Up to the body's last chunk: a cut connection would raise instead.
            first = await stream.read_events()
        assert first, "the replay came before the end"
        assert all(event.type not in TERMINAL_TYPES for event in first)
        assert (await job_snapshot(client, job_id))["status"] == "running", "not the job's end"

        resumed = asyncio.create_task(read_events(client, path, last_event_id=first[-1].id))
        await eventually(lambda: hub_readers(server) == 1, "the resumed stream follows the job")
        await cancel(client, job_id)
        rest = await resumed
        while not rest or rest[-1].type not in TERMINAL_TYPES:  # as an EventSource would
            rest += await read_events(client, path, last_event_id=(rest or first)[-1].id)
        full = await all_events(client, job_id)

    assert first + rest == full
    assert full[-1].type == "job-cancelled"


# Fan-out


async def test_five_hundred_subscribers_of_one_job_each_receive_every_event(
    live_server: LiveServer,
) -> None:
    server = live_server(workers=1)
    async with asyncio.timeout(100), client_of(server) as client:
        blocker, _ = await idle_running_job(client)  # holds the only worker
        job_id = await create_job(client, "demo.synthetic", steps=20, step_ms=50)
        path = f"/api/jobs/{job_id}/events"
        limits = httpx.Limits(max_connections=600, max_keepalive_connections=600)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as fan:
            subscribers = [asyncio.create_task(read_events(fan, path)) for _ in range(500)]
            await eventually(
                lambda: hub_readers(server) == 500, "500 subscribers follow the job", timeout=60
            )
            await cancel(client, blocker)  # the job starts now, with everyone listening
            received = await asyncio.gather(*subscribers)
        full = await all_events(client, job_id)

    assert full[0].data["status"] == "queued"
    assert [event.type for event in full].count("step-progress") == 20
    assert full[-1].type == "job-completed"
    assert all(events == full for events in received)


# Long-poll


async def test_a_long_poll_answers_at_once_when_events_exist(live_server: LiveServer) -> None:
    async with asyncio.timeout(60), client_of(live_server()) as client:
        job_id = await finished_job(client, "demo.synthetic", steps=4, step_ms=1)
        full = await all_events(client, job_id)
        terminal = full[-1].id
        for position in range(-1, len(full)):
            after = full[position].id if position >= 0 else None
            async with asyncio.timeout(POLL_GUARD_S):  # it does not wait with events to give
                answer = await poll(client, job_id, after, wait=LONGEST_POLL_WAIT_S)
            assert [Event.of(data) for data in answer["events"]] == full[position + 1 :]
            assert answer["last_event_id"] == terminal
            assert answer["done"] is True
            assert answer["status"] == "succeeded"


async def test_a_long_poll_with_nothing_new_answers_empty_after_its_wait(
    live_server: LiveServer,
) -> None:
    server = live_server()
    async with asyncio.timeout(30), client_of(server) as client:
        job_id, cursor = await idle_running_job(client)
        waiting = asyncio.create_task(poll(client, job_id, cursor, wait=2))
        # One that answered at once would never be seen waiting.
        await eventually(lambda: hub_readers(server) == 1, "the long-poll is waiting")
        answer = await waiting
        await eventually(lambda: hub_readers(server) == 0, "the long-poll is released")
        await cancel(client, job_id)

    assert answer == {"events": [], "last_event_id": cursor, "status": "running", "done": False}


async def test_a_long_poll_returns_as_soon_as_an_event_arrives(live_server: LiveServer) -> None:
    server = live_server()
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, cursor = await idle_running_job(client)
        waiting = asyncio.create_task(poll(client, job_id, cursor, wait=LONGEST_POLL_WAIT_S))
        await eventually(lambda: hub_readers(server) == 1, "the long-poll is waiting")
        await cancel(client, job_id)
        async with asyncio.timeout(POLL_GUARD_S):  # the event, not its wait, answered it
            answer = await waiting

        polled = [Event.of(data) for data in answer["events"]]
        assert polled
        while not answer["done"]:
            answer = await poll(client, job_id, answer["last_event_id"], wait=20)
            polled += [Event.of(data) for data in answer["events"]]
        full = await all_events(client, job_id)

    assert polled == full[[event.id for event in full].index(cursor) + 1 :]
    assert polled[-1].type == "job-cancelled"
    assert answer["last_event_id"] == polled[-1].id
    assert answer["status"] == "cancelled"


async def test_one_cursor_carries_across_sse_and_long_poll(live_server: LiveServer) -> None:
    async with asyncio.timeout(60), client_of(live_server()) as client:
        job_id = await create_job(client, "demo.synthetic", steps=30, step_ms=20)
        path = f"/api/jobs/{job_id}/events"
        over_sse = await read_events(client, path, until=lambda events: len(events) == 8)
        answer = await poll(client, job_id, over_sse[-1].id, wait=20)
        over_poll = [Event.of(data) for data in answer["events"]]
        assert answer["last_event_id"] == over_poll[-1].id
        back_on_sse = await read_events(client, path, last_event_id=answer["last_event_id"])
        full = await all_events(client, job_id)

    assert over_poll
    assert back_on_sse
    assert over_sse + over_poll + back_on_sse == full


# The tenant stream


async def test_the_tenant_stream_carries_every_job_and_resumes_with_one_cursor(
    live_server: LiveServer,
) -> None:
    async with asyncio.timeout(60), client_of(live_server()) as client:
        job_ids = [
            await create_job(client, "demo.synthetic", steps=10, step_ms=10) for _ in range(3)
        ]
        before_cut = await read_events(client, "/api/events", until=lambda e: len(e) == 10)
        after_cut = await read_events(
            client, "/api/events", last_event_id=before_cut[-1].id, until=seen_terminals(3)
        )
        per_job = [await all_events(client, job_id) for job_id in job_ids]

    merged = sorted((event for events in per_job for event in events), key=lambda e: int(e.id))
    tenant_stream = before_cut + after_cut
    assert_increasing_ids(tenant_stream)
    assert tenant_stream == merged
    assert {event.data["job_id"] for event in tenant_stream} == set(job_ids)


async def test_a_tenant_never_sees_another_tenants_events(live_server: LiveServer) -> None:
    server = live_server(api_keys={"k1": "alice", "k2": "bob"})
    async with (
        asyncio.timeout(60),
        client_of(server, "k1") as alice,
        client_of(server, "k2") as bob,
    ):
        alice_first = await finished_job(alice, "demo.synthetic", steps=2, step_ms=1)
        bob_first = await finished_job(bob, "demo.synthetic", steps=2, step_ms=1)
        alice_second = await finished_job(alice, "demo.synthetic", steps=2, step_ms=1)
        bob_second = await finished_job(bob, "demo.synthetic", steps=2, step_ms=1)

        # Each read ends past the other tenant's jobs' events, which ids interleave.
        seen_by_alice = await read_events(alice, "/api/events", until=seen_terminals(2))
        seen_by_bob = await read_events(bob, "/api/events", until=seen_terminals(2))
        alice_jobs = await all_events(alice, alice_first) + await all_events(alice, alice_second)
        bob_jobs = await all_events(bob, bob_first) + await all_events(bob, bob_second)

        for job_id in (bob_first, bob_second):
            assert_problem(await alice.get(f"/api/jobs/{job_id}/events"), 404)
            assert_problem(await alice.get(f"/api/jobs/{job_id}/poll?wait=0"), 404)
        assert_problem(await bob.get(f"/api/jobs/{alice_first}/events"), 404)
        async with client_of(server) as anonymous:
            assert_problem(await anonymous.get("/api/events"), 401)

    assert seen_by_alice == alice_jobs
    assert seen_by_bob == bob_jobs


async def test_the_tenant_long_poll_pages_every_job_on_the_stream_cursor(
    live_server: LiveServer,
) -> None:
    async with asyncio.timeout(60), client_of(live_server()) as client:
        job_ids = [
            await finished_job(client, "demo.synthetic", steps=5, step_ms=1) for _ in range(3)
        ]
        over_sse = await read_events(client, "/api/events", until=lambda events: len(events) == 7)
        polled: list[Event] = []
        cursor: str | None = over_sse[-1].id
        while True:
            answer = await poll_all(client, cursor, wait=0)
            if not answer["events"]:
                break
            polled += [Event.of(data) for data in answer["events"]]
            cursor = answer["last_event_id"]
            assert cursor == polled[-1].id
        per_job = [await all_events(client, job_id) for job_id in job_ids]

    merged = sorted((event for events in per_job for event in events), key=lambda e: int(e.id))
    assert over_sse + polled == merged
    assert answer == {"events": [], "last_event_id": merged[-1].id}


async def test_the_tenant_long_poll_answers_when_any_job_changes(live_server: LiveServer) -> None:
    server = live_server(api_keys={"k1": "alice", "k2": "bob"})
    async with (
        asyncio.timeout(60),
        client_of(server, "k1") as alice,
        client_of(server, "k2") as bob,
    ):
        waiting = asyncio.create_task(poll_all(alice, None, wait=30))
        await eventually(lambda: hub_readers(server) == 1, "the long-poll is waiting")
        await finished_job(bob, "demo.synthetic", steps=1, step_ms=1)
        job_id = await create_job(alice, "demo.synthetic", steps=1, step_ms=1)
        answer = await waiting
        async with client_of(server) as anonymous:
            assert_problem(await anonymous.get("/api/poll?wait=0"), 401)

    assert answer["events"]
    assert {event["job_id"] for event in answer["events"]} == {job_id}
    assert answer["last_event_id"] == answer["events"][-1]["id"]


# Bad cursors


async def test_bad_cursors_and_waits_are_400_problems(live_server: LiveServer) -> None:
    async with asyncio.timeout(30), client_of(live_server()) as client:
        job_id = await finished_job(client, "demo.synthetic", steps=1, step_ms=1)
        events = f"/api/jobs/{job_id}/events"
        poll_path = f"/api/jobs/{job_id}/poll"
        forty_digits = "1" * 40
        requests: list[tuple[str, dict[str, str], dict[str, str]]] = [
            (events, {"Last-Event-ID": "abc"}, {}),
            (events, {"Last-Event-ID": forty_digits}, {}),
            (events, {"Last-Event-ID": "-1"}, {}),
            (events, {}, {"last_event_id": "abc"}),
            (events, {}, {"last_event_id": forty_digits}),
            ("/api/events", {"Last-Event-ID": "abc"}, {}),
            ("/api/events", {}, {"last_event_id": forty_digits}),
            (poll_path, {}, {"after": "-1"}),
            (poll_path, {}, {"after": "abc"}),
            (poll_path, {}, {"after": forty_digits}),
            (poll_path, {}, {"wait": "61"}),
            (poll_path, {}, {"wait": "x"}),
            (poll_path, {}, {"wait": "-1"}),
            (poll_path, {}, {"wait": "nan"}),
            ("/api/poll", {}, {"after": "abc"}),
            ("/api/poll", {}, {"wait": "61"}),
        ]
        for path, headers, params in requests:
            assert_problem(await client.get(path, headers=headers, params=params), 400)


#: More digits than Python's int() reads from a string (4 300): a cursor the length
#: of a header that a hostile client may send.
PADDING = "0" * 4400


async def test_a_cursor_padded_with_thousands_of_zeros_resumes_where_its_id_does(
    live_server: LiveServer,
) -> None:
    """Bug: `Last-Event-ID: 000…0001` (4 400 zeros) passed the 18-digit check, then
    int() refused it past its digit limit and every stream and poll answered 500.
    Ids are zero-padded strings; more zeros render the same id."""
    async with asyncio.timeout(60), client_of(live_server()) as client:
        job_id = await finished_job(client, "demo.synthetic", steps=3, step_ms=1)
        events = await all_events(client, job_id)
        middle = len(events) // 2
        cursor, rest = PADDING + events[middle].id, events[middle + 1 :]
        stream = f"/api/jobs/{job_id}/events"
        assert await read_events(client, stream, last_event_id=cursor) == rest
        assert await read_events(client, stream, params={"last_event_id": cursor}) == rest
        assert await read_events(client, stream, last_event_id=PADDING) == events
        ended = seen_terminals(1)
        tenant = [
            await read_events(client, "/api/events", last_event_id=cursor, until=ended),
            await read_events(client, "/api/events", params={"last_event_id": cursor}, until=ended),
        ]
        assert tenant == [rest, rest]
        rest_ids = [event.id for event in rest]
        job_poll = await poll(client, job_id, after=cursor, wait=0)
        assert [event["id"] for event in job_poll["events"]] == rest_ids
        assert job_poll["done"] is True
        tenant_poll = await poll_all(client, after=cursor, wait=0)
        assert [event["id"] for event in tenant_poll["events"]] == rest_ids


async def test_a_project_stream_resumes_from_a_cursor_padded_with_thousands_of_zeros(
    live_server: LiveServer,
) -> None:
    """Bug: the project stream, like every stream, answered such a cursor with a 500."""
    async with asyncio.timeout(60), client_of(live_server()) as client:
        clip = {"pipeline": "demo.synthetic", "input": {"steps": 2, "step_ms": 1}}
        created = await client.post("/api/projects", json={"clips": [clip]})
        assert created.status_code == 201, created.text
        path = created.json()["urls"]["events"]
        events = await read_events(client, path)
        assert events[-1].type == "project-completed"
        middle = len(events) // 2
        cursor, rest = PADDING + events[middle].id, events[middle + 1 :]
        assert await read_events(client, path, last_event_id=cursor) == rest
        assert await read_events(client, path, params={"last_event_id": cursor}) == rest
        at_end = await client.get(path, headers={"Last-Event-ID": PADDING + events[-1].id})
        assert at_end.status_code == 204


async def test_streams_and_polls_of_unknown_jobs_are_404_problems(
    live_server: LiveServer,
) -> None:
    async with asyncio.timeout(30), client_of(live_server()) as client:
        for job_id in (new_id("job"), "nope"):
            assert_problem(await client.get(f"/api/jobs/{job_id}/events"), 404)
            assert_problem(await client.get(f"/api/jobs/{job_id}/poll?wait=0"), 404)
