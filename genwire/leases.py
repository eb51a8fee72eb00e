"""The worker's side of `JobService`: claim a queued job under a lease, renew the
lease, end the attempt, or give the job back to the queue; and the recovery of jobs
whose lease nobody renews any more.

Kept apart from `service.py` beside `reporter.py`: these are the moves of whoever
holds (or lost) an attempt's lease, not changes the API asks of a job. Every move
is fenced by the lease it presents (`transitions.owned`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from genwire import transitions
from genwire.models import Job, JobError, JobStatus, JsonObject, utc_now
from genwire.pipelines.base import PipelineRegistry
from genwire.store import WriteTx

T = TypeVar("T")


class LeaseMoves(ABC):
    """A base of `JobService`, which provides what is declared here."""

    registry: PipelineRegistry
    max_running_per_tenant: int | None

    @abstractmethod
    async def change(self, fn: Callable[[WriteTx], T]) -> T:
        """Run `fn` in a write transaction; announce what it appended once committed."""

    async def claim_next_job(self, worker_id: str, lease_ttl: float) -> Job | None:
        """The next queued job this worker can run, now running under a lease: the
        oldest of the tenant with the fewest running jobs, skipping any tenant at
        `max_running_per_tenant` (see `WriteTx.claim_queued`).

        The job's `lease_owner` is the lease of this one attempt: every later
        write of the attempt (report, renew, end) must present it.
        """
        pipelines = [pipeline.name for pipeline in self.registry]

        def claim(tx: WriteTx) -> Job | None:
            job = tx.claim_queued(pipelines, self.max_running_per_tenant)
            if job is not None:
                transitions.start(tx, job, worker_id, lease_ttl, utc_now())
            return job

        return await self.change(claim)

    async def renew_lease(self, job_id: str, lease: str, lease_ttl: float) -> bool:
        """Extend the lease; returns whether cancel was requested. Raises LeaseLost."""

        def renew(tx: WriteTx) -> bool:
            job = transitions.owned(tx, job_id, lease)
            job.lease_expires_at = utc_now() + timedelta(seconds=lease_ttl)
            tx.save_job(job)
            return job.cancel_requested

        return await self.change(renew)

    async def complete_job(self, job_id: str, lease: str, output: JsonObject) -> Job:
        def complete(tx: WriteTx) -> Job:
            job = transitions.owned(tx, job_id, lease)
            job.output = output
            transitions.end(tx, job, JobStatus.SUCCEEDED, "succeeded", utc_now())
            return job

        return await self.change(complete)

    async def fail_job(self, job_id: str, lease: str, error: JobError) -> Job:
        def fail(tx: WriteTx) -> Job:
            job = transitions.owned(tx, job_id, lease)
            job.error = error
            transitions.end(tx, job, JobStatus.FAILED, error.message, utc_now())
            return job

        return await self.change(fail)

    async def cancel_running_job(self, job_id: str, lease: str) -> Job:
        def cancel(tx: WriteTx) -> Job:
            job = transitions.owned(tx, job_id, lease)
            transitions.end(tx, job, JobStatus.CANCELLED, "cancelled", utc_now())
            return job

        return await self.change(cancel)

    async def release_job(self, job_id: str, lease: str, reason: str) -> None:
        """Give a running job back to the queue (graceful shutdown).

        The next run is a new attempt, but a shutdown is nobody's failure: it does
        not use up the job's budget of attempts.
        """

        def release(tx: WriteTx) -> None:
            job = transitions.owned(tx, job_id, lease)
            job.max_attempts += 1
            transitions.retry_or_fail(
                tx, job, transitions.RequeueReason.RELEASED, reason, utc_now()
            )

        await self.change(release)

    async def recover_expired_leases(self, now: datetime | None = None) -> list[str]:
        """Requeue (or fail, out of attempts) running jobs whose worker stopped renewing."""

        def recover(tx: WriteTx) -> list[str]:
            orphans = tx.lock_expired(now or utc_now())
            for job in orphans:
                transitions.retry_or_fail(
                    tx,
                    job,
                    transitions.RequeueReason.WORKER_LOST,
                    "its worker stopped responding",
                    utc_now(),
                )
            return [job.id for job in orphans]

        return await self.change(recover)

    async def recover_all_running(self) -> list[str]:
        """At start-up, when this process alone owns the database: every running job is orphaned."""

        def recover(tx: WriteTx) -> list[str]:
            orphans = tx.lock_running()
            for job in orphans:
                transitions.retry_or_fail(
                    tx,
                    job,
                    transitions.RequeueReason.SERVER_RESTARTED,
                    "the server stopped while it ran",
                    utc_now(),
                )
            return [job.id for job in orphans]

        return await self.change(recover)
