"""The delivery routes of SPEC §3/§4: job, project and tenant SSE streams, long-poll."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from genwire.api.answers import PollAnswer
from genwire.api.fastpath import PARKED, AnswerBody, park_poll, poll_body
from genwire.api.limits import ConnectionSlot, client_address, connections_of
from genwire.api.openapi import (
    EVENT_STREAM,
    LAST_EVENT_ID,
    LAST_EVENT_ID_QUERY,
    STREAM_TOKEN,
    Answer,
    Operation,
    Param,
    documented,
)
from genwire.api.requests import (
    path_id,
    projects_of,
    query_value,
    service_of,
    settings_of,
    tenant_of,
)
from genwire.api.sse import event_stream, hub_of, parse_cursor, resume_cursor
from genwire.api.tokens import job_reader_tenant
from genwire.delivery import READ_LIMIT, FeedHub, Follower, StatusAt
from genwire.errors import BadRequest
from genwire.models import TERMINAL_EVENT_TYPES, EventType, JobStatus
from genwire.store.entries import LogEntry, Scope, ScopeKind

MAX_POLL_WAIT_S = 60.0
#: One set for every project stream: a batch looks its end up once per set it meets.
PROJECT_END = frozenset({EventType.PROJECT_COMPLETED})
DEFAULT_POLL_WAIT_S = 30.0

#: The documented answer of every stream route, and the parameters of every poll.
SSE_STREAM = Answer("The stream", media_type="text/event-stream", schema=EVENT_STREAM)
POLL_PARAMS = (
    Param("after", "query", "the event id to answer after (the cursor of SPEC §4)"),
    Param(
        "wait",
        "query",
        f"seconds to wait for an event (0–{MAX_POLL_WAIT_S:g}, default {DEFAULT_POLL_WAIT_S:g})",
        {"type": "number", "minimum": 0, "maximum": MAX_POLL_WAIT_S},
    ),
)


@documented(
    Operation(
        "The job's events as Server-Sent Events; the stream ends after the terminal one",
        "streams",
        {
            200: SSE_STREAM,
            204: Answer("The job has ended and the cursor is past its last event"),
        },
        {400: ("bad-cursor",), 404: ("not-found",), 429: ("too-many-streams",)},
        params=(
            Param("job_id", "path", "a job's id"),
            LAST_EVENT_ID,
            LAST_EVENT_ID_QUERY,
            STREAM_TOKEN,
        ),
    )
)
async def job_events(request: Request) -> Response:
    """`GET /api/jobs/{id}/events`: the job's stream; it ends after the terminal event."""
    job_id = path_id(request, "job_id", "job")
    scope = Scope(ScopeKind.JOB, job_id)
    hub = hub_of(request)
    tenant = await job_reader_tenant(request, job_id)
    cursor = resume_cursor(request)
    known = await _job_status(request, hub, scope, tenant, cursor)
    feed = hub.live_feed(scope)
    status, status_seq = _newest_status(known, feed.last_status if feed is not None else None)
    if status.is_terminal and cursor >= status_seq:
        # Nothing will ever follow: 204 tells an EventSource to stop reconnecting.
        return Response(status_code=204)
    return event_stream(request, tenant, scope, cursor, ends_with=TERMINAL_EVENT_TYPES)


@documented(
    Operation(
        "Every clip's events and the project's own; it ends after project-completed",
        "streams",
        {
            200: SSE_STREAM,
            204: Answer("The project has ended and the cursor is past its last event"),
        },
        {400: ("bad-cursor",), 404: ("not-found",), 429: ("too-many-streams",)},
        params=(Param("project_id", "path", "a project's id"), LAST_EVENT_ID, LAST_EVENT_ID_QUERY),
    )
)
async def project_events(request: Request) -> Response:
    """`GET /api/projects/{id}/events`: every clip's events and the project's own; it
    ends after `project-completed`."""
    project_id = path_id(request, "project_id", "prj")
    tenant = tenant_of(request)
    view = await projects_of(request).get_project(project_id, tenant)
    cursor = resume_cursor(request)
    last_seq = max([view.project.last_event_seq, *(clip.last_event_seq for clip in view.clips)])
    if view.project.completed_at is not None and cursor >= last_seq:
        return Response(status_code=204)
    return event_stream(
        request,
        tenant,
        Scope(ScopeKind.PROJECT, project_id),
        cursor,
        ends_with=PROJECT_END,
    )


