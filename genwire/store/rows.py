"""Rows to models and back, and the statements of the hot paths, built once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import RowMapping

from genwire.models import Artifact, Job, JobError, JobProgress, JobStatus
from genwire.store import schema

jobs = schema.jobs
artifacts = schema.artifacts

#: Columns a transition may change; the rest are fixed when the job is created.
MUTABLE_JOB_COLUMNS = tuple(
    column
    for column in jobs.c
    if column.name not in {"id", "tenant", "pipeline", "created_at", "input", "project_id"}
)

# Built once: building a 20-column UPDATE per event costs more than running it.
SAVE_JOB = (
    sa.update(jobs)
    .where(jobs.c.id == sa.bindparam("job_id"))
    .values(
        {
            column: sa.bindparam(f"v_{column.name}", type_=column.type)
            for column in MUTABLE_JOB_COLUMNS
        }
    )
)
INSERT_EVENT = (
    sa.insert(schema.events)
    .values(
        {
            name: sa.bindparam(name, type_=schema.events.c[name].type)
            for name in ("tenant", "job_id", "project_id", "type", "payload")
        }
    )
    .returning(schema.events.c.seq)
)
LOCK_JOB = sa.select(jobs).where(jobs.c.id == sa.bindparam("job_id")).with_for_update()
LOCK_TENANT_JOB = LOCK_JOB.where(jobs.c.tenant == sa.bindparam("tenant"))
#: What a progress report reads and writes (`JobProgress`), in that order.
PROGRESS_COLUMNS = (
    jobs.c.id,
    jobs.c.tenant,
    jobs.c.project_id,
    jobs.c.webhook,
    jobs.c.status,
    jobs.c.lease_owner,
    jobs.c.phase,
    jobs.c.progress,
    jobs.c.message,
    jobs.c.last_event_seq,
)
LOCK_PROGRESS = (
    sa.select(*PROGRESS_COLUMNS).where(jobs.c.id == sa.bindparam("job_id")).with_for_update()
)
SAVE_PROGRESS = (
    sa.update(jobs)
    .where(jobs.c.id == sa.bindparam("job_id"))
    .values(
        {
            name: sa.bindparam(f"v_{name}", type_=jobs.c[name].type)
            for name in ("phase", "progress", "message", "last_event_seq")
        }
    )
)
_QUEUED = jobs.c.status == JobStatus.QUEUED.value
#: Every queued job with its place in its tenant's queue (1: the oldest): the round
#: of fair claiming it is taken in (an index scan of ix_jobs_status_tenant_id).
_QUEUED_ROUNDS = (
    sa.select(
        jobs.c.id,
        sa.func.row_number().over(partition_by=jobs.c.tenant, order_by=jobs.c.id).label("round"),
    )
    .where(_QUEUED)
    .subquery()
)
#: The round a queued job of `tenant` is taken in.
_ROUND_OF_JOB = (
    sa.select(sa.func.count() + 1)
    .where(_QUEUED, jobs.c.tenant == sa.bindparam("tenant"), jobs.c.id < sa.bindparam("job_id"))
    .scalar_subquery()
)
#: Queued jobs claimed before a queued job, as fair claiming takes them with no job
#: running: every job of an earlier round, and of its own round the older ones (the
#: tenant whose oldest queued job is oldest goes first). Running jobs and per-tenant
#: caps can change the order; this is the estimate shown as `queue_position`.
JOBS_AHEAD = (
    sa.select(sa.func.count())
    .select_from(_QUEUED_ROUNDS)
    .where(
        sa.or_(
            _QUEUED_ROUNDS.c.round < _ROUND_OF_JOB,
            sa.and_(
                _QUEUED_ROUNDS.c.round == _ROUND_OF_JOB,
                _QUEUED_ROUNDS.c.id < sa.bindparam("job_id"),
            ),
        )
    )
)
#: Queued jobs of a tenant, counted up to a bound (an index range: ix_jobs_status_tenant_id).
QUEUED_OF_TENANT = sa.select(sa.func.count()).select_from(
    sa.select(jobs.c.id)
    .where(jobs.c.status == JobStatus.QUEUED.value, jobs.c.tenant == sa.bindparam("tenant"))
    .limit(sa.bindparam("bound"))
    .subquery()
)
ARTIFACTS_OF = (
    sa.select(artifacts)
    .where(
        artifacts.c.job_id == sa.bindparam("job_id"), artifacts.c.attempt == sa.bindparam("attempt")
    )
    .order_by(artifacts.c.created_at, artifacts.c.id)
)


def sqlite_text(statement: sa.ClauseElement) -> str:
    """`statement` as SQLite's own SQL with named parameters, for the driver itself.

    On SQLite the statements of every event (`WriteTx`) run on the driver's
    connection inside SQLAlchemy's transaction: SQLAlchemy's execution costs about
    40 µs a statement, ten times SQLite's own work, and three of them were most of
    what an event cost the writer thread. Compiled from the statements above, so
    the two dialects run the same SQL.
    """
    return str(statement.compile(dialect=sqlite.dialect(paramstyle="named")))


SQLITE_INSERT_EVENT = sqlite_text(INSERT_EVENT)
SQLITE_LOCK_PROGRESS = sqlite_text(LOCK_PROGRESS)
SQLITE_SAVE_PROGRESS = sqlite_text(SAVE_PROGRESS)


def progress_from_row(row: Sequence[Any], webhook_is_text: bool) -> JobProgress:
    """A `LOCK_PROGRESS` row; on the SQLite driver the webhook is still JSON text."""
    job_id, tenant, project_id, webhook, status, lease_owner, phase, progress, message, seq = row
    if webhook_is_text and webhook is not None:
        webhook = orjson.loads(webhook)
    return JobProgress(
        id=job_id,
        tenant=tenant,
        project_id=project_id,
        webhook=webhook,
        status=JobStatus(status),
        lease_owner=lease_owner,
        phase=phase,
        progress=float(progress),
        message=message,
        last_event_seq=int(seq),
    )


def save_progress_params(job: JobProgress) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "v_phase": job.phase,
        "v_progress": job.progress,
        "v_message": job.message,
        "v_last_event_seq": job.last_event_seq,
    }


def job_values(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "tenant": job.tenant,
        "pipeline": job.pipeline,
        "status": job.status.value,
        "phase": job.phase,
        "progress": job.progress,
        "message": job.message,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "cancel_requested": job.cancel_requested,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "input": job.input,
        "metadata": job.metadata,
        "project_id": job.project_id,
        "webhook": job.webhook,
        "error": job.error.to_json() if job.error else None,
        "output": job.output,
        "last_event_seq": job.last_event_seq,
        "lease_owner": job.lease_owner,
        "lease_expires_at": job.lease_expires_at,
    }


def save_job_params(job: Job) -> dict[str, Any]:
    values = job_values(job)
    params = {f"v_{column.name}": values[column.name] for column in MUTABLE_JOB_COLUMNS}
    params["job_id"] = job.id
    return params


def job_from_row(row: RowMapping) -> Job:
    error = row["error"]
    return Job(
        id=row["id"],
        tenant=row["tenant"],
        pipeline=row["pipeline"],
        status=JobStatus(row["status"]),
        phase=row["phase"],
        progress=float(row["progress"]),
        message=row["message"],
        attempt=int(row["attempt"]),
        max_attempts=int(row["max_attempts"]),
        cancel_requested=bool(row["cancel_requested"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        input=row["input"],
        metadata=row["metadata"],
        project_id=row["project_id"],
        webhook=row["webhook"],
        error=JobError(**error) if error else None,
        output=row["output"],
        last_event_seq=int(row["last_event_seq"]),
        lease_owner=row["lease_owner"],
        lease_expires_at=row["lease_expires_at"],
    )


def artifact_from_row(row: RowMapping) -> Artifact:
    return Artifact(
        id=row["id"],
        job_id=row["job_id"],
        name=row["name"],
        type=row["type"],
        size_bytes=int(row["size_bytes"]),
        sha256=row["sha256"],
        path=row["path"],
    )
