"""The one place that changes a job: every change appends its event in the same
transaction that updates the snapshot, and the bus is told only after the commit
(SPEC §4: "written to a durable log before anyone is told of it").
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError

from genwire import transitions
from genwire.bus import Bus, topics
from genwire.config import DEFAULT_MAX_ATTEMPTS
from genwire.errors import (
    FieldError,
    InputRejected,
    ProviderNotConfigured,
    StateConflict,
    TooManyRequests,
    UnknownId,
)
from genwire.ids import new_id
from genwire.leases import LeaseMoves
from genwire.models import (
    Job,
    JobPage,
    JobStatus,
    JsonObject,
    utc_now,
)
from genwire.pipelines.base import PipelineRegistry, RemoteFollower
from genwire.reporter import AttemptReporter
from genwire.storage import ArtifactStorage
from genwire.store import Store, WriteTx
from genwire.wakeups import topics_to_wake
from genwire.webhooks.outbox import queue_deliveries

log = logging.getLogger("genwire.service")

T = TypeVar("T")

#: What a tenant refused for its queued jobs is told to wait: workers take them meanwhile.
QUEUED_RETRY_AFTER_S = 10


@dataclass(frozen=True)
class CreateJob:
    """A validated-shape create request (SPEC §3 `POST /jobs`)."""

    pipeline: str
    input: JsonObject
    project_id: str | None = None
    webhook: JsonObject | None = None
    metadata: JsonObject | None = None


def request_fingerprint(body: JsonObject) -> str:
    """A stable hash of a create request, to tell an Idempotency-Key's retry from a
    different request (jobs and projects alike)."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


