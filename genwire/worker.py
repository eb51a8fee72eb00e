"""Workers: claim queued jobs under a lease, run their pipeline, end them.

A worker renews the lease of each attempt it runs; a worker that dies stops
renewing, and a reaper that sees the lease expired requeues the job (attempt + 1)
or, out of attempts, fails it with `worker_lost`. No job stays `running` forever.

An idle pool claims when woken on `topics.QUEUE`, which every queued job (a requeue
included) announces. Where wake-ups may miss a job — a bus that reaches this process
alone while another process queues jobs, a bus cut off, a claim that failed — it
looks at the store every `poll_interval_s`; otherwise only every `idle_backstop_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import orjson
from pydantic import ValidationError

from genwire.bus import Subscription, topics
from genwire.config import DEFAULT_LEASE_TTL_S, DEFAULT_SHUTDOWN_GRACE_S, DEFAULT_WORKERS
from genwire.errors import LeaseLost, StoreUnavailable
from genwire.ids import new_id
from genwire.models import ErrorCode, Job, JobError
from genwire.pipelines.base import JobCancelled, PipelineContext, PipelineError
from genwire.service import JobService
from genwire.store.retries import written_despite_outages

log = logging.getLogger("genwire.worker")
T = TypeVar("T")

#: How long an idle pool that hears every queued job goes without looking at the
#: store. Nothing is queued unannounced (a reaper's requeue is announced too, and
#: the reapers keep their own clock), so this only bounds the delay of a wake-up
#: that was lost: Redis pub/sub delivers at most once, and a publish can fail after
#: its commit. Every look is a claim transaction under the store's write lock, so
#: an idle pool costs one in 30 s rather than one every `poll_interval_s`.
IDLE_BACKSTOP_S = 30.0

#: Whether another process may queue jobs this process's own bus never announces
#: (asked while the pool is idle on a `LocalBus`; see `WorkerPool`).
OthersQueueing = Callable[[], bool]


@dataclass(frozen=True)
class WorkerSettings:
    concurrency: int = DEFAULT_WORKERS  #: jobs run at once by this pool
    lease_ttl_s: float = DEFAULT_LEASE_TTL_S  #: a job whose lease is older is taken from its worker
    #: an idle pool looks for work this often while a queued job may not wake it
    poll_interval_s: float = 2.0
    #: and at least this often while every queued job wakes it (see IDLE_BACKSTOP_S)
    idle_backstop_s: float = IDLE_BACKSTOP_S
    job_timeout_s: float | None = None  #: caps every pipeline's own time limit
    shutdown_grace_s: float = (
        DEFAULT_SHUTDOWN_GRACE_S  #: running jobs get this long to finish on stop
    )
    cancel_grace_s: float = 10.0  #: a stopped pipeline gets this long to clean up


class Interrupt(enum.StrEnum):
    """Why a running attempt was stopped from outside."""

    CANCEL = "cancel"  #: the job was cancelled
    TIMEOUT = "timeout"  #: it ran past its time limit
    SHUTDOWN = "shutdown"  #: the pool stopped and the grace ran out
    LEASE_LOST = "lease_lost"  #: another worker owns the job now


class LeaseReaper:
    """Requeues jobs whose lease expired. Every node runs one, with or without workers."""

    def __init__(self, service: JobService, interval_s: float) -> None:
        self.service = service
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="genwire-reaper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                recovered = await self.service.recover_expired_leases()
                if recovered:
                    log.warning("requeued job(s) whose worker stopped: %s", recovered)
            except Exception:
                log.exception("recovering expired leases failed; retrying")
            await asyncio.sleep(self.interval_s)


class WorkerPool:
    def __init__(
        self,
        service: JobService,
        settings: WorkerSettings | None = None,
        others_queueing: OthersQueueing | None = None,
    ) -> None:
        """On a `LocalBus`, `others_queueing` says whether another process may queue
        jobs (None: none can); while one may, the idle pool polls. A bus that reaches
        other processes is trusted while its subscription is up."""
        self.service = service
        self.settings = settings or WorkerSettings()
        self._others_queueing = others_queueing
        announced = service.bus.announced
        self._outages_seen = announced.outages if announced is not None else 0
        self._claim_failed = False
        self._probe_failing = False
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{new_id('w')[-6:]}"
        self.reaper = LeaseReaper(service, self.settings.lease_ttl_s / 2)
        self._stopping = asyncio.Event()
        self._shutdown_now = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._free_slots = asyncio.Semaphore(self.settings.concurrency)
        #: running attempts by (job id, attempt): a job requeued and claimed again by
        #: this same pool has two entries until its first run has stopped
        self._running: dict[tuple[str, int], asyncio.Task[None]] = {}

    @property
    def running_jobs(self) -> list[str]:
        return [job_id for job_id, _ in self._running]

    async def start(self) -> None:
        """Start claiming jobs, and the lease reaper."""
        self._dispatcher = asyncio.create_task(self._dispatch(), name="genwire-dispatcher")
        self.reaper.start()

    async def stop(self) -> None:
        """Stop claiming; let running jobs finish within the grace, then requeue them."""
        self._stopping.set()
        # The dispatcher first: it may be claiming a job this very moment, and a job
        # claimed after the list below was taken would be left running, unsupervised.
        # Cancelling it never stops a job: claims finish and their job is launched.
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
        await self.reaper.stop()
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
                        await self._until_worth_claiming(queued)
                        job = await self._claim()
                self._launch(job)
                launched = True
            finally:
                if not launched:
                    self._free_slots.release()

    async def _until_worth_claiming(self, queued: Subscription) -> None:
        """Return when a claim may find what the last one did not: at a wake-up; every
        `poll_interval_s` while wake-ups may miss a job; else after `idle_backstop_s`."""
        loop = asyncio.get_running_loop()
        backstop_at = loop.time() + self.settings.idle_backstop_s
        while True:
            tick = min(self.settings.poll_interval_s, backstop_at - loop.time())
            if await queued.wait(max(tick, 0.0)):
                return
            if loop.time() >= backstop_at or self._claim_failed:
                return
            if not await self._hears_every_queued_job():
                return

    async def _hears_every_queued_job(self) -> bool:
        """Whether every job queued since the last claim wakes this pool (but for a
        lost announcement, which the backstop bounds)."""
        announced = self.service.bus.announced
        if announced is None:  # this process's own bus
            if self._others_queueing is None:
                return True
            try:
                others = await asyncio.to_thread(self._others_queueing)
            except Exception:
                if not self._probe_failing:  # once a streak, not every poll
                    log.exception("cannot tell whether others queue jobs; polling")
                self._probe_failing = True
                return False
            self._probe_failing = False
            return not others
        if announced.outages != self._outages_seen:
            # Back on the bus: what was announced meanwhile went unheard.
            self._outages_seen = announced.outages
            return False
        return announced.connected

    async def _claim(self) -> Job | None:
        """Claim a job; a claim under way when stop() cancels the dispatcher still
        completes, and its job is launched so that stop() supervises it like any other."""
        claim = asyncio.ensure_future(
            self.service.claim_next_job(self.worker_id, self.settings.lease_ttl_s)
        )
        try:
            job = await asyncio.shield(claim)
        except asyncio.CancelledError:
            # Only stop() cancels the dispatcher: slot accounting no longer matters.
            with contextlib.suppress(Exception):
                job = await claim
                if job is not None:
                    self._launch(job)
            raise
        except Exception:
            log.exception("claiming a job failed; retrying")
            self._claim_failed = True
            return None
        self._claim_failed = False
        return job

    def _launch(self, job: Job) -> None:
        assert job.lease_owner is not None
        task = asyncio.create_task(self._run(job, job.lease_owner), name=f"genwire-job-{job.id}")
        self._running[job.id, job.attempt] = task
        # Forgotten when the attempt ends, not when the dispatcher is cancelled by stop().
        task.add_done_callback(partial(self._forget, (job.id, job.attempt)))

    def _forget(self, attempt: tuple[str, int], _ended: asyncio.Task[None]) -> None:
        self._running.pop(attempt, None)
        self._free_slots.release()

    async def _run(self, job: Job, lease: str) -> None:
        """Run one attempt to its end; the slot stays taken until the pipeline stopped."""
        pipeline = self.service.registry.get(job.pipeline)
        assert pipeline is not None, "claim_next_job only hands out pipelines we have"
        attempt: asyncio.Task[object] | None = None
        try:
            try:
                params = pipeline.input_model.model_validate(job.input)
            except ValidationError as error:
                message = f"the stored input no longer fits {job.pipeline}: {error.error_count()} error(s)"
                await self._end(
                    self.service.fail_job, job.id, lease, JobError(ErrorCode.INVALID_INPUT, message)
                )
                return
            cancel_requested = asyncio.Event()
            context = PipelineContext(
                job_id=job.id,
                attempt=job.attempt,
                phases=pipeline.phases,
                workdir=self.service.storage.scratch_dir(job.id, job.attempt),
                reporter=self.service.reporter(job.id, lease, job.attempt),
                remote=self.service.remote,
                cancel_requested=cancel_requested,
            )
            limit = pipeline.time_limit_s
            if self.settings.job_timeout_s is not None:
                limit = min(limit, self.settings.job_timeout_s)
            attempt = asyncio.create_task(pipeline.run(context, params))
            interrupt = await self._supervise(job.id, lease, attempt, cancel_requested, limit)
            await self._finish(job, lease, context, attempt, interrupt, limit)
        except LeaseLost:
            log.warning("lost the lease of job %s; another worker owns it now", job.id)
        except Exception:
            log.exception(
                "ending job %s failed; its lease will expire and it will run again", job.id
            )
        finally:
            if attempt is not None and not attempt.done():
                attempt.cancel()
                log.warning("waiting for the pipeline of job %s to stop", job.id)
                await asyncio.wait({attempt})
            self.service.storage.discard_scratch(job.id, job.attempt)

    async def _supervise(
        self,
        job_id: str,
        lease: str,
        attempt: asyncio.Task[object],
        cancel_requested: asyncio.Event,
        limit: float,
    ) -> Interrupt | None:
        """Wait for the attempt, renewing its lease; stop it when told. Returns why it was stopped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (limit if math.isfinite(limit) else 1e12)
        renew_every = self.settings.lease_ttl_s / 3
        # Renew at once: a cancel that landed between the claim and the subscription
        # below is seen now rather than a renewal period later.
        next_renewal = loop.time()
        lease_valid_until = loop.time() + self.settings.lease_ttl_s
        interrupt: Interrupt | None = None
        with self.service.bus.subscribe(topics.cancel(job_id)) as cancel_notice:
            while not attempt.done():
                now = loop.time()
                if now >= deadline:
                    interrupt = Interrupt.TIMEOUT
                    break
                if now >= next_renewal:
                    try:
                        if await self.service.renew_lease(job_id, lease, self.settings.lease_ttl_s):
                            interrupt = Interrupt.CANCEL
                            break
                        lease_valid_until = now + self.settings.lease_ttl_s
                        next_renewal = now + renew_every
                    except LeaseLost:
                        interrupt = Interrupt.LEASE_LOST
                        break
                    except Exception:
                        # A store hiccup: keep running and try again soon; only a lease
                        # that may have expired meanwhile stops the attempt.
                        log.exception("renewing the lease of job %s failed", job_id)
                        if now >= lease_valid_until:
                            interrupt = Interrupt.LEASE_LOST
                            break
                        next_renewal = now + min(1.0, renew_every)
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
                    interrupt = Interrupt.SHUTDOWN
                    break
                if cancelled.done() and not cancelled.cancelled():
                    # A wake-up, not an order: whoever can publish on the bus could send
                    # one. Renew now; the job's row says whether cancel was asked.
                    next_renewal = loop.time()
        if interrupt is None:
            return None
        if interrupt is Interrupt.CANCEL or interrupt is Interrupt.TIMEOUT:
            # The pipeline is told it is stopped for good (it may stop work it started
            # elsewhere: a provider job); a shutdown or lost lease leaves it to a rerun.
            cancel_requested.set()
        attempt.cancel()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            async with asyncio.timeout(self.settings.cancel_grace_s):
                await asyncio.wait({attempt})
        return interrupt

    async def _finish(
        self,
        job: Job,
        lease: str,
        context: PipelineContext,
        attempt: asyncio.Task[object],
        interrupt: Interrupt | None,
        limit: float,
    ) -> None:
        """End the job as the attempt's outcome says: exactly one terminal write."""
        service = self.service
        if interrupt is Interrupt.LEASE_LOST:
            raise LeaseLost(job.id)
        if interrupt is Interrupt.SHUTDOWN:
            await self._end(service.release_job, job.id, lease, "its worker shut down")
            return
        if interrupt is Interrupt.TIMEOUT:
            error = JobError(ErrorCode.TIMEOUT, f"the job ran past its time limit of {limit:g} s")
            await self._end(service.fail_job, job.id, lease, error)
            return
        if interrupt is Interrupt.CANCEL or context.cancelled:
            await self._end(service.cancel_running_job, job.id, lease)
            return
        raised = attempt.exception() if not attempt.cancelled() else None
        if isinstance(raised, JobCancelled):
            await self._end(service.cancel_running_job, job.id, lease)
        elif isinstance(raised, LeaseLost):
            raise raised
        elif isinstance(raised, PipelineError):
            error = JobError(raised.code, raised.message, raised.retryable)
            await self._end(service.fail_job, job.id, lease, error)
        elif isinstance(raised, StoreUnavailable):
            # The store failed under the pipeline, not the pipeline: run it again.
            log.error("job %s hit a store error", job.id, exc_info=raised)
            await self._end(service.release_job, job.id, lease, "the store failed while it ran")
        elif raised is not None:
            log.error("pipeline %s raised", job.pipeline, exc_info=raised)
            error = JobError(ErrorCode.PIPELINE_ERROR, f"{type(raised).__name__}: {raised}")
            await self._end(service.fail_job, job.id, lease, error)
        elif attempt.cancelled():
            error = JobError(ErrorCode.PIPELINE_ERROR, "the pipeline was cancelled")
            await self._end(service.fail_job, job.id, lease, error)
        else:
            problem = _output_problem(attempt.result())
            if problem is not None:
                error = JobError(ErrorCode.INVALID_OUTPUT, problem)
                await self._end(service.fail_job, job.id, lease, error)
                return
            await context.complete()
            output = attempt.result()
            assert output is None or isinstance(output, dict)
            await self._end(service.complete_job, job.id, lease, output or {})

    async def _end(self, write: Callable[..., Awaitable[T]], *args: object) -> T:
        """A write that ends an attempt, tried again while the store is unwell: giving
        up here would leave the job to its lease and run it all over again."""
        return await written_despite_outages(lambda: write(*args), "ending a job")


def _output_problem(output: object) -> str | None:
    """Why a pipeline's return value cannot be stored as its output, if it cannot."""
    if output is None:
        return None
    if not isinstance(output, dict):
        return f"the pipeline returned {type(output).__name__}, not a JSON object"
    try:
        orjson.dumps(output)
    except TypeError as error:
        return f"the pipeline's output is not JSON: {error}"
    return None
