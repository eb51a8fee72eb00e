"""The JSON bodies the API answers with, as models for `GET /openapi.json`.

The handlers build these bodies from `Job.to_json`, `project_snapshot` and the poll
answer; `tests/test_openapi.py` checks real answers against these schemas, so the
two cannot part. Fields a later version adds are allowed: clients ignore them.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from genwire.models import JobStatus, JsonObject


class FieldProblem(BaseModel):
    field: str = Field(description='a dotted path into the body, e.g. "input.prompt"')
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem: `code` is stable, `type` is `urn:genwire:problem:<code>`."""

    type: str
    code: str
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldProblem] | None = Field(None, description="the failing fields (422)")


class ArtifactAnswer(BaseModel):
    id: str
    name: str
    url: str
    type: str = Field(description="its MIME type")
    size_bytes: int
    sha256: str


class JobErrorAnswer(BaseModel):
    code: str
    message: str
    retryable: bool


class JobUrls(BaseModel):
    self: str
    events: str
    poll: str
    cancel: str


class JobSnapshot(BaseModel):
    """A job as it is now (SPEC §2)."""

    id: str
    pipeline: str
    status: JobStatus
    phase: str | None
    progress: float = Field(ge=0, le=100)
    message: str | None
    queue_position: int | None = Field(description="jobs ahead of it, while queued")
    attempt: int
    cancel_requested: bool
    created_at: str
    started_at: str | None
    finished_at: str | None
    input: JsonObject
    metadata: JsonObject
    project_id: str | None
    error: JobErrorAnswer | None
    artifacts: list[ArtifactAnswer]
    output: JsonObject | None
    last_event_id: str = Field(description="the cursor to stream or poll from")
    urls: JobUrls


class JobPage(BaseModel):
    """Jobs newest first; `next_cursor` asks for the next page."""

    items: list[JobSnapshot]
    next_cursor: str | None


class PollAnswer(BaseModel):
    """The events after the cursor (SPEC §4); `status` and `done` on a job's poll."""

    events: list[JsonObject]
    last_event_id: str | None
    status: JobStatus | None = None
    done: bool | None = None


class ProjectUrls(BaseModel):
    self: str
    events: str
    cancel: str


class ProjectSnapshot(BaseModel):
    """A project and its clips (SPEC §3)."""

    id: str
    name: str | None
    total_clips: int
    completed: int
    pending: int
    failed: int
    cancelled: int
    all_complete: bool
    clips: dict[str, str] = Field(
        description='each clip\'s file URL, or "pending" | "failed" | "cancelled"'
    )
    jobs: list[JobSnapshot]
    created_at: str
    completed_at: str | None
    last_event_id: str
    urls: ProjectUrls


class Items(BaseModel):
    """A list of objects, described by the operation."""

    items: list[JsonObject]


class PipelineList(BaseModel):
    """The pipelines, each with its phases and the JSON Schema of its input."""

    items: list[JsonObject]
    providers: dict[str, bool] = Field(description="which providers are configured")


class WebhookAccepted(BaseModel):
    accepted: bool
    reason: str | None = None
