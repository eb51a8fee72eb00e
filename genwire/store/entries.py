"""The log's entries as the store reads them: each event encoded once, for every
reader; and the scopes (a job, a tenant, a project) a reader follows."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

import orjson

from genwire.models import TERMINAL_EVENT_TYPES, EventType, JobStatus, format_event_id

STATUS_EVENT_TYPES = TERMINAL_EVENT_TYPES | {EventType.JOB_STATUS}


class ScopeKind(enum.StrEnum):
    JOB = "job"  #: one job's events
    TENANT = "tenant"  #: every event of one tenant (`/api/events`)
    PROJECT = "project"  #: a project's own events and its clips'


@dataclass(frozen=True)
class Scope:
    """Which events a stream carries; one cursor space (the global event seq) for all."""

    kind: ScopeKind
    key: str


@dataclass(eq=False)
class LogEntry:
    """One stored event: its seq, type and its JSON text minus the id, as stored."""

    seq: int
    type: EventType
    job_id: str | None
    stored: str  #: the payload JSON object as appended (without "id")

    @property
    def id(self) -> str:
        return format_event_id(self.seq)

    @cached_property
    def json(self) -> str:
        """The event object of SPEC §4, `{"id": …, "type": …, …}`, built once."""
        return (
            f'{{"id":"{self.id}",{self.stored[1:]}'
            if len(self.stored) > 2
            else f'{{"id":"{self.id}"}}'
        )

    @cached_property
    def frame(self) -> bytes:
        """The SSE frame, built once and sent as is to every subscriber."""
        return f"id: {self.id}\nevent: {self.type.value}\ndata: {self.json}\n\n".encode()

    @property
    def is_terminal(self) -> bool:
        return self.type.is_terminal

    @property
    def changes_status(self) -> bool:
        """Whether it sets its job's status (`job-status` and the terminal events)."""
        return self.type in STATUS_EVENT_TYPES

    @cached_property
    def appended_at(self) -> float | None:
        """When it was appended (its `ts`), in seconds since the epoch; None if its
        payload has no time (`GET /metrics` measures delivery from it)."""
        ts = orjson.loads(self.stored).get("ts")
        try:
            return datetime.fromisoformat(ts).timestamp() if isinstance(ts, str) else None
        except ValueError:
            return None

    @cached_property
    def job_status(self) -> JobStatus:
        """The status a status event sets, read once for every poller that needs it."""
        return JobStatus(orjson.loads(self.stored)["status"])
