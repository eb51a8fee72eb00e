"""The moves of a job's state machine, each inside a write transaction.

Plain synchronous functions of a `WriteTx`: the store runs a whole transaction as
one call. Every move appends its event and saves the snapshot together.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import TypeVar

from genwire.errors import IdempotencyMismatch, LeaseLost
from genwire.models import (
    ErrorCode,
    EventType,
    Job,
    JobError,
    JobProgress,
    JobStatus,
    JsonObject,
)
from genwire.store import WriteTx
from genwire.transitions.projects import clip_ended


class RequeueReason(enum.StrEnum):
    """Why a running job went back to the queue: the `reason.code` of the job-status
    event that requeues it (its `reason.message` says the same in words)."""

    SERVER_RESTARTED = "server_restarted"  #: the server died while it ran; its restart requeued it
    WORKER_LOST = "worker_lost"  #: its worker stopped renewing the lease (crashed, cut off)
    RELEASED = "released"  #: its worker gave it back (shutting down, its store failing)


def lease_of(worker_id: str, attempt: int) -> str:
    """The lease of one attempt. It names the attempt, not only the worker: a worker
    that runs a job again after it was requeued must not let the first run write."""
    return f"{worker_id}#{attempt}"


def owned(tx: WriteTx, job_id: str, lease: str) -> Job:
    """The running job whose current lease is `lease`; LeaseLost otherwise."""
    return _held(tx.lock_job(job_id), job_id, lease)


def owned_progress(tx: WriteTx, job_id: str, lease: str) -> JobProgress:
    """`owned`, for a progress report: only what it changes of the snapshot."""
    return _held(tx.lock_progress(job_id), job_id, lease)


_Locked = TypeVar("_Locked", Job, JobProgress)


def _held(job: _Locked | None, job_id: str, lease: str) -> _Locked:
    if job is None or job.status is not JobStatus.RUNNING or job.lease_owner != lease:
        raise LeaseLost(f"lease {lease} no longer holds job {job_id}")
    return job


def replay_of(tx: WriteTx, tenant: str, key: str | None, fingerprint: str) -> str | None:
    """The job an Idempotency-Key already made, if any; a mismatch if the key came
    with another request."""
    if key is None:
        return None
    existing = tx.find_idempotent(tenant, key)
    if existing is None:
        return None
    stored_fingerprint, job_id = existing
    if stored_fingerprint != fingerprint:
        raise IdempotencyMismatch("this Idempotency-Key was used with a different request body")
    return job_id


def append_status(tx: WriteTx, job: Job, extra: JsonObject | None = None) -> int | None:
    """A job-status event, with the queue position while queued (and `extra`'s
    fields), and the snapshot.

    Returns the queue position (None unless queued)."""
    fields: JsonObject = {
        "status": job.status.value,
        "phase": job.phase,
        "progress": round(job.progress, 2),
        "message": job.message,
        "attempt": job.attempt,
        **(extra or {}),
    }
    position = tx.queue_position(job) if job.status is JobStatus.QUEUED else None
    if position is not None:
        fields["queue_position"] = position
    if job.cancel_requested:
        fields["cancel_requested"] = True
    tx.append_event(job, EventType.JOB_STATUS, fields)
    tx.save_job(job)
    return position


def start(tx: WriteTx, job: Job, worker_id: str, lease_ttl: float, now: datetime) -> None:
    job.status = JobStatus.RUNNING
    job.lease_owner = lease_of(worker_id, job.attempt)
    job.lease_expires_at = now + timedelta(seconds=lease_ttl)
    job.started_at = now
    job.message = "running"
    append_status(tx, job)


def retry_or_fail(tx: WriteTx, job: Job, code: RequeueReason, reason: str, now: datetime) -> None:
    """A running job lost its run: queue it again, or fail it once out of attempts.

    The job-status event that requeues it carries, beside SPEC §4's fields,
    `reason: {code, message}` (why the last attempt ended: a `RequeueReason`, and
    `reason` in words) and `max_attempts` (the attempts it may have), so that a
    client can say "attempt 2 of 3: the server restarted"; the snapshot has neither.
    """
    if job.cancel_requested:
        end(tx, job, JobStatus.CANCELLED, f"cancelled ({reason})", now)
        return
    if job.attempt >= job.max_attempts:
        job.error = JobError(
            ErrorCode.WORKER_LOST,
            f"gave up after {job.attempt} attempts; the last one ended because {reason}",
            retryable=True,
        )
        end(tx, job, JobStatus.FAILED, job.error.message, now)
        return
    job.attempt += 1
    job.status = JobStatus.QUEUED
    job.phase = None
    job.progress = 0.0
    job.lease_owner = None
    job.lease_expires_at = None
    job.message = f"requeued because {reason} (attempt {job.attempt} of {job.max_attempts})"
    append_status(
        tx,
        job,
        {"reason": {"code": code.value, "message": reason}, "max_attempts": job.max_attempts},
    )


def end(tx: WriteTx, job: Job, status: JobStatus, message: str, now: datetime) -> None:
    """Move a job to its one terminal status with its one terminal event, its last."""
    job.status = status
    job.message = message
    job.finished_at = now
    job.lease_owner = None
    job.lease_expires_at = None
    if status is JobStatus.SUCCEEDED:
        job.progress = 100.0
        started = job.started_at or now
        tx.append_event(
            job,
            EventType.JOB_COMPLETED,
            {
                "status": status.value,
                "artifacts": [artifact.to_json() for artifact in tx.artifacts_of(job)],
                "output": job.output,
                "duration_s": round((now - started).total_seconds(), 3),
            },
        )
    elif status is JobStatus.FAILED:
        assert job.error is not None
        tx.append_event(
            job, EventType.JOB_FAILED, {"status": status.value, "error": job.error.to_json()}
        )
    else:
        tx.append_event(job, EventType.JOB_CANCELLED, {"status": status.value})
    tx.save_job(job)
    clip_ended(tx, job, now)