@documented(
    Operation(
        "One stream of every event of every job the caller can see",
        "streams",
        {200: SSE_STREAM},
        {400: ("bad-cursor",), 429: ("too-many-streams",)},
        params=(LAST_EVENT_ID, LAST_EVENT_ID_QUERY),
    )
)
async def tenant_events(request: Request) -> Response:
    """`GET /api/events`: every event of every job the caller can see, one cursor."""
    tenant = tenant_of(request)
    return event_stream(request, tenant, Scope(ScopeKind.TENANT, tenant), resume_cursor(request))


@documented(
    Operation(
        "Long-poll a job: the events after the cursor, at once or as soon as one comes",
        "streams",
        {200: Answer("The events, the cursor they end at, the job's status", PollAnswer)},
        {400: ("bad-cursor", "bad-query"), 404: ("not-found",), 429: ("too-many-streams",)},
        params=(
            Param("job_id", "path", "a job's id"),
            *POLL_PARAMS,
            STREAM_TOKEN,
        ),
    )
)
async def poll_job(request: Request) -> Response:
    """`GET /api/jobs/{id}/poll?after=ID&wait=S`: the events after ID, at once if there
    are any, else as soon as one comes or after S seconds (SPEC §3, §4.7).

    A long-poll answer is what every poller asks for at every event, so it reads
    nothing from the store while the job's feed is live: the events come from the
    feed, and the job's status from its snapshot on the feed and the newest status
    event the feed has seen since."""
    job_id = path_id(request, "job_id", "job")
    tenant = await job_reader_tenant(request, job_id)
    scope = Scope(ScopeKind.JOB, job_id)
    hub = hub_of(request)
    cursor = parse_cursor((query_value(request, "after") or "").strip(), "after")
    wait = _wait_param(request)
    known = await _job_status(request, hub, scope, tenant, cursor)
    slot = connections_of(request).open(tenant, client_address(request.scope))
    async with slot, hub.follow(scope) as follower:
        feed = follower.feed

        def body(entries: list[LogEntry], last: int) -> bytes:
            status, status_seq = _newest_status(known, feed.last_status, entries)
            done = status.is_terminal and last >= status_seq
            return poll_body(entries, last, {"status": status.value, "done": done})

        status, status_seq = _newest_status(known, feed.last_status)
        entries: list[LogEntry] = []
        if not (status.is_terminal and cursor >= status_seq):
            found = await _poll_entries(request, follower, cursor, wait, body, slot)
            if found is None:
                return PARKED
            entries = found
    return _poll_answer(body(entries, entries[-1].seq if entries else cursor))


async def _job_status(
    request: Request, hub: FeedHub, scope: Scope, tenant: str, cursor: int
) -> StatusAt:
    """The job's status as of some event (404 if the tenant has no such job), for a
    stream or a long-poll from `cursor` to start from: kept on the job's feed once
    read while the feed had its floor, so that every event after the snapshot
    reaches the feed's `last_status`. Read again when the caller is ahead of the
    feed (it saw events the feed has not read yet: from another process, say), so
    a cursor at the job's end always gets its 204 or `done`."""
    feed = hub.live_feed(scope)
    known = feed.status_at if feed is not None else None
    if known is not None and known.tenant == tenant and feed is not None and cursor <= feed.head:
        return known
    cacheable = feed is not None and feed.floor is not None
    job = await service_of(request).get_job(scope.key, tenant)
    known = StatusAt(job.tenant, job.status, job.last_event_seq)
    if cacheable and feed is not None and hub.live_feed(scope) is feed:
        feed.status_at = known
    return known


def _newest_status(
    known: StatusAt, last_status: LogEntry | None, entries: Sequence[LogEntry] = ()
) -> tuple[JobStatus, int]:
    """The newest of the snapshot's status, the feed's newest status event and the
    status events among `entries` (in seq order), with the seq it holds from."""
    newest = last_status
    for entry in reversed(entries):
        if newest is not None and entry.seq <= newest.seq:
            break
        if entry.changes_status:
            newest = entry
            break
    if newest is None or newest.seq <= known.seq:
        return known.status, known.seq
    return newest.job_status, newest.seq


