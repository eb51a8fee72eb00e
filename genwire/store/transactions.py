"""One write transaction: what the service may do to jobs and the log.

It is plain synchronous code on one connection. The store runs the whole
transaction as one call — on SQLite in its writer thread, on PostgreSQL in a
greenlet over asyncpg — so a transaction costs one hand-off, not one per statement.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, Protocol

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from genwire.models import (
    Artifact,
    Event,
    EventType,
    Job,
    JobProgress,
    JobStatus,
    JsonObject,
    Project,
    format_time,
    utc_now,
)
from genwire.store import projects, rows, schema

#: Keys of PostgreSQL advisory locks (any constants).
WRITE_LOCK_KEY = 0x67656E77
MIGRATE_LOCK_KEY = 0x67656E78


def on_sqlite_driver(
    driver: sqlite3.Connection, sql: str, params: Mapping[str, Any] | tuple[()] = ()
) -> sqlite3.Cursor:
    """Run `sql` on SQLite's driver itself; its errors become SQLAlchemy's, as every
    other store error is (the worker retries those)."""
    try:
        return driver.execute(sql, params)
    except sqlite3.Error as error:
        raise DBAPIError.instance(sql, params, error, sqlite3.Error) from error


class EventOwner(Protocol):
    """A job as an event of its own needs it (a `Job` or a `JobProgress`)."""

    id: str
    tenant: str
    project_id: str | None
    webhook: JsonObject | None
    last_event_seq: int


class WriteTx:
    def __init__(self, connection: Connection, is_postgres: bool) -> None:
        self._connection = connection
        #: On SQLite, the driver's own connection, in the same transaction: the
        #: statements of every event run on it (see `rows.sqlite_text`).
        self._driver: sqlite3.Connection | None = (
            None if is_postgres else connection.connection.driver_connection
        )
        if is_postgres:
            # First thing, before any row lock: every writer takes this one lock in
            # the same order, so no two can deadlock, and ids are allocated and
            # committed in one order, so no reader's cursor can pass an id whose
            # transaction has not committed yet (SPEC §4.8). It also serialises
            # check-then-insert of idempotency keys.
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK_KEY}
            )
        self.appended: list[Event] = []
        #: the payload of each appended event as stored, as JSON text
        self.appended_payloads: list[str] = []
        #: appended events whose job or project has a webhook, with that webhook
        self.webhook_targets: list[tuple[Event, JsonObject]] = []
        #: bus topics to wake after commit, besides those of the appended events
        self.extra_topics: list[str] = []

    def insert_job(self, job: Job) -> None:
        self._connection.execute(sa.insert(schema.jobs).values(**rows.job_values(job)))

    def lock_job(self, job_id: str, tenant: str | None = None) -> Job | None:
        if tenant is None:
            result = self._connection.execute(rows.LOCK_JOB, {"job_id": job_id})
        else:
            result = self._connection.execute(
                rows.LOCK_TENANT_JOB, {"job_id": job_id, "tenant": tenant}
            )
        row = result.mappings().first()
        return rows.job_from_row(row) if row else None

    def lock_progress(self, job_id: str) -> JobProgress | None:
        """The part of a job's snapshot that a progress report changes, locked."""
        params = {"job_id": job_id}
        if self._driver is not None:
            row = on_sqlite_driver(self._driver, rows.SQLITE_LOCK_PROGRESS, params).fetchone()
        else:
            row = self._connection.execute(rows.LOCK_PROGRESS, params).first()
        return (
            rows.progress_from_row(row, webhook_is_text=self._driver is not None) if row else None
        )

    def save_progress(self, job: JobProgress) -> None:
        params = rows.save_progress_params(job)
        if self._driver is not None:
            on_sqlite_driver(self._driver, rows.SQLITE_SAVE_PROGRESS, params)
        else:
            self._connection.execute(rows.SAVE_PROGRESS, params)

    def claim_queued(
        self, pipelines: Collection[str], max_running_per_tenant: int | None = None
    ) -> Job | None:
        """Lock the next queued job of one of `pipelines` to run, fairly across tenants.

        The oldest queued job of the tenant with the fewest running jobs (ties: the
        tenant whose oldest queued job is oldest), so one tenant's thousand jobs do not
        hold back another's one (SPEC §3). A tenant with `max_running_per_tenant`
        jobs running, counted across every worker, is skipped. A worker claims only
        what it can run: during a rolling deploy an older worker leaves a newer
        pipeline's jobs to the workers that have it.
        """
        params: dict[str, Any] = {"pipelines": list(pipelines)}
        if max_running_per_tenant is None:
            query = FAIR_CLAIM
        else:
            query = FAIR_CLAIM_CAPPED
            params["max_running"] = max_running_per_tenant
        row = self._connection.execute(query, params).mappings().first()
        return rows.job_from_row(row) if row else None

    def lock_expired(self, now: datetime) -> list[Job]:
        return self._lock_running(schema.jobs.c.lease_expires_at < now)

    def lock_running(self) -> list[Job]:
        return self._lock_running(sa.true())

    def _lock_running(self, condition: sa.ColumnElement[bool]) -> list[Job]:
        query = (
            sa.select(schema.jobs)
            .where(schema.jobs.c.status == JobStatus.RUNNING.value, condition)
            .order_by(schema.jobs.c.id)
            .with_for_update(skip_locked=True)
        )
        return [rows.job_from_row(row) for row in self._connection.execute(query).mappings()]

    def append_event(self, job: EventOwner, event_type: EventType, fields: JsonObject) -> Event:
        """Append one event of `job` to the log and advance `job.last_event_seq`."""
        event = self._append(job.tenant, job.id, job.project_id, event_type, fields, job.webhook)
        job.last_event_seq = event.seq
        return event

    def append_project_event(
        self, project: Project, event_type: EventType, fields: JsonObject
    ) -> Event:
        """Append one event of a project itself (no job) and advance its last_event_seq."""
        event = self._append(project.tenant, None, project.id, event_type, fields, project.webhook)
        project.last_event_seq = event.seq
        return event

    def _append(
        self,
        tenant: str,
        job_id: str | None,
        project_id: str | None,
        event_type: EventType,
        fields: JsonObject,
        webhook: JsonObject | None,
    ) -> Event:
        payload: JsonObject = {"type": event_type.value}
        if job_id is not None:
            payload["job_id"] = job_id
        if project_id is not None and job_id is None:
            payload["project_id"] = project_id
        payload["ts"] = format_time(utc_now())
        payload.update(fields)
        stored = orjson.dumps(payload).decode()
        params = {
            "tenant": tenant,
            "job_id": job_id,
            "project_id": project_id,
            "type": event_type.value,
            "payload": stored,
        }
        if self._driver is not None:
            (seq,) = on_sqlite_driver(self._driver, rows.SQLITE_INSERT_EVENT, params).fetchone()
        else:
            seq = self._connection.execute(rows.INSERT_EVENT, params).scalar_one()
        event = Event(
            seq=int(seq),
            tenant=tenant,
            job_id=job_id,
            type=event_type,
            payload=payload,
            project_id=project_id,
        )
        self.appended.append(event)
        self.appended_payloads.append(stored)
        if webhook:
            self.webhook_targets.append((event, webhook))
        return event

    def save_job(self, job: Job) -> None:
        """Write back every mutable field of a locked job."""
        self._connection.execute(rows.SAVE_JOB, rows.save_job_params(job))

    def artifacts_of(self, job: Job) -> list[Artifact]:
        """The files of the job's current attempt."""
        result = self._connection.execute(
            rows.ARTIFACTS_OF, {"job_id": job.id, "attempt": job.attempt}
        )
        return [rows.artifact_from_row(row) for row in result.mappings()]

    def queue_position(self, job: Job) -> int:
        """How many queued jobs will be claimed before this one."""
        return int(
            self._connection.execute(
                rows.JOBS_AHEAD, {"job_id": job.id, "tenant": job.tenant}
            ).scalar_one()
        )

    def queued_of_tenant(self, tenant: str, bound: int) -> int:
        """How many jobs of `tenant` are queued, counting no further than `bound`."""
        params = {"tenant": tenant, "bound": bound}
        return int(self._connection.execute(rows.QUEUED_OF_TENANT, params).scalar_one())

    def insert_artifact(self, artifact: Artifact, job: Job) -> None:
        self._connection.execute(
            sa.insert(schema.artifacts).values(
                id=artifact.id,
                job_id=artifact.job_id,
                attempt=job.attempt,
                tenant=job.tenant,
                name=artifact.name,
                type=artifact.type,
                size_bytes=artifact.size_bytes,
                sha256=artifact.sha256,
                path=artifact.path,
                created_at=utc_now(),
            )
        )

    def find_idempotent(self, tenant: str, key: str) -> tuple[str, str] | None:
        """(request_hash, job_id) stored under an idempotency key, if any.

        Write transactions are serialised (see `__init__`), so no concurrent create
        can insert the same key between this look-up and the insert.
        """
        table = schema.idempotency_keys
        row = self._connection.execute(
            sa.select(table.c.request_hash, table.c.job_id).where(
                table.c.tenant == tenant, table.c.key == key
            )
        ).first()
        return (row[0], row[1]) if row else None

    def remember_idempotent(self, tenant: str, key: str, request_hash: str, job_id: str) -> None:
        self._connection.execute(
            sa.insert(schema.idempotency_keys).values(
                tenant=tenant,
                key=key,
                request_hash=request_hash,
                job_id=job_id,
                created_at=utc_now(),
            )
        )

    # -- projects: a clip is a job whose project_id names the project ---------------

    def insert_project(self, project: Project) -> None:
        projects.insert_project(self._connection, project)

    def lock_project(self, project_id: str, tenant: str) -> Project | None:
        return projects.find_project(self._connection, project_id, tenant, lock=True)

    def save_project(self, project: Project) -> None:
        projects.save_project(self._connection, project)

    def clip_counts(self, project: Project) -> dict[JobStatus, int]:
        return projects.clip_counts(self._connection, project)

    def clips_of(self, project: Project) -> list[Job]:
        return projects.clips_of(self._connection, project)


