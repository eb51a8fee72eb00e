"""What every provider adapter is: submit, look, cancel, verify a webhook (SPEC §7.1).

An adapter speaks one provider's HTTP API and maps it onto `RemoteStatus`; following a
call durably (store first, webhooks and polling, deadline, cancel) is `follow.py`'s,
the same for every provider.
"""

from __future__ import annotations

import enum
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import orjson

from genwire.models import Artifact, JsonObject
from genwire.providers.http import ProviderHttp


class RemoteState(enum.StrEnum):
    QUEUED = "queued"  #: waiting at the provider
    RUNNING = "running"  #: the model runs
    SUCCEEDED = "succeeded"  #: terminal: `result` holds the provider's output
    FAILED = "failed"  #: terminal: `error` says why
    CANCELLED = "cancelled"  #: terminal

    @property
    def is_terminal(self) -> bool:
        return self in (RemoteState.SUCCEEDED, RemoteState.FAILED, RemoteState.CANCELLED)


@dataclass(frozen=True)
class RemoteStatus:
    """A provider job as the provider describes it, in genwire's terms."""

    state: RemoteState
    queue_position: int | None = None
    progress: float | None = None  #: 0–100 of the generation, when the logs tell
    log_line: str | None = None  #: the provider's latest log line
    result: Any = None  #: the provider's output, once succeeded
    error: str | None = None  #: the provider's own words, once failed
    #: the provider refused the input rather than the model failing on it
    rejected: bool = False
    #: a webhook said the job changed without saying how: the provider is asked now
    fetch: bool = False

    def to_json(self) -> JsonObject:
        return {**asdict(self), "state": self.state.value}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RemoteStatus:
        return cls(**{**data, "state": RemoteState(data["state"])})


@dataclass(frozen=True)
class RemoteRequest:
    """What a pipeline asks a provider to run."""

    model: str
    input: JsonObject
    #: Runware only: imageInference, videoInference or audioInference
    task_type: str | None = None

    def fingerprint(self, provider: str) -> str:
        """What a call asked for: a call's key reused for another request is refused."""
        asked = {"provider": provider, **asdict(self)}
        return hashlib.sha256(orjson.dumps(asked, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True)
class RemotePhases:
    """The phases of a pipeline that a provider call moves through."""

    submit: str = "submit"
    queue: str = "queue"
    generate: str = "generate"
    copy: str = "copy"


@dataclass(frozen=True)
class RemoteResult:
    """What a provider call gave: the output to return, and its copied files."""

    output: JsonObject  #: `{provider, provider_job_id, result}`, genwire's URLs in `result`
    artifacts: list[Artifact]  #: the files, stored as the job's artifacts
    files: list[Path]  #: the same files in the attempt's work folder, to work on further


@dataclass(frozen=True)
class Submitted:
    provider_job_id: str
    #: whatever following the job needs besides its id (stored with the call)
    handle: JsonObject = field(default_factory=dict)
    status: RemoteStatus | None = None  #: when the create's answer already says it


@dataclass(frozen=True)
class CallRef:
    """A submitted call, as an adapter needs it to look or cancel."""

    provider_job_id: str
    handle: JsonObject


class WebhookRejected(Exception):
    """A provider webhook whose signature or secret does not verify (401)."""


class Provider(ABC):
    """One remote provider's API."""

    name: ClassVar[str]
    #: the provider can stop a job
    can_cancel: ClassVar[bool] = True

    def __init__(self, http: ProviderHttp) -> None:
        self.http = http

    def new_job_id(self) -> str | None:
        """The id to fix before submitting, where the provider lets genwire choose it
        (Runware's taskUUID): a submit whose outcome is unknown (genwire died
        mid-request) is then looked up instead of sent again."""
        return None

    @abstractmethod
    async def submit(
        self, request: RemoteRequest, *, webhook_url: str | None, job_id: str | None
    ) -> Submitted:
        """Create the provider job (once: callers never retry a submit whose outcome
        is unknown). Raises `ProviderRejected` when the provider refuses the input."""

    @abstractmethod
    async def status(self, call: CallRef) -> RemoteStatus:
        """The provider job now; raises `ProviderGone` when the provider has no such job."""

    @abstractmethod
    async def cancel(self, call: CallRef) -> None:
        """Ask the provider to stop the job (for a provider that `can_cancel`)."""

    @abstractmethod
    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise `WebhookRejected` unless the body was signed by the provider
        (providers that sign nothing are checked by the call's secret instead)."""

    @abstractmethod
    def webhook_status(self, body: Any) -> RemoteStatus | None:
        """The status a verified webhook body tells; None when it tells none."""

    def is_file_field(self, field: str | None) -> bool:
        """Whether a URL held by `field` of a result is an output file to copy (None:
        a list item, or the whole result). Only files: a result may also echo input."""
        return True

    @abstractmethod
    async def check_key(self) -> str:
        """One cheap authenticated call; returns what it learnt (for `genwire doctor`)."""