@documented(
    Operation(
        "Long-poll every job the caller can see",
        "streams",
        {200: Answer("The events and the cursor they end at", PollAnswer)},
        {400: ("bad-cursor", "bad-query"), 429: ("too-many-streams",)},
        params=(*POLL_PARAMS,),
    )
)
async def poll_tenant(request: Request) -> Response:
    """`GET /api/poll?after=ID&wait=S`: long-poll over the events of every job the
    caller can see, on the same cursor as `/api/events` (a page whose stream a proxy
    blocks keeps one request open, not one per job)."""
    cursor = parse_cursor((query_value(request, "after") or "").strip(), "after")
    tenant = tenant_of(request)
    scope = Scope(ScopeKind.TENANT, tenant)
    wait = _wait_param(request)

    def body(entries: list[LogEntry], last: int) -> bytes:
        return poll_body(entries, last, {})

    slot = connections_of(request).open(tenant, client_address(request.scope))
    async with slot, hub_of(request).follow(scope) as follower:
        entries = await _poll_entries(request, follower, cursor, wait, body, slot)
    if entries is None:
        return PARKED
    return _poll_answer(body(entries, entries[-1].seq if entries else cursor))


def _park(
    request: Request,
    follower: Follower,
    cursor: int,
    wait: float,
    body: AnswerBody,
    slot: ConnectionSlot,
) -> bool:
    """Leave a poll that has caught up to its feed, which answers it
    (`fastpath.park_poll`) and releases its slot; False where it cannot: it then
    waits in its request."""
    settings = settings_of(request)
    # A CORS answer needs the middleware's headers, which a parked poll cannot add.
    if request.method != "GET" or settings.cors_origins:
        return False
    slot.handed_off = park_poll(
        request.scope,
        hub_of(request),
        follower,
        cursor,
        wait_s=wait,
        gather_s=settings.poll_gather_s,
        ends_with=TERMINAL_EVENT_TYPES,
        body=body,
        on_end=slot.release,
    )
    return slot.handed_off


async def _poll_entries(
    request: Request,
    follower: Follower,
    cursor: int,
    wait: float,
    body: AnswerBody,
    slot: ConnectionSlot,
) -> list[LogEntry] | None:
    """What a long-poll answers with: the events after `cursor` at once if there are
    any; else the first to come within `wait`, with those that follow it within the
    gathering time (never past `wait`), unless one ends a job (docs/ARCHITECTURE.md).
    None when the poll was left to its feed to answer (`_park`).

    A poller that keeps up is at the head of the log: without gathering, every event
    costs it a request and the server a whole HTTP exchange, while a stream costs
    one write. With it, a poller asks about once per gathering time whatever the
    rate, and the end of a job is still answered at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    # Also proves, from memory or the store, that nothing of the scope lies between
    # the cursor and the feed's floor: a quiet scope's poll can then park too.
    entries = await follower.next(cursor, 0)
    if entries or wait <= 0:
        return entries
    if _park(request, follower, cursor, deadline - loop.time(), body, slot):
        return None
    entries = await follower.next(cursor, deadline - loop.time())
    if not entries:
        return entries
    gather_until = min(loop.time() + settings_of(request).poll_gather_s, deadline)
    while not _answer_now(entries) and (remaining := gather_until - loop.time()) > 0:
        more = await follower.next(entries[-1].seq, remaining)
        if not more:
            break
        entries += more
    return entries


def _answer_now(entries: list[LogEntry]) -> bool:
    """Whether a gathering poll stops: a job ended, or the answer is full."""
    return len(entries) >= READ_LIMIT or any(e.type in TERMINAL_EVENT_TYPES for e in entries)


def _poll_answer(body: bytes) -> Response:
    return Response(body, media_type="application/json", headers={"cache-control": "no-store"})


def _wait_param(request: Request) -> float:
    raw = query_value(request, "wait")
    if raw is None or raw == "":
        return DEFAULT_POLL_WAIT_S
    try:
        wait = float(raw)
    except ValueError:
        raise BadRequest(
            "query parameter 'wait' must be a number of seconds", code="bad-query"
        ) from None
    if not 0 <= wait <= MAX_POLL_WAIT_S:
        raise BadRequest(
            f"query parameter 'wait' must be within 0–{MAX_POLL_WAIT_S:g}", code="bad-query"
        )
    return wait


routes = [
    Route("/jobs/{job_id}/events", job_events, methods=["GET"]),
    Route("/jobs/{job_id}/poll", poll_job, methods=["GET"]),
    Route("/projects/{project_id}/events", project_events, methods=["GET"]),
    Route("/events", tenant_events, methods=["GET"]),
    Route("/poll", poll_tenant, methods=["GET"]),
]