class JobService(LeaseMoves):
    """Every change of a job: the API's side here, the worker's in `LeaseMoves`."""

    def __init__(
        self,
        store: Store,
        bus: Bus,
        registry: PipelineRegistry,
        storage: ArtifactStorage,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        remote: RemoteFollower | None = None,
        configured_providers: Collection[str] = (),
        max_running_per_tenant: int | None = None,
        max_queued_per_tenant: int = 0,
    ) -> None:
        self.store = store
        self.bus = bus
        self.registry = registry
        self.storage = storage
        self.max_attempts = max_attempts
        #: follows remote provider calls for the pipelines' contexts
        self.remote = remote
        self.configured_providers = frozenset(configured_providers)
        #: running jobs of one tenant, across every worker, past which its queued
        #: jobs wait (None: no cap; claiming is fair across tenants either way)
        self.max_running_per_tenant = max_running_per_tenant
        #: queued jobs of one tenant past which it may create no more (0: no cap)
        self.max_queued_per_tenant = max_queued_per_tenant

    async def change(self, fn: Callable[[WriteTx], T]) -> T:
        """Run `fn` in a write transaction; announce what it appended once committed.

        Webhook deliveries of the appended events join the same transaction (an
        outbox): an event is never committed without the deliveries it owes.
        """

        def with_deliveries(tx: WriteTx) -> T:
            value = fn(tx)
            queue_deliveries(tx)
            return value

        value, tx = await self.store.write(with_deliveries)
        woken = (
            topics_to_wake(tx.appended, self.max_running_per_tenant is not None) + tx.extra_topics
        )
        if woken:
            try:
                await self.bus.publish(woken, [event.seq for event in tx.appended])
            except Exception:
                # Committed is committed: the log is the truth; a lost wake-up only
                # delays delivery until the next event of the same job.
                log.exception("announcing %d event(s) failed", len(tx.appended))
        return value

    # -- the API side ---------------------------------------------------------------

    async def create_job(
        self, tenant: str, request: CreateJob, idempotency_key: str | None = None
    ) -> tuple[Job, bool]:
        """Queue a job; returns it and whether it was created (False: an idempotent replay)."""
        job = self.queued_job(tenant, request)
        # Of the request as it will run, so `1` and `1.0`, or metadata absent and {},
        # replay the same job rather than conflict.
        fingerprint = request_fingerprint(
            {
                "pipeline": request.pipeline,
                "input": job.input,
                "project_id": request.project_id,
                "webhook": request.webhook,
                "metadata": job.metadata,
            }
        )

        def create(tx: WriteTx) -> str | None:
            """None when created; the earlier job's id for a replayed key."""
            replayed = transitions.replay_of(tx, tenant, idempotency_key, fingerprint)
            if replayed is not None:
                return replayed
            if request.project_id is not None:
                _check_joinable(tx, request.project_id, tenant)
            self.check_queue_room(tx, tenant, 1)
            tx.insert_job(job)
            if idempotency_key is not None:
                tx.remember_idempotent(tenant, idempotency_key, fingerprint, job.id)
            job.queue_position = transitions.append_status(tx, job)
            return None

        replayed = await self.change(create)
        if replayed is not None:
            return await self.get_job(replayed, tenant), False
        return job, True

    def check_queue_room(self, tx: WriteTx, tenant: str, count: int) -> None:
        """TooManyRequests when `count` more queued jobs would put `tenant` past its
        cap (SPEC §3). Counted in the create's transaction, in the database, so the
        cap holds across every API node."""
        cap = self.max_queued_per_tenant
        if cap and tx.queued_of_tenant(tenant, cap) + count > cap:
            raise TooManyRequests(
                f"this tenant (API key) has {cap} jobs queued, the most it may; "
                "try again once workers have taken some",
                code="too-many-queued",
                retry_after_s=QUEUED_RETRY_AFTER_S,
            )

    def queued_job(self, tenant: str, request: CreateJob) -> Job:
        """A new queued job of `request`, its input checked and normalized; not yet written."""
        return Job(
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
            input=self._validate_input(request.pipeline, request.input),
            metadata=request.metadata or {},
            project_id=request.project_id,
            error=None,
            output=None,
            last_event_seq=0,
            webhook=request.webhook,
        )

    def _validate_input(self, pipeline_name: str, raw: JsonObject) -> JsonObject:
        pipeline = self.registry.get(pipeline_name)
        if pipeline is None:
            known = ", ".join(item.name for item in self.registry)
            raise InputRejected(
                f"unknown pipeline {pipeline_name!r}",
                [FieldError("pipeline", f"unknown pipeline; known: {known}")],
            )
        missing = [name for name in pipeline.providers if name not in self.configured_providers]
        if missing:
            raise ProviderNotConfigured(
                f"{pipeline_name} needs the {', '.join(missing)} provider, which is not "
                "configured on this server (SPEC §7.1 names its key's variable)",
                [FieldError("pipeline", f"provider {name} is not configured") for name in missing],
            )
        try:
            validated = pipeline.validate_input(raw)
        except ValidationError as error:
            problems = [
                FieldError(".".join(["input", *(str(part) for part in item["loc"])]), item["msg"])
                for item in error.errors()
            ]
            raise InputRejected(
                f"input does not match the schema of {pipeline_name}", problems
            ) from None
        return validated.model_dump(mode="json")

    async def get_job(self, job_id: str, tenant: str | None = None) -> Job:
        job = await self.store.get_job(job_id, tenant)
        if job is None:
            raise UnknownId(f"no job {job_id!r}")
        return job

    async def list_jobs(self, tenant: str, **filters: Any) -> JobPage:
        return await self.store.list_jobs(tenant, **filters)

    async def request_cancel(self, job_id: str, tenant: str | None = None) -> Job:
        """Queued: cancelled at once. Running: flagged, and its worker stops it.

        Idempotent while the job runs; an ended job is a StateConflict.
        """

        def cancel(tx: WriteTx) -> None:
            job = tx.lock_job(job_id, tenant)
            if job is None:
                raise UnknownId(f"no job {job_id!r}")
            if job.status.is_terminal:
                raise StateConflict(f"job {job_id} already ended {job.status.value}")
            if job.status is JobStatus.QUEUED:
                transitions.end(
                    tx, job, JobStatus.CANCELLED, "cancelled before it started", utc_now()
                )
            elif not job.cancel_requested:
                job.cancel_requested = True
                job.message = "cancelling"
                transitions.append_status(tx, job)
                tx.extra_topics.append(topics.cancel(job.id))

        await self.change(cancel)
        return await self.get_job(job_id, tenant)

    async def wait_until_ended(self, job_id: str, timeout: float) -> Job:
        """The job when it ends or when `timeout` passes, whichever is first."""
        deadline = asyncio.get_running_loop().time() + timeout
        # The terminal topic, not every event: a waiter must not re-read the job on
        # each progress report of a fast pipeline.
        with self.bus.subscribe(topics.ended(job_id)) as subscription:
            while True:
                job = await self.get_job(job_id)
                remaining = deadline - asyncio.get_running_loop().time()
                if job.status.is_terminal or remaining <= 0:
                    return job
                await subscription.wait(remaining)

    # -- the worker side (its lease moves: `genwire.leases`) ------------------------

    def reporter(self, job_id: str, lease: str, attempt: int = 1) -> AttemptReporter:
        # Here, not in `LeaseMoves`: the reporter writes through the whole service.
        return AttemptReporter(self, job_id, lease, attempt)


def _check_joinable(tx: WriteTx, project_id: str, tenant: str) -> None:
    """A job may join only a project of its own tenant that has not completed: its
    events go to the project's stream, which must carry nobody else's."""
    project = tx.lock_project(project_id, tenant)
    if project is None:
        raise InputRejected(
            f"no project {project_id!r}", [FieldError("project_id", "no such project")]
        )
    if project.completed_at is not None:
        raise InputRejected(
            f"project {project_id} has completed",
            [FieldError("project_id", "the project has completed; it takes no more clips")],
        )
