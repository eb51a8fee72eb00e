"""Workers: claim queued jobs under a lease, run their pipeline, end them.

A worker renews the lease of the job it runs; a worker that dies stops renewing,
and whoever sees the lease expired requeues the job (attempt + 1) or, out of
attempts, fails it with `worker_lost`. No job stays `running` forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
from dataclasses import dataclass
from functools import partial

from genwire.bus import topics
from genwire.errors import LeaseLost
from genwire.ids import new_id
from genwire.models import ErrorCode, Job, JobError
from genwire.pipelines.base import JobCancelled, PipelineContext, PipelineError
from genwire.service import JobService

log = logging.getLogger("genwire.worker")


@dataclass(frozen=True)
class WorkerSettings:
    concurrency: int = 2  #: jobs run at once by this pool
    lease_ttl_s: float = 30.0  #: a job whose lease is older is taken from its worker
    poll_interval_s: float = 2.0  #: idle slots look for work at least this often
    job_timeout_s: float | None = None  #: caps every pipeline's own time limit
    shutdown_grace_s: float = 10.0  #: running jobs get this long to finish on stop
    cancel_grace_s: float = 10.0  #: a cancelled pipeline gets this long to clean up


class _Interrupt:
    """Why a running attempt was stopped from outside, if it was."""

    CANCEL = "cancel"
    TIMEOUT = "timeout"
    SHUTDOWN = "shutdown"
    LEASE_LOST = "lease_lost"


class WorkerPool:
    def __init__(self, service: JobService, settings: WorkerSettings | None = None) -> None:
        self.service = service
        self.settings = settings or WorkerSettings()
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{new_id('w')[-6:]}"
        self._stopping = asyncio.Event()
        self._shutdown_now = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._running: dict[str, asyncio.Task[None]] = {}

    @property
    def running_jobs(self) -> list[str]:
        return list(self._running)

    async def start(self) -> None:
        """Start the dispatcher and the lease reaper."""
        self._free_slots = asyncio.Semaphore(self.settings.concurrency)
        self._tasks = [
            asyncio.create_task(self._dispatch(), name="genwire-dispatcher"),
            asyncio.create_task(self._reap_expired(), name="genwire-reaper"),
        ]

    async def stop(self) -> None:
        """Stop claiming; let running jobs finish within the grace, then requeue them."""
        self._stopping.set()
        # The dispatcher first: it may be claiming a job this very moment, and a job
        # claimed after the list below was taken would be left running, unsupervised.
        # Cancelling it never stops a job: claims finish and their job is launched.
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        running = list(self._running.values())
        if running:
            _, unfinished = await asyncio.wait(running, timeout=self.settings.shutdown_grace_s)
            if unfinished:
                self._shutdown_now.set()
                await asyncio.wait(unfinished, timeout=self.settings.cancel_grace_s + 5)

    async def _dispatch(self) -> None:
        """Claim a job whenever a slot is free. One claimer per pool: a new job wakes
        one transaction here, not one per idle slot."""
        while not self._stopping.is_set():
            await self._free_slots.acquire()
            launched = False
            try:
                # Subscribe before claiming, so a job queued in between still wakes us.
                with self.service.bus.subscribe(topics.QUEUE) as queued:
                    job = await self._claim()
                    while job is None:
                        await queued.wait(self.settings.poll_interval_s)
                        job = await self._claim()
                self._launch(job)
                launched = True
            finally:
                if not launched:
                    self._free_slots.release()

    async def _claim(self) -> Job | None:
        """Claim a job; a claim under way when stop() cancels the dispatcher still
        completes, and its job is launched so that stop() supervises it like any other."""
        claim = asyncio.ensure_future(
            self.service.claim_next_job(self.worker_id, self.settings.lease_ttl_s)
        )
        try:
            return await asyncio.shield(claim)
        except asyncio.CancelledError:
            # Only stop() cancels the dispatcher: slot accounting no longer matters.
            with contextlib.suppress(Exception):
                job = await claim
                if job is not None:
                    self._launch(job)
            raise
        except Exception:
            log.exception("claiming a job failed; retrying")
            return None

    def _launch(self, job: Job) -> asyncio.Task[None]:
        task = asyncio.create_task(self._run(job), name=f"genwire-job-{job.id}")
        self._running[job.id] = task
        # Forgotten when the job ends, not when the dispatcher is cancelled by stop().
        task.add_done_callback(partial(self._forget, job.id))
        return task

    def _forget(self, job_id: str, _ended: asyncio.Task[None]) -> None:
        self._running.pop(job_id, None)
        self._free_slots.release()

    async def _reap_expired(self) -> None:
        while not self._stopping.is_set():
            try:
                recovered = await self.service.recover_expired_leases()
                if recovered:
                    log.warning("requeued job(s) whose worker stopped: %s", recovered)
            except Exception:
                log.exception("recovering expired leases failed; retrying")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.lease_ttl_s / 2):
                    await self._stopping.wait()

    async def _run(self, job: Job) -> None:
        pipeline = self.service.registry.get(job.pipeline)
        if pipeline is None:
            await self._end_failed(
                job, JobError("unknown_pipeline", f"no pipeline {job.pipeline!r} on this worker")
            )
            return
        workdir = self.service.storage.scratch_dir(job.id, job.attempt)
        cancel_requested = asyncio.Event()
        context = PipelineContext(
            job_id=job.id,
            attempt=job.attempt,
            phases=pipeline.phases,
            workdir=workdir,
            reporter=self.service.reporter(job.id, self.worker_id),
            cancel_requested=cancel_requested,
        )
        limit = pipeline.time_limit_s
        if self.settings.job_timeout_s is not None:
            limit = min(limit, self.settings.job_timeout_s)
        try:
            params = pipeline.input_model.model_validate(job.input)
            attempt: asyncio.Task[object] = asyncio.create_task(pipeline.run(context, params))
            interrupt = await self._supervise(job, attempt, cancel_requested, limit)
            await self._finish(job, context, attempt, interrupt, limit)
        except LeaseLost:
            log.warning("lost the lease of job %s; another worker owns it now", job.id)
        except Exception:
            log.exception("ending job %s failed", job.id)
        finally:
            self.service.storage.discard_scratch(job.id)

    async def _supervise(
        self,
        job: Job,
        attempt: asyncio.Task[object],
        cancel_requested: asyncio.Event,
        limit: float,
    ) -> str | None:
        """Wait for the attempt, renewing its lease; stop it when told. Returns why it was stopped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (limit if math.isfinite(limit) else 1e12)
        renew_every = self.settings.lease_ttl_s / 3
        # Renew at once: a cancel that landed between the claim and the subscription
        # above is seen now rather than a renewal period later.
        next_renewal = loop.time()
        interrupt: str | None = None
        with self.service.bus.subscribe(topics.cancel(job.id)) as cancel_notice:
            while not attempt.done():
                now = loop.time()
                if now >= deadline:
                    interrupt = _Interrupt.TIMEOUT
                    break
                if now >= next_renewal:
                    try:
                        if await self.service.renew_lease(
                            job.id, self.worker_id, self.settings.lease_ttl_s
                        ):
                            interrupt = _Interrupt.CANCEL
                            break
                    except LeaseLost:
                        interrupt = _Interrupt.LEASE_LOST
                        break
                    next_renewal = now + renew_every
                cancelled = asyncio.create_task(cancel_notice.wait(None))
                shutdown = asyncio.create_task(self._shutdown_now.wait())
                await asyncio.wait(
                    {attempt, cancelled, shutdown},
                    timeout=min(next_renewal, deadline) - loop.time(),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                cancelled.cancel()
                shutdown.cancel()
                if self._shutdown_now.is_set():
                    interrupt = _Interrupt.SHUTDOWN
                    break
                if cancelled.done() and not cancelled.cancelled():
                    interrupt = _Interrupt.CANCEL
                    break
        if interrupt is None:
            return None
        if interrupt == _Interrupt.CANCEL:
            cancel_requested.set()
        attempt.cancel()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            async with asyncio.timeout(self.settings.cancel_grace_s):
                await asyncio.wait({attempt})
        return interrupt

    async def _finish(
        self,
        job: Job,
        context: PipelineContext,
        attempt: asyncio.Task[object],
        interrupt: str | None,
        limit: float,
    ) -> None:
        if interrupt == _Interrupt.LEASE_LOST:
            raise LeaseLost(job.id)
        if interrupt == _Interrupt.SHUTDOWN:
            await self.service.release_job(job.id, self.worker_id, "its worker shut down")
            return
        if interrupt == _Interrupt.TIMEOUT:
            await self._end_failed(
                job, JobError(ErrorCode.TIMEOUT, f"the job ran past its time limit of {limit:g} s")
            )
            return
        if interrupt == _Interrupt.CANCEL or context.cancelled:
            await self.service.cancel_running_job(job.id, self.worker_id)
            return
        error = attempt.exception() if not attempt.cancelled() else None
        if isinstance(error, JobCancelled):
            await self.service.cancel_running_job(job.id, self.worker_id)
        elif isinstance(error, LeaseLost):
            raise error
        elif isinstance(error, PipelineError):
            await self._end_failed(job, JobError(error.code, error.message, error.retryable))
        elif error is not None:
            log.error("pipeline %s raised", job.pipeline, exc_info=error)
            message = f"{type(error).__name__}: {error}"
            await self._end_failed(job, JobError(ErrorCode.PIPELINE_ERROR, message))
        elif attempt.cancelled():
            await self._end_failed(
                job, JobError(ErrorCode.PIPELINE_ERROR, "the pipeline was cancelled")
            )
        else:
            output = attempt.result()
            if output is not None and not isinstance(output, dict):
                await self._end_failed(
                    job,
                    JobError(ErrorCode.INVALID_OUTPUT, "the pipeline returned a non-object output"),
                )
                return
            await context.complete()
            await self.service.complete_job(job.id, self.worker_id, output or {})

    async def _end_failed(self, job: Job, error: JobError) -> None:
        await self.service.fail_job(job.id, self.worker_id, error)
