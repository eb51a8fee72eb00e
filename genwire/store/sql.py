"""The store on SQLite (WAL) and PostgreSQL through one SQLAlchemy Core layer.

`SqlStore` says what each operation reads or writes; its runner
(`genwire.store.runners`) runs it whole on one connection. A write transaction is a
`WriteTx` in which the service locks a job, appends events and saves the snapshot
together.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from genwire.metrics import Histogram
from genwire.models import Artifact, Event, EventType, Job, JobPage, JobStatus
from genwire.store import rows, schema
from genwire.store.deliveries import WebhookOutbox
from genwire.store.entries import LogEntry, Scope, ScopeKind
from genwire.store.migrations import migrate
from genwire.store.projects import ProjectView, read_project
from genwire.store.provider_calls import ProviderCalls
from genwire.store.recent import RecentEvents
from genwire.store.runners import Runner, runner_for
from genwire.store.transactions import MIGRATE_LOCK_KEY, WriteTx

T = TypeVar("T")
log = logging.getLogger("genwire.store")


class SqlStore:
    """Jobs, the event log and artifacts in one SQL database: the `Store` of
    `genwire.interfaces` on SQLite or PostgreSQL."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL") -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.is_postgres = url.startswith(("postgresql", "postgres://"))
        if not (self.is_sqlite or self.is_postgres):
            raise ValueError(f"unsupported database URL {url!r}: use sqlite:///… or postgresql://…")
        self._runner: Runner = runner_for(url, sqlite_synchronous)
        #: what this process committed lately (SQLite only: see `genwire.store.recent`)
        self.recent = RecentEvents() if self.is_sqlite else None
        #: for `GET /metrics`: events this process appended, and how long its write
        #: transactions took from being asked for to their commit
        self.events_appended = 0
        self.write_seconds = Histogram()

    # Made when asked, not kept: a store they pointed back at would outlive its last
    # user until a garbage collection, and with it the database's open files.
    @property
    def outbox(self) -> WebhookOutbox:
        return WebhookOutbox(self)

    @property
    def provider_calls(self) -> ProviderCalls:
        return ProviderCalls(self)

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> SqlStore:
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{data_dir / 'genwire.db'}")

    async def migrate(self) -> int:
        def run(connection: Connection) -> int:
            if self.is_postgres:
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK_KEY}
                )
            return migrate(connection)

        return await self._runner.write(run)

    async def close(self) -> None:
        await self._runner.close()

    async def write(self, fn: Callable[[WriteTx], T]) -> tuple[T, WriteTx]:
        """Run `fn` in one write transaction; it commits when `fn` returns.

        Returns what `fn` returned and the transaction, with what it appended.
        """

        def run(connection: Connection) -> tuple[T, WriteTx]:
            tx = WriteTx(connection, self.is_postgres)
            return fn(tx), tx

        def committed(result: tuple[T, WriteTx]) -> None:
            if self.recent is None:
                return
            try:
                self.recent.add(result[1].appended, result[1].appended_payloads)
            except Exception:
                # The transaction committed whatever happens here: feeds read the store.
                log.exception(
                    "keeping %d committed event(s) in memory failed", len(result[1].appended)
                )
                self.recent.forget()

        started = time.perf_counter()
        result = await self._runner.write(run, committed)
        self.write_seconds.observe(time.perf_counter() - started)
        self.events_appended += len(result[1].appended)
        return result

    async def read(self, fn: Callable[[Connection], T]) -> T:
        return await self._runner.read(fn)

    async def ping(self) -> None:
        """A trivial query: raises when the database does not answer."""
        await self._runner.read(lambda connection: connection.exec_driver_sql("SELECT 1").scalar())

    async def project_view(self, project_id: str, tenant: str) -> ProjectView | None:
        """The tenant's project with its clips; None when the tenant has no such project."""
        return await self._runner.read(
            lambda connection: read_project(connection, project_id, tenant)
        )

    async def get_job(self, job_id: str, tenant: str | None = None) -> Job | None:
        def run(connection: Connection) -> Job | None:
            query = sa.select(schema.jobs).where(schema.jobs.c.id == job_id)
            if tenant is not None:
                query = query.where(schema.jobs.c.tenant == tenant)
            row = connection.execute(query).mappings().first()
            if row is None:
                return None
            job = rows.job_from_row(row)
            _attach_details(connection, [job])
            return job

        return await self._runner.read(run)

    async def count_events_between(self, after: int, through: int) -> int:
        """How many events have an id in (after, through]: an index range, no rows."""
        seq = schema.events.c.seq

        def run(connection: Connection) -> int:
            query = sa.select(sa.func.count()).where(seq > after, seq <= through)
            return int(connection.execute(query).scalar() or 0)

        return await self._runner.read(run)

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
        query = sa.select(schema.jobs).where(schema.jobs.c.tenant == tenant)
        if status is not None:
            query = query.where(schema.jobs.c.status == status)
        if pipeline is not None:
            query = query.where(schema.jobs.c.pipeline == pipeline)
        if project_id is not None:
            query = query.where(schema.jobs.c.project_id == project_id)
        if cursor is not None:
            query = query.where(schema.jobs.c.id < cursor)
        query = query.order_by(schema.jobs.c.id.desc()).limit(limit + 1)

        def run(connection: Connection) -> JobPage:
            found = connection.execute(query).mappings().all()
            jobs = [rows.job_from_row(row) for row in found[:limit]]
            _attach_details(connection, jobs)
            return JobPage(jobs, jobs[-1].id if len(found) > limit else None)

        return await self._runner.read(run)

    async def events_after(
        self, job_id: str, after_seq: int | None = None, limit: int = 1000
    ) -> list[Event]:
        events = schema.events
        query = sa.select(events.c.seq, events.c.tenant, events.c.type, events.c.payload).where(
            events.c.job_id == job_id
        )
        if after_seq is not None:
            query = query.where(events.c.seq > after_seq)
        query = query.order_by(events.c.seq).limit(limit)

        def run(connection: Connection) -> list[Event]:
            return [
                Event(
                    seq=int(seq),
                    tenant=tenant,
                    job_id=job_id,
                    type=EventType(kind),
                    payload=orjson.loads(payload),
                )
                for seq, tenant, kind, payload in connection.execute(query)
            ]

        return await self._runner.read(run)

    async def entries_after(self, scope: Scope, after_seq: int, limit: int = 500) -> list[LogEntry]:
        """The events of `scope` after `after_seq`, oldest first, as stored (not decoded)."""
        events = schema.events
        column = {
            ScopeKind.JOB: events.c.job_id,
            ScopeKind.TENANT: events.c.tenant,
            ScopeKind.PROJECT: events.c.project_id,
        }[scope.kind]
        query = (
            sa.select(events.c.seq, events.c.type, events.c.job_id, events.c.payload)
            .where(column == scope.key, events.c.seq > after_seq)
            .order_by(events.c.seq)
            .limit(limit)
        )

        def run(connection: Connection) -> list[LogEntry]:
            return [
                LogEntry(int(seq), EventType(kind), job_id, payload)
                for seq, kind, job_id, payload in connection.execute(query)
            ]

        return await self._runner.read(run)

    async def last_seq(self) -> int:
        """The newest committed event id (0 for an empty log).

        Ids are committed in order (see `WriteTx`), so every event committed later
        has a larger id: a reader that starts here misses nothing that follows.
        """

        def run(connection: Connection) -> int:
            return int(
                connection.execute(sa.select(sa.func.max(schema.events.c.seq))).scalar() or 0
            )

        return await self._runner.read(run)

    async def get_artifact(self, artifact_id: str, tenant: str | None = None) -> Artifact | None:
        query = sa.select(schema.artifacts).where(schema.artifacts.c.id == artifact_id)
        if tenant is not None:
            query = query.where(schema.artifacts.c.tenant == tenant)

        def run(connection: Connection) -> Artifact | None:
            row = connection.execute(query).mappings().first()
            return rows.artifact_from_row(row) if row else None

        return await self._runner.read(run)

    async def count_by_status(self) -> dict[str, int]:
        query = sa.select(schema.jobs.c.status, sa.func.count()).group_by(schema.jobs.c.status)

        def run(connection: Connection) -> dict[str, int]:
            return {status: int(count) for status, count in connection.execute(query)}

        return await self._runner.read(run)


def _attach_details(connection: Connection, jobs: list[Job]) -> None:
    """Fill in artifacts and, for queued jobs, the queue position."""
    if not jobs:
        return
    found = connection.execute(
        sa.select(schema.artifacts)
        .where(schema.artifacts.c.job_id.in_([job.id for job in jobs]))
        .order_by(schema.artifacts.c.created_at, schema.artifacts.c.id)
    ).mappings()
    attempts = {job.id: job.attempt for job in jobs}
    by_job: dict[str, list[Artifact]] = {}
    for row in found:
        if row["attempt"] == attempts[row["job_id"]]:
            by_job.setdefault(row["job_id"], []).append(rows.artifact_from_row(row))
    for job in jobs:
        job.artifacts = by_job.get(job.id, [])
        if job.status is JobStatus.QUEUED:
            job.queue_position = int(
                connection.execute(
                    rows.JOBS_AHEAD, {"job_id": job.id, "tenant": job.tenant}
                ).scalar_one()
            )
