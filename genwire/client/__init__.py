"""The Python client of the genwire HTTP API (SPEC §6); it never imports the server."""

from genwire.client._transports import TERMINAL_EVENT_TYPES
from genwire.client.asyncio import AsyncClient
from genwire.client.errors import (
    ApiError,
    Conflict,
    DownloadFailed,
    GenwireError,
    InvalidInput,
    NotFound,
    RateLimited,
    ServerError,
    Timeout,
    TransportFailed,
    Unauthorized,
)
from genwire.client.sync import Client
from genwire.client.types import (
    Artifact,
    FieldError,
    Job,
    JobError,
    JobPage,
    JobStatusEvent,
    Phase,
    Pipeline,
    Project,
    RequeueReason,
    parse_time,
)

__all__ = [
    "TERMINAL_EVENT_TYPES",
    "ApiError",
    "Artifact",
    "AsyncClient",
    "Client",
    "Conflict",
    "DownloadFailed",
    "FieldError",
    "GenwireError",
    "InvalidInput",
    "Job",
    "JobError",
    "JobPage",
    "JobStatusEvent",
    "NotFound",
    "Phase",
    "Pipeline",
    "Project",
    "RateLimited",
    "RequeueReason",
    "ServerError",
    "Timeout",
    "TransportFailed",
    "Unauthorized",
    "parse_time",
]
