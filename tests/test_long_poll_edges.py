"""Edges of parked long-polls and the hot paths, where a parked poll or a hot path
could answer differently from the routed, in-request poll: a request body still to
come, a root path, a sink whose tick fails."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator

from genwire.delivery import Feed, LiveBatch
from tests.conftest import ThreadedServer
from tests.waiting import eventually
from tests.wire import (
    AT_ONCE_S,
    LiveServer,
    cancel,
    client_of,
    hub_readers,
    idle_job_on_warm_feed,
    idle_running_job,
    job_scope,
    parked_polls,
    poll_path,
    queued_behind_a_blocker,
    raw_connection,
    serve,
    warm_job_feed,
)


def request_read_whole(server: ThreadedServer) -> bool:
    """No connection of the server is still reading a request's body (a connection
    that was cut counts too: it reads nothing)."""
    while True:  # the server's thread may change the set while this one copies it
        with contextlib.suppress(RuntimeError):
            connections = list(server.server.server_state.connections)
            break
    cycles = [getattr(protocol, "cycle", None) for protocol in connections]
    return not any(cycle is not None and cycle.more_body for cycle in cycles)


async def test_a_poll_whose_request_body_comes_after_it_waits_is_answered_not_cut(
    live_server: LiveServer,
) -> None:
    """A GET may carry a body (RFC 9110 gives it no meaning, but it is framed like
    any other). uvicorn starts the app once the headers are in, and a parked poll's
    connection treats any bytes from the client as a hang-up: so a poll whose body
    comes in a later segment (or after `Expect: 100-continue`) must not park. It
    waits in its request, and is answered."""
    server = serve(live_server)
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, cursor = await idle_job_on_warm_feed(server, client)
        async with raw_connection(server) as connection:
            connection.send(poll_path(job_id, cursor, 30), {"Content-Length": "2"})
            await eventually(lambda: hub_readers(server) == 1, "the poll waits")
            # Counted from its first step; deciding to park or to wait comes later in
            # that step, unless a store read intervenes: the body comes after either.
            await asyncio.sleep(0.3)
            connection.writer.write(b"{}")  # the rest of the request
            await eventually(lambda: request_read_whole(server), "the body was read")
            await cancel(client, job_id)
            async with asyncio.timeout(AT_ONCE_S):
                rest = await connection.rest()

    assert rest.startswith(b"HTTP/1.1 200 OK\r\n"), f"no answer: {rest[:200]!r}"
    answer = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    # The cancel's first event, at least (its job-cancelled may come in the next
    # poll when the worker takes longer than the answer's gathering).
    assert answer["events"][0]["type"] == "job-status"
    assert answer["events"][0]["cancel_requested"] is True
    assert int(answer["events"][0]["id"]) > int(cursor)


async def test_the_hot_paths_route_on_the_path_within_root_path_as_starlette_does(
    live_server: LiveServer,
) -> None:
    """uvicorn puts `root_path` in front of `scope["path"]` (ASGI 3 / uvicorn ≥ 0.26);
    Starlette routes on the path within it (`get_route_path`), and so must
    `HotPaths.match`: with `--root-path /api`, `GET /poll` names no route (404), not
    `/api/poll`."""
    hot = serve(live_server)
    routed = serve(live_server, "in-request")  # CORS origins: Starlette routes all
    for server in (hot, routed):
        server.server.config.root_path = "/api"  # read by each new connection
    statuses: dict[str, int] = {}
    async with asyncio.timeout(60):
        for name, server in (("hot", hot), ("routed", routed)):
            async with client_of(server) as client:
                response = await client.get("/poll", params={"wait": "0"})
                statuses[name] = response.status_code

    assert hot.app.hot_paths is not None
    assert routed.app.hot_paths is None
    assert statuses["routed"] == 404
    assert statuses["hot"] == statuses["routed"]


class _FailingTick:
    """A sink whose tick raises (standing in for any bug in a sink's tick)."""

    def deliver(self, batch: LiveBatch) -> None:
        return

    def tick(self, now: float) -> None:
        raise RuntimeError("a sink's tick failed")

    def end(self, reason: str) -> None:
        return


@contextlib.contextmanager
def _sink_on(feed: Feed, sink: _FailingTick) -> Iterator[None]:
    loop = feed.loop  # the server's loop
    loop.call_soon_threadsafe(feed.sinks.add, sink)
    try:
        yield
    finally:
        loop.call_soon_threadsafe(feed.sinks.discard, sink)


async def test_a_parked_poll_ends_at_its_wait_even_when_a_sink_tick_fails(
    live_server: LiveServer,
) -> None:
    """A parked poll whose wait is longer than TIMER_HORIZON_S gets its timer only
    from the hub's tick, so one sink whose tick raises must end alone: were the
    ticker to stop, every poll parked meanwhile would outlive its wait until an
    event came."""
    server = serve(live_server)
    async with asyncio.timeout(60), client_of(server) as client:
        job_id, cursor = await idle_running_job(client)
        feed = await warm_job_feed(server, client, job_id, cursor)
        try:
            with _sink_on(feed, _FailingTick()):
                async with raw_connection(server) as connection:
                    connection.send(poll_path(job_id, cursor, 1.5))
                    answered = True
                    try:
                        # Without the ticker, nothing would ever answer it: no event comes.
                        async with asyncio.timeout(AT_ONCE_S):
                            answer = await connection.answer()
                    except TimeoutError:
                        answered = False
        finally:
            await cancel(client, job_id)
        await eventually(lambda: hub_readers(server) == 0, "the poll released its feed")

    assert answered, "a poll with wait=1.5 was never answered: the sinks' ticker stopped"
    assert answer.json()["events"] == []


async def test_every_poll_that_gathers_from_the_same_event_is_answered_with_the_same_events(
    live_server: LiveServer,
) -> None:
    """Polls whose first new event came in one batch share one gathering timer
    (`fastpath.polls._Round`): each must still get its own answer, well before its wait."""
    server = serve(live_server, workers=1, poll_gather_s=1.0)
    async with asyncio.timeout(60), client_of(server) as client:
        blocker, job_id, cursor = await queued_behind_a_blocker(client, steps=100, step_ms=100)
        await warm_job_feed(server, client, job_id, cursor)
        waiting = [
            asyncio.create_task(
                client.get(
                    f"/api/jobs/{job_id}/poll",
                    params={"after": cursor, "wait": "60"},
                    timeout=AT_ONCE_S,  # a poll its round forgot would wait its 60 s
                )
            )
            for _ in range(3)
        ]
        await eventually(
            lambda: parked_polls(server, job_scope(job_id)) == 3, "the three polls are parked"
        )
        await cancel(client, blocker)  # the job starts: an event every 100 ms
        answers = [response.json() for response in await asyncio.gather(*waiting)]
        await cancel(client, job_id)

    assert all(answer["events"] for answer in answers)
    assert answers[1:] == answers[:-1], "polls answered at the same moment differ"
    assert answers[0]["events"][0]["type"] == "job-status"
