"""Long-poll answers on the wire (SPEC §3, §4.7): gathering after the first new event
(a job's end at once, never past the wait), caught-up polls parked on their feed
(`genwire.api.fastpath`), which writes their whole answer on the kept-alive
connection, and the delivery routes served without Starlette's routing
(`genwire.api.fastpath.hot_paths`), read with httpx and with hand-written HTTP/1.1."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest

from genwire.ids import new_id
from genwire.store.entries import Scope, ScopeKind
from tests.conftest import ThreadedServer
from tests.waiting import eventually
from tests.wire import (
    AT_ONCE_S,
    ORIGIN,
    TERMINAL_TYPES,
    LiveServer,
    RawConnection,
    all_events,
    assert_problem,
    cancel,
    client_of,
    create_job,
    feed_of,
    finished_job,
    hub_readers,
    idle_job_on_warm_feed,
    idle_running_job,
    job_scope,
    parked_polls,
    poll,
    poll_all,
    poll_path,
    queued_behind_a_blocker,
    raw_connection,
    serve,
    warm_feed,
    warm_job_feed,
)

#: A gathering time far past every client read time-out below: a poll that gathers
#: for it (instead of answering at once, or at the end of its wait) fails its test.
ENDLESS_GATHER_S = 60.0
#: Where the poll waits: parked on its feed, or in its request (CORS origins set).
WAYS = ["parked", "in-request"]


# Looking at the server's feeds from the test's thread


def sinks_of(server: ThreadedServer, scope: Scope) -> int:
    feed = feed_of(server, scope)
    return 0 if feed is None else len(feed.sinks)


async def until_waiting(server: ThreadedServer, scope: Scope, way: str) -> None:
    """Until one poll of the scope waits: parked on the feed, or in its request."""
    if way == "parked":
        await eventually(lambda: parked_polls(server, scope) == 1, "the poll is parked")
    else:
        await eventually(lambda: hub_readers(server) == 1, "the poll waits")
        assert sinks_of(server, scope) == 0, "a poll parked though CORS origins are set"


# Hand-written HTTP/1.1


@contextlib.asynccontextmanager
async def parked_job_poll(
    server: ThreadedServer, job_id: str, cursor: str
) -> AsyncIterator[RawConnection]:
    """A raw connection whose poll of the job (a 60 s wait) has parked on its feed."""
    async with raw_connection(server) as connection:
        connection.send(poll_path(job_id, cursor, 60))
        await until_waiting(server, job_scope(job_id), "parked")
        yield connection


def event_types(answer: Mapping[str, Any]) -> list[str]:
    return [event["type"] for event in answer["events"]]


# Parking


async def test_a_caught_up_poll_parks_and_answers_whole_on_its_kept_alive_connection(
    live_server: LiveServer,
) -> None:
    server = serve(live_server)
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, cursor = await idle_job_on_warm_feed(server, client)
        async with parked_job_poll(server, job_id, cursor) as connection:
            # Its app returned: no request task waits for the poll.
            await eventually(lambda: not server.server.server_state.tasks, "the app returned")
            assert hub_readers(server) == 1
            await cancel(client, job_id)
            async with asyncio.timeout(AT_ONCE_S):  # the events, not the wait, answer it
                answer = await connection.answer()
            # The same connection serves the next request, after the whole body.
            connection.send(f"/api/jobs/{job_id}")
            async with asyncio.timeout(AT_ONCE_S):
                after = await connection.answer()
        await eventually(lambda: hub_readers(server) == 0, "the poll released its feed")
        since_cursor = await poll(client, job_id, cursor, 0)

    assert answer.status_line == "HTTP/1.1 200 OK"
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"] == "no-store"
    assert "connection" not in answer.headers
    assert answer.headers["content-length"] == str(len(answer.body))
    body = answer.json()
    assert body["events"], body
    assert body["events"] == since_cursor["events"][: len(body["events"])]
    assert body["last_event_id"] == body["events"][-1]["id"]
    assert all(event["job_id"] == job_id for event in body["events"])
    assert (body["status"], body["done"]) == (
        ("cancelled", True) if body["events"][-1]["type"] == "job-cancelled" else ("running", False)
    )
    assert after.status == 200
    assert after.json()["id"] == job_id


async def test_every_poll_parked_on_a_job_gets_the_same_answer(live_server: LiveServer) -> None:
    server = serve(live_server, poll_gather_s=0)  # each answers with the first batch
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, cursor = await idle_job_on_warm_feed(server, client)
        async with contextlib.AsyncExitStack() as stack:
            connections = [
                await stack.enter_async_context(raw_connection(server)) for _ in range(5)
            ]
            for connection in connections:
                connection.send(poll_path(job_id, cursor, 60))
            await eventually(lambda: parked_polls(server, job_scope(job_id)) == 5, "5 parked")
            await cancel(client, job_id)
            async with asyncio.timeout(AT_ONCE_S):
                answers = [await connection.answer() for connection in connections]
        await eventually(lambda: hub_readers(server) == 0, "the polls released their feed")

    assert {answer.status for answer in answers} == {200}
    assert answers[0].json()["events"]
    assert all(answer.body == answers[0].body for answer in answers)


async def test_a_parked_poll_asked_to_close_its_connection_says_so_and_closes_it(
    live_server: LiveServer,
) -> None:
    server = serve(live_server)
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, cursor = await idle_job_on_warm_feed(server, client)
        async with raw_connection(server) as connection:
            connection.send(poll_path(job_id, cursor, 60), {"Connection": "close"})
            await until_waiting(server, job_scope(job_id), "parked")
            await cancel(client, job_id)
            async with asyncio.timeout(AT_ONCE_S):
                answer = await connection.answer()
                rest = await connection.rest()
        await eventually(lambda: hub_readers(server) == 0, "the poll released its feed")

    assert answer.status == 200
    assert answer.headers["connection"] == "close"
    assert answer.json()["events"]
    assert rest == b"", "the connection ends after the answer"


async def test_a_tenant_poll_parks_and_answers_with_another_jobs_event(
    live_server: LiveServer,
) -> None:
    server = serve(live_server)
    async with asyncio.timeout(60), client_of(server) as client:
        idle_job, cursor = await idle_running_job(client)
        assert (await poll_all(client, cursor, 0))["events"] == []
        scope = Scope(ScopeKind.TENANT, "default")  # the one tenant of a server without keys
        await warm_feed(server, scope)
        waiting = asyncio.create_task(poll_all(client, cursor, 60))
        await until_waiting(server, scope, "parked")
        job_id = await create_job(client, "demo.synthetic", steps=1, step_ms=1)
        async with asyncio.timeout(AT_ONCE_S):
            answer = await waiting
        await eventually(lambda: sinks_of(server, scope) == 0, "the poll left its feed")
        await cancel(client, idle_job)

    assert answer["events"], answer
    assert {event["job_id"] for event in answer["events"]} == {job_id}
    assert answer["last_event_id"] == answer["events"][-1]["id"]
    assert int(answer["last_event_id"]) > int(cursor)
    assert set(answer) == {"events", "last_event_id"}


@pytest.mark.parametrize("kind", ["job", "tenant"])
async def test_a_caught_up_poll_parks_though_other_scopes_events_came_after_its_cursor(
    live_server: LiveServer, kind: str
) -> None:
    """Alice's idle job has nothing after her cursor, but Bob's job appended events
    after it, before her feed started: the feed starts past her cursor (its floor is
    the log's last id), yet her scope has no event in between, as the store shows.
    Her poll has caught up, and should park like any other."""
    server = serve(live_server, api_keys={"k1": "alice", "k2": "bob"})
    async with (
        asyncio.timeout(60),
        client_of(server, "k1") as alice,
        client_of(server, "k2") as bob,
    ):
        job_id, cursor = await idle_running_job(alice)
        await finished_job(bob, "demo.synthetic", steps=2, step_ms=1)
        if kind == "job":
            scope = job_scope(job_id)
            feed = await warm_job_feed(server, alice, job_id, cursor)
            waiting = asyncio.create_task(poll(alice, job_id, cursor, 30))
        else:
            assert (await poll_all(alice, cursor, 0))["events"] == []
            scope = Scope(ScopeKind.TENANT, "alice")
            feed = await warm_feed(server, scope)
            waiting = asyncio.create_task(poll_all(alice, cursor, 30))
        assert feed.floor is not None
        assert feed.floor > int(cursor)
        # It waits: parked on the feed, or in its request (as the feed's follower).
        await eventually(lambda: hub_readers(server) == 1, "the poll waits")
        # A poll that parks does so in the step of the loop where it began to follow:
        # this thread may have looked in the middle of that step, so look again.
        with contextlib.suppress(AssertionError):
            await eventually(lambda: parked_polls(server, scope) == 1, "parked", timeout=2)
        parked = parked_polls(server, scope)
        await cancel(alice, job_id)
        answer = await waiting

    assert answer["events"][-1]["type"] == "job-cancelled"
    assert parked == 1, "a caught-up poll waited in its request"


# Gathering


@pytest.mark.parametrize("way", WAYS)
async def test_a_waiting_poll_gathers_the_events_that_follow_its_first(
    live_server: LiveServer, way: str
) -> None:
    server = serve(live_server, way, workers=1, poll_gather_s=1.5)
    async with asyncio.timeout(60), client_of(server) as client:
        blocker, job_id, cursor = await queued_behind_a_blocker(client, steps=100, step_ms=100)
        await warm_job_feed(server, client, job_id, cursor)
        waiting = asyncio.create_task(poll(client, job_id, cursor, 30))
        await until_waiting(server, job_scope(job_id), way)
        await cancel(client, blocker)  # the job starts: an event every 100 ms
        async with asyncio.timeout(AT_ONCE_S):
            answer = await waiting
        again = await poll(client, job_id, cursor, 0)
        await cancel(client, job_id)

    types = event_types(answer)
    # The job's start, then steps 100 ms apart: each came in a batch of its own.
    assert types[0] == "job-status", types
    assert types.count("step-progress") >= 2, types
    assert not TERMINAL_TYPES & set(types), "the job ran for 10 s: not its end"
    assert (answer["status"], answer["done"]) == ("running", False)
    assert answer["events"] == again["events"][: len(answer["events"])]
    assert answer["last_event_id"] == answer["events"][-1]["id"]


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("end", ["first-new-event", "while-gathering"])
async def test_a_jobs_end_is_answered_at_once_whatever_the_gathering_time(
    live_server: LiveServer, way: str, end: str
) -> None:
    """The end is the poll's first new event (its queued job is cancelled), or it
    comes while the poll gathers (its short job starts once the poll waits)."""
    server = serve(live_server, way, workers=1, poll_gather_s=ENDLESS_GATHER_S)
    async with asyncio.timeout(60), client_of(server) as client:
        blocker, job_id, cursor = await queued_behind_a_blocker(client, steps=3, step_ms=100)
        await warm_job_feed(server, client, job_id, cursor)
        waiting = asyncio.create_task(
            client.get(
                f"/api/jobs/{job_id}/poll",
                params={"after": cursor, "wait": "60"},
                timeout=AT_ONCE_S,  # a poll that gathered on would fail with ReadTimeout
            )
        )
        await until_waiting(server, job_scope(job_id), way)
        await cancel(client, job_id if end == "first-new-event" else blocker)
        response = await waiting
        full = await all_events(client, job_id)
        await cancel(client, blocker)

    assert response.status_code == 200, response.text
    answer = response.json()
    after_cursor = full[[event.id for event in full].index(cursor) + 1 :]
    assert [event["id"] for event in answer["events"]] == [event.id for event in after_cursor]
    if end == "first-new-event":
        assert event_types(answer) == ["job-cancelled"]
        assert (answer["status"], answer["done"]) == ("cancelled", True)
    else:
        types = event_types(answer)
        assert types[0] == "job-status", types
        assert types.count("step-progress") == 3, types
        assert types[-1] == "job-completed"
        assert (answer["status"], answer["done"]) == ("succeeded", True)


@pytest.mark.parametrize("way", WAYS)
async def test_gathering_never_outlasts_the_polls_wait(live_server: LiveServer, way: str) -> None:
    server = serve(live_server, way, workers=1, poll_gather_s=ENDLESS_GATHER_S)
    async with asyncio.timeout(60), client_of(server) as client:
        blocker, job_id, cursor = await queued_behind_a_blocker(client, steps=1000, step_ms=100)
        await warm_job_feed(server, client, job_id, cursor)
        waiting = asyncio.create_task(
            client.get(
                f"/api/jobs/{job_id}/poll",
                params={"after": cursor, "wait": "4"},
                timeout=AT_ONCE_S,  # a poll that gathered past its wait would time out
            )
        )
        await until_waiting(server, job_scope(job_id), way)
        await cancel(client, blocker)  # the job starts well within the wait
        response = await waiting
        await cancel(client, job_id)

    assert response.status_code == 200, response.text
    answer = response.json()
    types = event_types(answer)
    assert types, answer
    assert types[0] == "job-status", types
    assert "step-progress" in types, "the events of the whole wait were gathered"
    assert not TERMINAL_TYPES & set(types)
    assert (answer["status"], answer["done"]) == ("running", False)
    assert answer["last_event_id"] == answer["events"][-1]["id"]


@pytest.mark.parametrize("way", WAYS)
async def test_a_poll_with_events_already_after_its_cursor_does_not_gather(
    live_server: LiveServer, way: str
) -> None:
    """The job runs on, idle: none of its events ends it, and nothing else comes
    that could end a gathering before the wait does."""
    server = serve(live_server, way, poll_gather_s=ENDLESS_GATHER_S)
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, cursor = await idle_running_job(client)
        events = (await poll(client, job_id, None, 0))["events"]
        assert events[-1]["id"] == cursor
        first = events[0]["id"]
        timeout = httpx.Timeout(30, read=AT_ONCE_S)  # a poll that gathered would time out
        job_poll = await client.get(
            f"/api/jobs/{job_id}/poll", params={"after": first, "wait": "60"}, timeout=timeout
        )
        tenant_poll = await client.get(
            "/api/poll", params={"after": first, "wait": "60"}, timeout=timeout
        )
        await cancel(client, job_id)

    assert not TERMINAL_TYPES & {event["type"] for event in events}
    for response in (job_poll, tenant_poll):
        assert response.status_code == 200, response.text
        assert response.json()["events"] == events[1:]


# Parked polls whose client leaves, talks, or whose feed ends


async def test_a_parked_poll_whose_client_goes_away_is_released_and_nothing_is_lost(
    live_server: LiveServer,
) -> None:
    server = serve(live_server)
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, cursor = await idle_job_on_warm_feed(server, client)
        scope = job_scope(job_id)
        async with parked_job_poll(server, job_id, cursor):
            pass
        # Released long before its wait, with no event to write and no tick needed
        # to notice (though a tick would notice too).
        await eventually(lambda: sinks_of(server, scope) == 0, "the parked poll is released")
        await eventually(lambda: hub_readers(server) == 0, "nothing follows the job")
        await cancel(client, job_id)
        polled: list[dict[str, Any]] = []
        answer: dict[str, Any] = {"last_event_id": cursor, "done": False}
        while not answer["done"]:
            answer = await poll(client, job_id, answer["last_event_id"], 30)
            polled += answer["events"]
        full = await all_events(client, job_id)

    after_cursor = full[[event.id for event in full].index(cursor) + 1 :]
    assert [event["id"] for event in polled] == [event.id for event in after_cursor]
    assert polled[-1]["type"] == "job-cancelled"


async def test_a_request_sent_on_a_parked_polls_connection_cuts_it(
    live_server: LiveServer,
) -> None:
    server = serve(live_server)
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, cursor = await idle_job_on_warm_feed(server, client)
        scope = job_scope(job_id)
        async with parked_job_poll(server, job_id, cursor) as connection:
            connection.send(f"/api/jobs/{job_id}")  # pipelined behind the poll
            await eventually(lambda: sinks_of(server, scope) == 0, "the parked poll was cut")
            async with asyncio.timeout(AT_ONCE_S):
                rest = await connection.rest()
        await eventually(lambda: hub_readers(server) == 0, "nothing follows the job")
        await cancel(client, job_id)
        after_cut = await poll(client, job_id, cursor, 30)

    assert b"HTTP/1.1" not in rest, "an answer was written on the cut connection"
    assert after_cut["events"], "the events are there for the next poll"


async def test_a_request_pipelined_before_the_poll_parked_is_answered_after_it(
    live_server: LiveServer,
) -> None:
    """Both requests came in one write: uvicorn queued the second before the first
    parked, so nothing cuts the poll, and the second is answered once it is."""
    server = serve(live_server)
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, cursor = await idle_job_on_warm_feed(server, client)
        async with raw_connection(server) as connection:
            host = f"Host: {connection.url.host}:{connection.url.port}"
            both = [
                f"GET {path} HTTP/1.1\r\n{host}\r\n\r\n".encode()
                for path in (poll_path(job_id, cursor, 60), f"/api/jobs/{job_id}")
            ]
            connection.writer.write(b"".join(both))  # one write: one segment
            await until_waiting(server, job_scope(job_id), "parked")
            await cancel(client, job_id)
            async with asyncio.timeout(AT_ONCE_S):
                first = await connection.answer()
                second = await connection.answer()
        await eventually(lambda: hub_readers(server) == 0, "the poll released its feed")

    assert first.status == 200
    assert first.json()["events"]
    assert second.status == 200
    assert second.json()["id"] == job_id


async def test_a_parked_poll_answers_when_the_server_begins_to_shut_down(
    live_server: LiveServer,
) -> None:
    server = serve(live_server)
    hub = server.app.state.hub
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, cursor = await idle_running_job(client)
        await warm_job_feed(server, client, job_id, cursor)
        async with parked_job_poll(server, job_id, cursor) as connection:
            hub.call_soon_threadsafe(hub.begin_shutdown)  # on the server's loop
            async with asyncio.timeout(AT_ONCE_S):  # not at the end of its wait
                answer = await connection.answer()
            connection.send(f"/api/jobs/{job_id}")
            async with asyncio.timeout(AT_ONCE_S):
                after = await connection.answer()
        await eventually(lambda: hub_readers(server) == 0, "the poll released its feed")
        await cancel(client, job_id)

    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {
        "events": [],
        "last_event_id": cursor,
        "status": "running",
        "done": False,
    }
    assert after.status == 200


# CORS: polls wait in their request, through Starlette and its middleware


async def test_with_cors_origins_immediate_and_waited_polls_carry_the_cors_header(
    live_server: LiveServer,
) -> None:
    server = serve(live_server, "in-request")
    origin = {"Origin": ORIGIN}
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, cursor = await idle_running_job(client)
        path = f"/api/jobs/{job_id}/poll"
        immediate = await client.get(path, params={"after": cursor, "wait": "0"}, headers=origin)
        tenant_immediate = await client.get(
            "/api/poll", params={"after": "", "wait": "0"}, headers=origin
        )
        scope = job_scope(job_id)
        await warm_feed(server, scope)
        waiting = asyncio.create_task(
            client.get(path, params={"after": cursor, "wait": "60"}, headers=origin)
        )
        await until_waiting(server, scope, "in-request")
        await cancel(client, job_id)
        async with asyncio.timeout(AT_ONCE_S):
            waited = await waiting

    assert server.app.hot_paths is None
    for response in (immediate, tenant_immediate, waited):
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == ORIGIN
        assert response.headers["content-type"] == "application/json"
        assert response.headers["cache-control"] == "no-store"
    assert immediate.json()["events"] == []
    assert tenant_immediate.json()["events"]
    assert event_types(waited.json())


# What the hot paths leave to Starlette, and their errors


async def test_the_hot_paths_answer_everything_else_as_starlette_does(
    live_server: LiveServer,
) -> None:
    keys = {"k1": "alice"}
    hot = serve(live_server, api_keys=keys)
    routed = serve(live_server, "in-request", api_keys=keys)  # Starlette routes all
    unknown = new_id("job")
    requests: list[tuple[str, str, int]] = [
        ("POST", f"/api/jobs/{unknown}/poll", 405),
        ("POST", f"/api/jobs/{unknown}/events", 405),
        ("POST", "/api/poll", 405),
        ("POST", "/api/events", 405),
        ("DELETE", f"/api/jobs/{unknown}/poll", 405),
        ("GET", f"/api/jobs/{unknown}/poll/extra", 404),
        ("GET", f"/api/jobs/{unknown}/polls", 404),
        ("GET", "/api/jobs//poll", 404),
        ("GET", "/api/pollx", 404),
        ("GET", f"/api/jobs/{unknown}/poll?wait=0", 404),
        ("GET", "/api/jobs/nope/poll?wait=0", 404),
        ("GET", "/api/jobs/nope/events", 404),
        ("GET", "/api/poll?after=abc", 400),
        ("GET", "/api/poll?wait=61", 400),
        ("GET", "/api/events?last_event_id=abc", 400),
    ]
    anonymous_requests = [
        ("GET", "/api/poll?wait=0", 401),
        ("GET", "/api/events", 401),
        ("GET", f"/api/jobs/{unknown}/poll?wait=0", 401),
    ]
    answers: dict[str, list[httpx.Response]] = {}
    async with asyncio.timeout(60):
        for name, server in (("hot", hot), ("routed", routed)):
            async with client_of(server, "k1") as client, client_of(server) as anonymous:
                answers[name] = [
                    await client.request(method, path) for method, path, _ in requests
                ] + [
                    await anonymous.request(method, path) for method, path, _ in anonymous_requests
                ]
                job_id = await finished_job(client, "demo.synthetic", steps=1, step_ms=1)
                for params in ({"after": "abc"}, {"after": "-1"}, {"wait": "x"}):
                    assert_problem(await client.get(f"/api/jobs/{job_id}/poll", params=params), 400)

    assert hot.app.hot_paths is not None
    assert routed.app.hot_paths is None
    for (method, path, status), mine, theirs in zip(
        requests + anonymous_requests, answers["hot"], answers["routed"], strict=True
    ):
        assert_problem(mine, status)
        assert mine.json() == theirs.json(), (method, path)
        for header in ("allow", "www-authenticate"):
            assert mine.headers.get(header) == theirs.headers.get(header), (method, path)
        if status == 405:
            assert "GET" in mine.headers["allow"], (method, path)


async def test_an_unexpected_error_on_a_hot_path_is_a_500_problem(
    live_server: LiveServer,
) -> None:
    server = serve(live_server)
    service = server.app.state.service

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the store broke")

    service.get_job = broken
    try:
        async with asyncio.timeout(30), client_of(server) as client:
            response = await client.get(f"/api/jobs/{new_id('job')}/poll", params={"wait": "0"})
    finally:
        del service.get_job
    assert_problem(response, 500)
    assert response.json()["code"] == "internal-error"
    assert "the store broke" not in response.text
