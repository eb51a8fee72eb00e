"""The interfaces the service and everything above it are written against:
`Store` (durable state and the event log), `Bus` (wake-ups after a commit) and
`ArtifactStorage` (artifacts' bytes: `genwire.storage`, a folder or an S3 bucket).

`genwire.store.SqlStore`, `genwire.bus.LocalBus` and `genwire.storage`'s
`LocalStorage` and `S3Storage` implement them (`runtime.py`, where they are built,
has mypy check it); another store or a cross-process bus is written against these,
not against those classes. Each lists what code outside
its own package uses, no more.

The value types named here are imported for type checking only, so the store and
bus packages can re-export these protocols without an import cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from collections.abc import Generator
    from pathlib import Path

    from genwire.bus.announced import AnnouncedEvents
    from genwire.bus.base import Subscription
    from genwire.metrics import Histogram
    from genwire.models import Artifact, Job, JobPage
    from genwire.storage.base import StoredFile
    from genwire.store.deliveries import WebhookOutbox
    from genwire.store.entries import LogEntry, Scope
    from genwire.store.projects import ProjectView
    from genwire.store.provider_calls import ProviderCalls
    from genwire.store.recent import RecentEvents
    from genwire.store.transactions import WriteTx

T = TypeVar("T")


class Store(Protocol):
    """Jobs, the per-job event log, artifacts and projects. Its errors reach callers
    as `genwire.errors.StoreUnavailable`."""

    @property
    def recent(self) -> RecentEvents | None:
        """Events this process committed lately, for feeds; None where not kept."""

    @property
    def events_appended(self) -> int:
        """Events this process appended (`GET /metrics`)."""

    @property
    def write_seconds(self) -> Histogram:
        """How long write transactions took, from being asked for to their commit."""

    @property
    def outbox(self) -> WebhookOutbox:
        """The webhook deliveries waiting to be sent (written inside job transactions)."""

    @property
    def provider_calls(self) -> ProviderCalls:
        """Calls to remote providers, each written before its request leaves."""

    async def migrate(self) -> int: ...

    async def close(self) -> None: ...

    async def write(self, fn: Callable[[WriteTx], T]) -> tuple[T, WriteTx]:
        """Run `fn` in one write transaction, committed when it returns; returns
        its value and the transaction, with what it appended."""

    async def ping(self) -> None:
        """Raises when the database does not answer."""

    async def get_job(self, job_id: str, tenant: str | None = None) -> Job | None: ...

    async def list_jobs(
        self,
        tenant: str,
        *,
        status: str | None = None,
        pipeline: str | None = None,
        project_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> JobPage:
        """Newest first; `cursor` is the id of the last job of the previous page."""

    async def project_view(self, project_id: str, tenant: str) -> ProjectView | None: ...

    async def get_artifact(
        self, artifact_id: str, tenant: str | None = None
    ) -> Artifact | None: ...

    async def entries_after(self, scope: Scope, after_seq: int, limit: int = 500) -> list[LogEntry]:
        """The events of `scope` after `after_seq`, oldest first, as stored."""

    async def last_seq(self) -> int:
        """The newest committed event id; every event committed later has a larger one."""

    async def count_events_between(self, after: int, through: int) -> int:
        """How many events have an id in (after, through]."""

    async def count_by_status(self) -> dict[str, int]: ...


class Bus(Protocol):
    """Tells subscribers of a topic that something is new under it; carries no data
    but the ids of the events announced (see `genwire.bus.base`). Topics are named in
    `genwire.bus.topics`."""

    @property
    def announced(self) -> AnnouncedEvents | None:
        """What other processes announced, for the feeds' backstop; None where the
        bus reaches this process alone (`LocalBus`)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, topics: list[str], event_ids: Sequence[int] = ()) -> None:
        """Wake the topics' subscribers in every process the bus reaches, this one at
        once; called after the commit of the events `event_ids`."""

    def subscribe(self, *topics: str) -> AbstractContextManager[Subscription]: ...


class ArtifactStorage(Protocol):
    """Where artifacts' bytes live, under paths relative to its root that never escape
    it. Every method blocks: code on the event loop calls it in a thread. A remote
    storage's failures reach callers as `genwire.errors.StorageUnavailable`."""

    def put(
        self, source: Path, job_id: str, artifact_id: str, name: str, media_type: str | None
    ) -> StoredFile:
        """Take the file `source` into storage (it is gone from there afterwards),
        its size and sha256 computed on the way."""

    def remove(self, path: str) -> None:
        """Delete a stored file; one already gone is no error."""

    def size_of(self, path: str) -> int | None:
        """The stored file's size in bytes; None when it is gone."""

    def read(self, path: str, start: int, end: int) -> Generator[bytes, None, None]:
        """The bytes [start, end) of a stored file, in chunks of at most
        `genwire.storage.base.READ_CHUNK_BYTES`, fetched as they are asked for."""

    def scratch_dir(self, job_id: str, attempt: int) -> Path:
        """A fresh working folder for one attempt, on local disk whatever the storage."""

    def discard_scratch(self, job_id: str, attempt: int) -> None: ...
