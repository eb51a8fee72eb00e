"""Jobs, events and artifacts as plain data: no I/O here.

The wire shapes are fixed by SPEC §2 and §4; everything the server sends about a
job is built from these types.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JsonObject = dict[str, Any]

#: Event ids are rendered zero-padded so that they increase both as numbers and as
#: strings (SPEC §4.1 says only "strings that increase"; clients may compare either way),
#: for the first 10^16 events.
EVENT_ID_WIDTH = 16


class JobStatus(enum.StrEnum):
    QUEUED = "queued"  #: waiting for a worker
    RUNNING = "running"  #: a worker holds its lease and runs the pipeline
    SUCCEEDED = "succeeded"  #: terminal: the pipeline returned; progress is 100
    FAILED = "failed"  #: terminal: the pipeline raised, timed out or ran out of attempts
    CANCELLED = "cancelled"  #: terminal: cancelled before or while running

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class EventType(enum.StrEnum):
    JOB_STATUS = "job-status"
    STEP_STATUS = "step-status"
    STEP_PROGRESS = "step-progress"
    WARNING = "warning"
    ARTIFACT = "artifact"
    JOB_COMPLETED = "job-completed"
    JOB_FAILED = "job-failed"
    JOB_CANCELLED = "job-cancelled"
    PROJECT_STATUS = "project-status"
    PROJECT_COMPLETED = "project-completed"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_EVENT_TYPES


TERMINAL_EVENT_TYPES = frozenset(
    {EventType.JOB_COMPLETED, EventType.JOB_FAILED, EventType.JOB_CANCELLED}
)


class StepState(enum.StrEnum):
    STARTED = "started"
    COMPLETED = "completed"
    SKIPPED = "skipped"


class ErrorCode(enum.StrEnum):
    """Stable codes of a failed job's `error.code`."""

    PIPELINE_ERROR = "pipeline_error"  #: the pipeline raised an unexpected exception
    TIMEOUT = "timeout"  #: the job ran past its time limit
    WORKER_LOST = "worker_lost"  #: every attempt ended with its worker gone
    INVALID_OUTPUT = "invalid_output"  #: the pipeline returned something not JSON
    INVALID_INPUT = "invalid_input"  #: the stored input no longer fits the worker's pipeline
    STORAGE_UNAVAILABLE = "storage_unavailable"  #: the artifact storage did not take a file


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime | None) -> str | None:
    """RFC 3339 UTC with microseconds, e.g. 2026-11-21T06:28:55.123456Z."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_event_id(seq: int) -> str:
    return str(seq).zfill(EVENT_ID_WIDTH)


@dataclass(frozen=True)
class JobError:
    code: str
    message: str
    retryable: bool = False

    def to_json(self) -> JsonObject:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


@dataclass(frozen=True)
class Artifact:
    id: str
    job_id: str
    name: str
    type: str
    size_bytes: int
    sha256: str
    path: str  #: relative to the storage root; never sent on the wire

    @property
    def url(self) -> str:
        return f"/api/files/{self.id}"

    def to_json(self) -> JsonObject:
        return {
            "id": self.id,
            "name": self.name,
            "url": self.url,
            "type": self.type,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class Event:
    """One entry of the durable log. `payload` holds every field but the id."""

    seq: int
    tenant: str
    job_id: str | None
    type: EventType
    payload: JsonObject
    project_id: str | None = None

    @property
    def id(self) -> str:
        return format_event_id(self.seq)

    def to_json(self) -> JsonObject:
        return {"id": self.id, **self.payload}


@dataclass
class Project:
    """A batch of clips (jobs); its own events are project-status and project-completed."""

    id: str
    tenant: str
    name: str | None
    webhook: JsonObject | None
    created_at: datetime
    completed_at: datetime | None
    last_event_seq: int


@dataclass
class JobProgress:
    """What a progress report reads of a running job's snapshot and writes back:
    less than a whole `Job`, so that the most frequent write stays small."""

    id: str
    tenant: str
    project_id: str | None
    webhook: JsonObject | None
    status: JobStatus
    lease_owner: str | None
    phase: str | None
    progress: float
    message: str | None
    last_event_seq: int


@dataclass
class Job:
    """The snapshot of a job, as stored; `queue_position` is filled in on read."""

    id: str
    tenant: str
    pipeline: str
    status: JobStatus
    phase: str | None
    progress: float
    message: str | None
    attempt: int
    max_attempts: int
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    input: JsonObject
    metadata: JsonObject
    project_id: str | None
    error: JobError | None
    output: JsonObject | None
    last_event_seq: int
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    webhook: JsonObject | None = None
    artifacts: list[Artifact] = field(default_factory=list)
    queue_position: int | None = None

    @property
    def last_event_id(self) -> str:
        return format_event_id(self.last_event_seq)

    def to_json(self) -> JsonObject:
        base = f"/api/jobs/{self.id}"
        return {
            "id": self.id,
            "pipeline": self.pipeline,
            "status": self.status.value,
            "phase": self.phase,
            "progress": round(self.progress, 2),
            "message": self.message,
            "queue_position": self.queue_position if self.status is JobStatus.QUEUED else None,
            "attempt": self.attempt,
            "cancel_requested": self.cancel_requested,
            "created_at": format_time(self.created_at),
            "started_at": format_time(self.started_at),
            "finished_at": format_time(self.finished_at),
            "input": self.input,
            "metadata": self.metadata,
            "project_id": self.project_id,
            "error": self.error.to_json() if self.error else None,
            "artifacts": [artifact.to_json() for artifact in self.artifacts],
            "output": self.output,
            "last_event_id": self.last_event_id,
            "urls": {
                "self": base,
                "events": f"{base}/events",
                "poll": f"{base}/poll",
                "cancel": f"{base}/cancel",
            },
        }


@dataclass(frozen=True)
class JobPage:
    """Jobs newest first; `next_cursor` (the last one's id) asks for the next page."""

    items: list[Job]
    next_cursor: str | None
