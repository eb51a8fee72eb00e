"""The request bodies of `POST /api/jobs` and `POST /api/projects` as pydantic models.

The handlers validate with these models, and `GET /openapi.json` publishes their
JSON Schemas, so the document says what the API accepts. A pipeline's own input is
checked later, against the pipeline's model (`GET /api/pipelines`); the document
describes a job's body once per pipeline, with that input (`documented_per_pipeline`).
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic_core import PydanticCustomError

from genwire.api.openapi import documented_per_pipeline
from genwire.api.requests import MAX_PROJECT_ID_LENGTH
from genwire.errors import FieldError, InputRejected
from genwire.models import EventType, JsonObject
from genwire.projects import MAX_CLIPS, CreateProject
from genwire.service import CreateJob

MAX_PROJECT_NAME_LENGTH = 200
MAX_WEBHOOK_URL_LENGTH = 2048
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_KEYS = 64
#: A project id: what fits its column, with no control characters (`requests.is_name`).
NAME_PATTERN = r"^[A-Za-z0-9_.:-]+$"

Model = TypeVar("Model", bound=BaseModel)

ProjectId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_PROJECT_ID_LENGTH,
        pattern=NAME_PATTERN,
        description="the id of a project of the caller's, which the job joins",
    ),
]
Metadata = Annotated[
    dict[str, Any],
    Field(
        max_length=MAX_METADATA_KEYS,
        description=f"the caller's own data, kept with the job: at most "
        f"{MAX_METADATA_KEYS} keys and {MAX_METADATA_BYTES} bytes of JSON",
    ),
]


class WebhookBody(BaseModel):
    """Where to deliver the job's events (SPEC §5)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        max_length=MAX_WEBHOOK_URL_LENGTH,
        # No space, control or non-ASCII character; the host and port are checked too.
        pattern=r"^[hH][tT][tT][pP][sS]?://[!-~]+$",
        description="an absolute http or https URL",
    )
    events: list[EventType] | None = Field(
        None, description="the event types to deliver; all of them when absent"
    )

    @field_validator("url")
    @classmethod
    def _absolute_url(cls, url: str) -> str:
        try:
            # A ValueError for an unclosed "[" (IPv6 host), or a port that is not a
            # number or out of range.
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            parts, port = None, 0
        if parts is None or not parts.hostname or port == 0:
            raise PydanticCustomError("url", "must be an absolute http or https URL with a host")
        return url

    @field_validator("events", mode="wrap")
    @classmethod
    def _known_events(cls, events: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """A bad item names the list, not its index: the list is the field."""
        try:
            return handler(events)
        except ValidationError:
            known = ", ".join(item.value for item in EventType)
            raise PydanticCustomError(
                "event_types", "must be a list of event types: {known}", {"known": known}
            ) from None


@documented_per_pipeline
class ClipBody(BaseModel):
    """A clip of a project: a job with neither project nor webhook of its own."""

    model_config = ConfigDict(extra="forbid")

    pipeline: str = Field(min_length=1, description="the name of a pipeline of GET /api/pipelines")
    input: JsonObject = Field(
        default_factory=dict,
        description="the pipeline's input; its JSON Schema is in GET /api/pipelines",
    )
    metadata: Metadata | None = None

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, metadata: JsonObject | None) -> JsonObject | None:
        if metadata is not None and len(orjson.dumps(metadata)) > MAX_METADATA_BYTES:
            raise PydanticCustomError(
                "too_large",
                "must encode to at most {limit} bytes of JSON",
                {"limit": MAX_METADATA_BYTES},
            )
        return metadata

    def to_create(
        self, project_id: str | None = None, webhook: JsonObject | None = None
    ) -> CreateJob:
        return CreateJob(self.pipeline, self.input, project_id, webhook, self.metadata)


class CreateJobBody(ClipBody):
    """`POST /api/jobs`."""

    project_id: ProjectId | None = None
    webhook: WebhookBody | None = None


class CreateProjectBody(BaseModel):
    """`POST /api/projects`."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_PROJECT_NAME_LENGTH,
        pattern=r"^[^\x00-\x1f\x7f]*$",
        description="a name to show; no control characters",
    )
    clips: list[ClipBody] = Field(min_length=1, max_length=MAX_CLIPS)
    webhook: WebhookBody | None = None


def parse_create_job(body: JsonObject) -> CreateJob:
    """The job a create body asks for; 422 naming each failing field."""
    parsed = _validate(CreateJobBody, body, "POST /api/jobs")
    return parsed.to_create(parsed.project_id, _webhook_json(parsed.webhook))


def parse_create_project(body: JsonObject) -> CreateProject:
    """The project a create body asks for; each clip's pipeline checks its input later."""
    parsed = _validate(CreateProjectBody, body, "POST /api/projects")
    clips = [clip.to_create() for clip in parsed.clips]
    return CreateProject(clips, parsed.name, _webhook_json(parsed.webhook))


def _webhook_json(webhook: WebhookBody | None) -> JsonObject | None:
    """The webhook as it was sent (an `events` absent stays absent: it is part of the
    Idempotency-Key's fingerprint)."""
    return None if webhook is None else webhook.model_dump(mode="json", exclude_unset=True)


def _validate(model: type[Model], body: JsonObject, call: str) -> Model:
    try:
        return model.model_validate(body)
    except ValidationError as error:
        problems = [
            FieldError(
                _field_name(item["loc"]),
                "unknown field" if item["type"] == "extra_forbidden" else item["msg"],
            )
            for item in error.errors()
        ]
        raise InputRejected(f"the request body does not match {call}", problems) from None


def _field_name(loc: tuple[int | str, ...]) -> str:
    """`("clips", 3, "input")` → `clips[3].input`."""
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else f".{part}" if name else part
    return name
