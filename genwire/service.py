"""The one place that changes a job: every change appends its event in the same
transaction that updates the snapshot, and the bus is told only after the commit
(SPEC §4: "written to a durable log before anyone is told of it").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from genwire.bus import Bus, topics
from genwire.errors import (
    Conflict,
    FieldError,
    IdempotencyMismatch,
    InvalidInput,
    LeaseLost,
    NotFound,
)
from genwire.ids import new_id
from genwire.models import (
    Artifact,
    ErrorCode,
    Event,
    EventType,
    Job,
    JobError,
    JobStatus,
    JsonObject,
    StepState,
    utc_now,
)
from genwire.pipelines.base import PipelineRegistry
from genwire.storage import LocalStorage
from genwire.store import JobPage, Store, WriteTx, request_fingerprint

DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class CreateJob:
    """A validated-shape create request (SPEC §3 `POST /jobs`)."""

    pipeline: str
    input: JsonObject
    project_id: str | None = None
    webhook: JsonObject | None = None
    metadata: JsonObject | None = None

    def fingerprint(self) -> str:
        return request_fingerprint(
            {
                "pipeline": self.pipeline,
                "input": self.input,
                "project_id": self.project_id,
                "webhook": self.webhook,
                "metadata": self.metadata,
            }
        )


class JobService:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        registry: PipelineRegistry,
        storage: LocalStorage,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self.store = store
        self.bus = bus
        self.registry = registry
        self.storage = storage
        self.max_attempts = max_attempts

    @asynccontextmanager
    async def _changing(self) -> AsyncIterator[WriteTx]:
        """A write transaction whose appended events are announced after it commits."""
        async with self.store.write() as tx:
            yield tx
        await self.bus.publish(_topics_for(tx.appended) + tx.extra_topics)

    # -- the API side ---------------------------------------------------------------

    async def create_job(
        self, tenant: str, request: CreateJob, idempotency_key: str | None = None
    ) -> tuple[Job, bool]:
        """Queue a job; returns it and whether it was created (False: an idempotent replay)."""
        normalized = self._validate_input(request.pipeline, request.input)
        fingerprint = request.fingerprint()
        async with self._changing() as tx:
            if idempotency_key is not None:
                existing = await tx.find_idempotent(tenant, idempotency_key)
                if existing is not None:
                    stored_fingerprint, job_id = existing
                    if stored_fingerprint != fingerprint:
                        raise IdempotencyMismatch(
                            "this Idempotency-Key was used with a different request body"
                        )
                    created = False
                else:
                    job_id = ""
                    created = True
            else:
                created = True
                job_id = ""
            if created:
                job = Job(
                    id=new_id("job"),
                    tenant=tenant,
                    pipeline=request.pipeline,
                    status=JobStatus.QUEUED,
                    phase=None,
                    progress=0.0,
                    message="queued",
                    attempt=1,
                    max_attempts=self.max_attempts,
                    cancel_requested=False,
                    created_at=utc_now(),
                    started_at=None,
                    finished_at=None,
                    input=normalized,
                    metadata=request.metadata or {},
                    project_id=request.project_id,
                    error=None,
                    output=None,
                    last_event_seq=0,
                    webhook=request.webhook,
                )
                await tx.insert_job(job)
                await _append_status(tx, job)
                await tx.save_job(job)
                if idempotency_key is not None:
                    await tx.remember_idempotent(tenant, idempotency_key, fingerprint, job.id)
                job_id = job.id
        snapshot = await self.get_job(job_id, tenant)
        return snapshot, created

    def _validate_input(self, pipeline_name: str, raw: JsonObject) -> JsonObject:
        pipeline = self.registry.get(pipeline_name)
        if pipeline is None:
            known = ", ".join(item.name for item in self.registry)
            raise InvalidInput(
                f"unknown pipeline {pipeline_name!r}",
                [FieldError("pipeline", f"unknown pipeline; known: {known}")],
            )
        try:
            validated = pipeline.input_model.model_validate(raw)
        except ValidationError as error:
            problems = [
                FieldError(".".join(["input", *(str(part) for part in item["loc"])]), item["msg"])
                for item in error.errors()
            ]
            raise InvalidInput(
                f"input does not match the schema of {pipeline_name}", problems
            ) from None
        return validated.model_dump(mode="json")

    async def get_job(self, job_id: str, tenant: str | None = None) -> Job:
        job = await self.store.get_job(job_id, tenant)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return job

    async def list_jobs(self, tenant: str, **filters: Any) -> JobPage:
        return await self.store.list_jobs(tenant, **filters)

    async def request_cancel(self, job_id: str, tenant: str | None = None) -> Job:
        """Queued: cancelled at once. Running: flagged, and its worker stops it.

        Idempotent while the job runs; an ended job is a Conflict.
        """
        async with self._changing() as tx:
            job = await tx.lock_job(job_id, tenant)
            if job is None:
                raise NotFound(f"no job {job_id!r}")
            if job.status.is_terminal:
                raise Conflict(f"job {job_id} already ended {job.status.value}")
            if job.status is JobStatus.QUEUED:
                await self._end(tx, job, JobStatus.CANCELLED, "cancelled before it started")
            elif not job.cancel_requested:
                job.cancel_requested = True
                job.message = "cancelling"
                await _append_status(tx, job)
                await tx.save_job(job)
                tx.extra_topics.append(topics.cancel(job.id))
        return await self.get_job(job_id, tenant)

    async def wait_until_ended(self, job_id: str, timeout: float) -> Job:
        """The job when it ends or when `timeout` passes, whichever is first."""
        deadline = asyncio.get_running_loop().time() + timeout
        with self.bus.subscribe(topics.job(job_id)) as subscription:
            while True:
                job = await self.get_job(job_id)
                remaining = deadline - asyncio.get_running_loop().time()
                if job.status.is_terminal or remaining <= 0:
                    return job
                await subscription.wait(remaining)

    # -- the worker side ------------------------------------------------------------

    async def claim_next_job(self, worker_id: str, lease_ttl: float) -> Job | None:
        async with self._changing() as tx:
            job = await tx.claim_queued()
            if job is None:
                return None
            now = utc_now()
            job.status = JobStatus.RUNNING
            job.lease_owner = worker_id
            job.lease_expires_at = now + timedelta(seconds=lease_ttl)
            job.started_at = now
            job.message = "running"
            await _append_status(tx, job)
            await tx.save_job(job)
        return job

    async def renew_lease(self, job_id: str, worker_id: str, lease_ttl: float) -> bool:
        """Extend the lease; returns whether cancel was requested. Raises LeaseLost."""
        async with self.store.write() as tx:
            job = await _owned(tx, job_id, worker_id)
            job.lease_expires_at = utc_now() + timedelta(seconds=lease_ttl)
            await tx.save_job(job)
            return job.cancel_requested

    def reporter(self, job_id: str, worker_id: str) -> AttemptReporter:
        return AttemptReporter(self, job_id, worker_id)

    async def complete_job(self, job_id: str, worker_id: str, output: JsonObject) -> Job:
        async with self._changing() as tx:
            job = await _owned(tx, job_id, worker_id)
            job.progress = 100.0
            job.output = output
            await self._end(tx, job, JobStatus.SUCCEEDED, "succeeded")
        return job

    async def fail_job(self, job_id: str, worker_id: str, error: JobError) -> Job:
        async with self._changing() as tx:
            job = await _owned(tx, job_id, worker_id)
            job.error = error
            await self._end(tx, job, JobStatus.FAILED, error.message)
        return job

    async def cancel_running_job(self, job_id: str, worker_id: str) -> Job:
        async with self._changing() as tx:
            job = await _owned(tx, job_id, worker_id)
            await self._end(tx, job, JobStatus.CANCELLED, "cancelled")
        return job

    async def release_job(self, job_id: str, worker_id: str, reason: str) -> None:
        """Give a running job back to the queue (graceful shutdown); counts as an attempt."""
        async with self._changing() as tx:
            job = await _owned(tx, job_id, worker_id)
            await self._retry_or_fail(tx, job, reason)

    async def recover_expired_leases(self, now: datetime | None = None) -> list[str]:
        """Requeue (or fail, out of attempts) running jobs whose worker stopped renewing."""
        async with self._changing() as tx:
            orphans = await tx.lock_expired(now or utc_now())
            for job in orphans:
                await self._retry_or_fail(tx, job, "its worker stopped responding")
        return [job.id for job in orphans]

    async def recover_all_running(self) -> list[str]:
        """At start-up, when this process alone owns the database: every running job is orphaned."""
        async with self._changing() as tx:
            orphans = await tx.lock_running()
            for job in orphans:
                await self._retry_or_fail(tx, job, "the server stopped while it ran")
        return [job.id for job in orphans]

    # -- transitions ----------------------------------------------------------------

    async def _retry_or_fail(self, tx: WriteTx, job: Job, reason: str) -> None:
        if job.cancel_requested:
            await self._end(tx, job, JobStatus.CANCELLED, f"cancelled ({reason})")
            return
        if job.attempt >= job.max_attempts:
            job.error = JobError(
                ErrorCode.WORKER_LOST,
                f"gave up after {job.attempt} attempts; the last one ended because {reason}",
                retryable=True,
            )
            await self._end(tx, job, JobStatus.FAILED, job.error.message)
            return
        job.attempt += 1
        job.status = JobStatus.QUEUED
        job.phase = None
        job.progress = 0.0
        job.lease_owner = None
        job.lease_expires_at = None
        job.message = f"requeued because {reason} (attempt {job.attempt} of {job.max_attempts})"
        await _append_status(tx, job)
        await tx.save_job(job)

    async def _end(self, tx: WriteTx, job: Job, status: JobStatus, message: str) -> None:
        """Move a job to its one terminal status with its one terminal event."""
        job.status = status
        job.message = message
        job.finished_at = utc_now()
        job.lease_owner = None
        job.lease_expires_at = None
        if status is JobStatus.SUCCEEDED:
            started = job.started_at or job.finished_at
            await tx.append_event(
                job,
                EventType.JOB_COMPLETED,
                {
                    "status": status.value,
                    "artifacts": [a.to_json() for a in await tx.artifacts_of(job.id)],
                    "output": job.output,
                    "duration_s": round((job.finished_at - started).total_seconds(), 3),
                },
            )
        elif status is JobStatus.FAILED:
            assert job.error is not None
            await tx.append_event(
                job, EventType.JOB_FAILED, {"status": status.value, "error": job.error.to_json()}
            )
        else:
            await tx.append_event(job, EventType.JOB_CANCELLED, {"status": status.value})
        await tx.save_job(job)


class AttemptReporter:
    """The `JobReporter` of one attempt: every write is fenced by the lease.

    Writes are shielded: a pipeline cancelled mid-report still leaves its
    transaction committed or rolled back whole, never cut inside the driver.
    """

    def __init__(self, service: JobService, job_id: str, worker_id: str) -> None:
        self._service = service
        self._job_id = job_id
        self._worker_id = worker_id

    async def _append(
        self, event_type: EventType, fields: JsonObject, update: Callable[[Job], None]
    ) -> None:
        async with self._service._changing() as tx:
            job = await _owned(tx, self._job_id, self._worker_id)
            update(job)
            if event_type is EventType.STEP_STATUS or event_type is EventType.STEP_PROGRESS:
                fields["progress"] = round(job.progress, 2)
            await tx.append_event(job, event_type, fields)
            await tx.save_job(job)

    async def step_status(self, phase: str, state: StepState, progress: float) -> None:
        def update(job: Job) -> None:
            job.phase = phase
            job.progress = max(job.progress, progress)

        fields: JsonObject = {"phase": phase, "state": state.value}
        await asyncio.shield(self._append(EventType.STEP_STATUS, fields, update))

    async def step_progress(
        self,
        phase: str,
        progress: float,
        phase_progress: float,
        message: str | None,
        eta_s: float | None,
    ) -> None:
        def update(job: Job) -> None:
            job.phase = phase
            job.progress = max(job.progress, progress)
            if message is not None:
                job.message = message

        fields: JsonObject = {"phase": phase, "phase_progress": round(phase_progress, 2)}
        if message is not None:
            fields["message"] = message
        if eta_s is not None:
            fields["eta_s"] = eta_s
        await asyncio.shield(self._append(EventType.STEP_PROGRESS, fields, update))

    async def warning(self, message: str, code: str | None) -> None:
        fields: JsonObject = {"message": message}
        if code is not None:
            fields["code"] = code
        await asyncio.shield(self._append(EventType.WARNING, fields, lambda job: None))

    async def artifact(self, source: Path, name: str, media_type: str | None) -> Artifact:
        return await asyncio.shield(self._store_artifact(source, name, media_type))

    async def _store_artifact(self, source: Path, name: str, media_type: str | None) -> Artifact:
        artifact_id = new_id("art")
        stored = await asyncio.to_thread(
            self._service.storage.put, source, self._job_id, artifact_id, name, media_type
        )
        artifact = Artifact(
            id=artifact_id,
            job_id=self._job_id,
            name=name,
            type=stored.media_type,
            size_bytes=stored.size_bytes,
            sha256=stored.sha256,
            path=stored.path,
        )
        async with self._service._changing() as tx:
            job = await _owned(tx, self._job_id, self._worker_id)
            await tx.insert_artifact(artifact, job.tenant)
            await tx.append_event(job, EventType.ARTIFACT, {"artifact": artifact.to_json()})
            await tx.save_job(job)
        return artifact


async def _owned(tx: WriteTx, job_id: str, worker_id: str) -> Job:
    job = await tx.lock_job(job_id)
    if job is None or job.status is not JobStatus.RUNNING or job.lease_owner != worker_id:
        raise LeaseLost(f"worker {worker_id} no longer holds job {job_id}")
    return job


async def _append_status(tx: WriteTx, job: Job) -> None:
    """A job-status event, with the queue position while queued."""
    fields = _status_fields(job)
    if job.status is JobStatus.QUEUED:
        fields["queue_position"] = await tx.queue_position(job)
    await tx.append_event(job, EventType.JOB_STATUS, fields)


def _status_fields(job: Job) -> JsonObject:
    fields: JsonObject = {
        "status": job.status.value,
        "phase": job.phase,
        "progress": round(job.progress, 2),
        "message": job.message,
        "attempt": job.attempt,
    }
    if job.cancel_requested:
        fields["cancel_requested"] = True
    return fields


def _topics_for(appended: list[Event]) -> list[str]:
    announced: list[str] = []
    for event in appended:
        if event.job_id is not None:
            announced.append(topics.job(event.job_id))
        if event.type is EventType.JOB_STATUS and event.payload.get("status") == JobStatus.QUEUED:
            announced.append(topics.QUEUE)
    announced.extend(topics.tenant(name) for name in {event.tenant for event in appended})
    return list(dict.fromkeys(announced))
