"""Typed results of the API calls (SPEC §2, §3): frozen views over the JSON answers,
and over the events `events()` yields as plain dicts (SPEC §4).

Each keeps the JSON it was built from as `.raw`, so a field the server adds later is
never out of reach, and printing the answer as JSON needs no conversion back.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

JsonObject = dict[str, Any]

#: A job reaches exactly one of these and never leaves it (SPEC §2).
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 time as the server writes it (`…Z` or an offset), timezone-aware."""
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))


def _required_time(text: str) -> datetime:
    moment = parse_time(text)
    assert moment is not None
    return moment


@dataclass(frozen=True)
class FieldError:
    """One failing field of a 4xx answer: a dotted path such as `input.steps`."""

    field: str
    message: str


@dataclass(frozen=True)
class JobError:
    code: str
    message: str
    retryable: bool
    raw: JsonObject = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobError:
        return cls(
            code=str(data.get("code", "")),
            message=str(data.get("message", "")),
            retryable=bool(data.get("retryable", False)),
            raw=dict(data),
        )


@dataclass(frozen=True)
class Artifact:
    id: str
    name: str
    url: str
    type: str  #: MIME type
    size_bytes: int
    sha256: str
    raw: JsonObject = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Artifact:
        return cls(
            id=data["id"],
            name=data["name"],
            url=data["url"],
            type=data["type"],
            size_bytes=int(data["size_bytes"]),
            sha256=data["sha256"],
            raw=dict(data),
        )


@dataclass(frozen=True)
class Job:
    """A job snapshot (`GET /api/jobs/{id}`, SPEC §2)."""

    id: str
    pipeline: str
    status: str
    phase: str | None
    progress: float
    message: str | None
    queue_position: int | None
    attempt: int
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    input: JsonObject
    metadata: JsonObject
    project_id: str | None
    error: JobError | None
    artifacts: tuple[Artifact, ...]
    output: JsonObject | None
    last_event_id: str | None
    urls: dict[str, str]
    raw: JsonObject = field(repr=False, compare=False)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        error = data.get("error")
        return cls(
            id=data["id"],
            pipeline=data["pipeline"],
            status=data["status"],
            phase=data.get("phase"),
            progress=float(data.get("progress") or 0.0),
            message=data.get("message"),
            queue_position=data.get("queue_position"),
            attempt=int(data.get("attempt") or 0),
            cancel_requested=bool(data.get("cancel_requested", False)),
            created_at=_required_time(data["created_at"]),
            started_at=parse_time(data.get("started_at")),
            finished_at=parse_time(data.get("finished_at")),
            input=dict(data.get("input") or {}),
            metadata=dict(data.get("metadata") or {}),
            project_id=data.get("project_id"),
            error=JobError.from_json(error) if error else None,
            artifacts=tuple(Artifact.from_json(item) for item in data.get("artifacts") or ()),
            output=data.get("output"),
            last_event_id=data.get("last_event_id"),
            urls=dict(data.get("urls") or {}),
            raw=dict(data),
        )


@dataclass(frozen=True)
class RequeueReason:
    """Why a job's attempt ended and the job went back to the queue to start over.

    `code` is `server_restarted` (the server died while the job ran), `worker_lost`
    (its worker stopped renewing its lease) or `released` (its worker gave it back:
    shutting down, its store failing); a code a later server adds passes through.
    `message` says the same in words: "the server stopped while it ran"."""

    code: str
    message: str
    raw: JsonObject = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RequeueReason:
        return cls(
            code=str(data.get("code", "")),
            message=str(data.get("message", "")),
            raw=dict(data),
        )


@dataclass(frozen=True)
class JobStatusEvent:
    """A `job-status` event (SPEC §4): `JobStatusEvent.from_json(event)` for an event
    of `events()` whose `type` is `job-status`.

    The event that requeues a job after its attempt ended (status `queued`, `attempt`
    the new attempt's number) also carries `reason` and `max_attempts`, the attempts
    the job may have; on every other job-status event both are None. A job that
    starts over runs from its start: its progress goes back to 0."""

    id: str
    job_id: str
    ts: datetime
    status: str
    phase: str | None
    progress: float
    message: str | None
    queue_position: int | None
    attempt: int
    max_attempts: int | None
    reason: RequeueReason | None
    cancel_requested: bool
    raw: JsonObject = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobStatusEvent:
        reason = data.get("reason")
        max_attempts = data.get("max_attempts")
        return cls(
            id=str(data["id"]),
            job_id=data["job_id"],
            ts=_required_time(data["ts"]),
            status=data["status"],
            phase=data.get("phase"),
            progress=float(data.get("progress") or 0.0),
            message=data.get("message"),
            queue_position=data.get("queue_position"),
            attempt=int(data.get("attempt") or 0),
            max_attempts=None if max_attempts is None else int(max_attempts),
            reason=RequeueReason.from_json(reason) if reason else None,
            cancel_requested=bool(data.get("cancel_requested", False)),
            raw=dict(data),
        )


@dataclass(frozen=True)
class JobPage:
    """One page of `GET /api/jobs`, newest first; `next_cursor` fetches the next."""

    items: tuple[Job, ...]
    next_cursor: str | None
    raw: JsonObject = field(repr=False, compare=False)

    def __iter__(self) -> Iterator[Job]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobPage:
        return cls(
            items=tuple(Job.from_json(item) for item in data.get("items") or ()),
            next_cursor=data.get("next_cursor"),
            raw=dict(data),
        )


@dataclass(frozen=True)
class Project:
    """A batch of clips (`GET /api/projects/{id}`, SPEC §3); `clips` maps each job id
    to its result URL, or to "pending", "failed" or "cancelled"."""

    id: str
    name: str | None
    total_clips: int
    completed: int
    pending: int
    failed: int
    cancelled: int
    all_complete: bool
    clips: dict[str, str]
    jobs: tuple[Job, ...]
    created_at: datetime | None
    completed_at: datetime | None
    last_event_id: str | None
    urls: dict[str, str]
    raw: JsonObject = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Project:
        return cls(
            id=data["id"],
            name=data.get("name"),
            total_clips=int(data.get("total_clips") or 0),
            completed=int(data.get("completed") or 0),
            pending=int(data.get("pending") or 0),
            failed=int(data.get("failed") or 0),
            cancelled=int(data.get("cancelled") or 0),
            all_complete=bool(data.get("all_complete", False)),
            clips=dict(data.get("clips") or {}),
            jobs=tuple(Job.from_json(item) for item in data.get("jobs") or ()),
            created_at=parse_time(data.get("created_at")),
            completed_at=parse_time(data.get("completed_at")),
            last_event_id=data.get("last_event_id"),
            urls=dict(data.get("urls") or {}),
            raw=dict(data),
        )


@dataclass(frozen=True)
class Phase:
    name: str
    start: float
    end: float


@dataclass(frozen=True)
class Pipeline:
    """A pipeline the server runs (`GET /api/pipelines`), with the JSON Schema of its input."""

    name: str
    description: str | None
    phases: tuple[Phase, ...]
    input_schema: JsonObject
    time_limit_s: float | None
    raw: JsonObject = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Pipeline:
        return cls(
            name=data["name"],
            description=data.get("description"),
            phases=tuple(
                Phase(item["name"], float(item["start"]), float(item["end"]))
                for item in data.get("phases") or ()
            ),
            input_schema=dict(data.get("input_schema") or {}),
            time_limit_s=data.get("time_limit_s"),
            raw=dict(data),
        )