def _fair_claims() -> tuple[sa.Select[Any], sa.Select[Any]]:
    """The claim of `WriteTx.claim_queued`, without and with the running cap: a few
    index probes per tenant with queued jobs (on `ix_jobs_status_tenant_id`), never
    a scan of the queue. Built once, so SQLAlchemy compiles it once."""
    jobs = schema.jobs
    queued = JobStatus.QUEUED.value
    # Every tenant with a queued job, one probe each (a loose index scan, which
    # neither SQLite nor PostgreSQL does by itself for a DISTINCT).
    first = sa.select(sa.func.min(jobs.c.tenant).label("tenant")).where(jobs.c.status == queued)
    tenants = first.cte("queued_tenants", recursive=True)
    later = jobs.alias("later")
    next_tenant = (
        sa.select(sa.func.min(later.c.tenant))
        .where(later.c.status == queued, later.c.tenant > tenants.c.tenant)
        .scalar_subquery()
    )
    tenants = tenants.union_all(sa.select(next_tenant).where(tenants.c.tenant.is_not(None)))
    oldest = jobs.alias("oldest")
    running = jobs.alias("running")
    heads = (
        sa.select(
            sa.select(oldest.c.id)
            .where(
                oldest.c.status == queued,
                oldest.c.tenant == tenants.c.tenant,
                oldest.c.pipeline.in_(sa.bindparam("pipelines", expanding=True)),
            )
            .order_by(oldest.c.id)
            .limit(1)
            .scalar_subquery()
            .label("job_id"),
            sa.select(sa.func.count())
            .select_from(running)
            .where(
                running.c.status == JobStatus.RUNNING.value,
                running.c.tenant == tenants.c.tenant,
            )
            .scalar_subquery()
            .label("running"),
        )
        .where(tenants.c.tenant.is_not(None))
        .subquery("heads")
    )
    query = (
        sa.select(jobs)
        .join(heads, jobs.c.id == heads.c.job_id)
        .where(jobs.c.status == queued)
        .order_by(heads.c.running, heads.c.job_id)
        .limit(1)
        # Writers are serialised already (the advisory lock of `WriteTx`); SKIP
        # LOCKED keeps a claim from waiting on a row that something else holds.
        .with_for_update(of=jobs, skip_locked=True)
    )
    return query, query.where(heads.c.running < sa.bindparam("max_running"))


FAIR_CLAIM, FAIR_CLAIM_CAPPED = _fair_claims()
