"""WorkerPool: leases, heartbeats, cancel, time limits and recovery, on SQLite and
PostgreSQL, with a real pool running the test pipelines in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import pytest
from sqlalchemy.exc import OperationalError

from genwire.bus import topics
from genwire.models import ErrorCode, Event, EventType, Job, JobStatus, StepState
from genwire.service import CreateJob, JobService
from genwire.worker import WorkerPool
from tests.pools import PoolStarter
from tests.waiting import eventually

TENANT = "tenant-a"
#: Upper bound of every wait: far above what each behaviour needs, far below a hang.
WAIT_S = 15.0


class StartPool(Protocol):
    async def __call__(self, **settings: Any) -> WorkerPool: ...


@pytest.fixture
async def start_pool(service: JobService) -> AsyncIterator[StartPool]:
    """Start WorkerPools on the test's service; each is stopped when the test ends."""
    starter = PoolStarter()
    yield lambda **settings: starter(service, **settings)
    await starter.stop_all()


async def submit(service: JobService, pipeline: str, **fields: Any) -> str:
    job, _ = await service.create_job(TENANT, CreateJob(pipeline, fields))
    return job.id


async def ended(service: JobService, job_id: str, timeout: float = WAIT_S) -> Job:
    """The job once it reached a terminal status; fails the test past `timeout`."""
    job = await service.wait_until_ended(job_id, timeout)
    assert job.status.is_terminal, f"{job_id} still {job.status} after {timeout} s"
    return job


async def events_once(
    service: JobService, job_id: str, seen: Callable[[list[Event]], bool]
) -> list[Event]:
    """The job's events as soon as `seen(events)` holds, woken by the bus, not polling."""
    async with asyncio.timeout(WAIT_S):
        with service.bus.subscribe(topics.job(job_id)) as changed:
            while True:
                events = await service.store.events_after(job_id)
                if seen(events):
                    return events
                await changed.wait(None)


async def pipeline_started(service: JobService, job_id: str) -> None:
    """Wait until the job's pipeline is inside its first phase."""

    def started(events: list[Event]) -> bool:
        return any(
            event.type is EventType.STEP_STATUS and event.payload["state"] == "started"
            for event in events
        )

    await events_once(service, job_id, started)


def terminal_events(events: list[Event]) -> list[Event]:
    return [event for event in events if event.type.is_terminal]


def assert_ended_once_with(events: list[Event], expected: EventType) -> Event:
    """Exactly one terminal event, of the expected type, and it is the last."""
    terminal = terminal_events(events)
    assert [event.type for event in terminal] == [expected]
    assert events[-1] is terminal[0]
    return terminal[0]


# -- a job's life ---------------------------------------------------------------------


async def test_a_synthetic_job_runs_to_success_with_every_step_reported_in_order(
    service: JobService, start_pool: StartPool
) -> None:
    await start_pool(concurrency=2, lease_ttl_s=5)
    job_id = await submit(service, "demo.synthetic", steps=20, step_ms=1)

    job = await ended(service, job_id)

    events = await service.store.events_after(job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert job.progress == 100
    assert job.output == {"steps": 20, "artifact_ids": []}
    assert job.error is None
    assert job.attempt == 1
    steps = [
        (event.payload["phase"], event.payload["state"])
        for event in events
        if event.type is EventType.STEP_STATUS
    ]
    assert steps == [
        ("work", StepState.STARTED),
        ("work", StepState.COMPLETED),
        ("output", StepState.STARTED),
        ("output", StepState.COMPLETED),
    ]
    progress_events = [event for event in events if event.type is EventType.STEP_PROGRESS]
    assert len(progress_events) == 20
    assert [event.payload["phase_progress"] for event in progress_events][-1] == 100
    overall = [event.payload["progress"] for event in events if "progress" in event.payload]
    assert overall == sorted(overall)
    assert overall[-1] == 100
    completed = assert_ended_once_with(events, EventType.JOB_COMPLETED)
    assert completed.payload["status"] == "succeeded"
    assert completed.payload["output"] == job.output
    assert completed.payload["duration_s"] >= 0
    assert [event.payload["status"] for event in events[:2]] == ["queued", "running"]
    assert job.last_event_id == completed.id


async def test_a_warning_is_reported_and_the_job_still_succeeds(
    service: JobService, start_pool: StartPool
) -> None:
    await start_pool(concurrency=1, lease_ttl_s=5)
    job_id = await submit(service, "demo.synthetic", steps=5, step_ms=1, warn_at=3)

    job = await ended(service, job_id)

    events = await service.store.events_after(job_id)
    warnings = [event for event in events if event.type is EventType.WARNING]
    assert len(warnings) == 1
    assert warnings[0].payload["code"] == "synthetic_warning"
    assert "step 3" in warnings[0].payload["message"]
    assert job.status is JobStatus.SUCCEEDED
    assert_ended_once_with(events, EventType.JOB_COMPLETED)


@pytest.mark.parametrize("retryable", [True, False])
async def test_a_synthetic_failure_fails_the_job_with_its_code_and_retryability(
    service: JobService, start_pool: StartPool, retryable: bool
) -> None:
    await start_pool(concurrency=1, lease_ttl_s=5)
    job_id = await submit(
        service, "demo.synthetic", steps=5, step_ms=1, fail_at=2, fail_retryable=retryable
    )

    job = await ended(service, job_id)

    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.code == "synthetic_failure"
    assert job.error.retryable is retryable
    failed = assert_ended_once_with(await service.store.events_after(job_id), EventType.JOB_FAILED)
    assert failed.payload["status"] == "failed"
    assert failed.payload["error"] == {
        "code": "synthetic_failure",
        "message": "synthetic failure at step 2",
        "retryable": retryable,
    }


async def test_a_pipeline_that_raises_fails_its_job_and_the_pool_runs_the_next_one(
    service: JobService, start_pool: StartPool
) -> None:
    await start_pool(concurrency=1, lease_ttl_s=5)
    broken_id = await submit(service, "test.raises")

    broken = await ended(service, broken_id)

    assert broken.status is JobStatus.FAILED
    assert broken.error is not None
    assert broken.error.code == ErrorCode.PIPELINE_ERROR
    assert "ZeroDivisionError" in broken.error.message
    assert_ended_once_with(await service.store.events_after(broken_id), EventType.JOB_FAILED)

    healthy = await ended(service, await submit(service, "demo.synthetic", steps=3, step_ms=1))
    assert healthy.status is JobStatus.SUCCEEDED


async def test_a_pipeline_returning_a_non_object_fails_with_invalid_output(
    service: JobService, start_pool: StartPool
) -> None:
    await start_pool(concurrency=1, lease_ttl_s=5)

    job = await ended(service, await submit(service, "test.bad_output"))

    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.code == ErrorCode.INVALID_OUTPUT


# -- time limits ----------------------------------------------------------------------


async def test_a_hanging_pipeline_is_failed_by_its_time_limit(
    service: JobService, start_pool: StartPool
) -> None:
    await start_pool(concurrency=1, lease_ttl_s=5)
    job_id = await submit(service, "test.hangs")

    job = await ended(service, job_id)

    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.code == ErrorCode.TIMEOUT
    assert "1 s" in job.error.message
    assert_ended_once_with(await service.store.events_after(job_id), EventType.JOB_FAILED)


async def test_the_pool_job_timeout_caps_a_longer_pipeline_limit(
    service: JobService, start_pool: StartPool
) -> None:
    await start_pool(concurrency=1, lease_ttl_s=5, job_timeout_s=0.5)
    job_id = await submit(service, "test.sleeps", seconds=30)

    job = await ended(service, job_id, timeout=10)

    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.code == ErrorCode.TIMEOUT
    assert "0.5 s" in job.error.message


# -- cancel ---------------------------------------------------------------------------


async def test_cancelling_a_sleeping_job_ends_it_promptly_and_the_pool_goes_on(
    service: JobService, start_pool: StartPool
) -> None:
    # A lease renewed, and a sleep ended, only long past the wait of `ended`: the cancel
    # notice is the one thing that can end the job within it.
    await start_pool(concurrency=1, lease_ttl_s=10 * WAIT_S)
    job_id = await submit(service, "test.sleeps", seconds=10 * WAIT_S)
    await pipeline_started(service, job_id)

    await service.request_cancel(job_id, TENANT)
    job = await ended(service, job_id)

    assert job.status is JobStatus.CANCELLED
    assert_ended_once_with(await service.store.events_after(job_id), EventType.JOB_CANCELLED)
    healthy = await ended(service, await submit(service, "demo.synthetic", steps=3, step_ms=1))
    assert healthy.status is JobStatus.SUCCEEDED


async def test_a_cancel_wake_up_alone_does_not_cancel_a_running_job(
    service: JobService, start_pool: StartPool
) -> None:
    """Bug: a `cancel:<id>` notice on the bus cancelled the job without asking the
    database, so anyone who could publish on a shared Redis could stop any job."""
    await start_pool(concurrency=1, lease_ttl_s=10 * WAIT_S)
    job_id = await submit(service, "test.sleeps", seconds=10 * WAIT_S)
    await pipeline_started(service, job_id)
    renewed = (await service.get_job(job_id)).lease_expires_at

    await service.bus.publish([topics.cancel(job_id)])
    # The notice makes the worker renew at once (lease renewals are 10 * WAIT_S / 3
    # apart otherwise): once it has, the row has answered the notice.
    later = await eventually(
        lambda: service.get_job(job_id),
        "the renewal the notice asks for",
        until=lambda job: job.lease_expires_at != renewed,
    )
    assert later.status is JobStatus.RUNNING

    await service.request_cancel(job_id, TENANT)
    assert (await ended(service, job_id)).status is JobStatus.CANCELLED


async def test_cancelling_a_job_blocking_in_a_thread_ends_it_cancelled(
    service: JobService, start_pool: StartPool
) -> None:
    await start_pool(concurrency=1, lease_ttl_s=60)
    job_id = await submit(service, "test.blocks", seconds=30)
    await pipeline_started(service, job_id)

    await service.request_cancel(job_id, TENANT)
    job = await ended(service, job_id)

    assert job.status is JobStatus.CANCELLED
    assert_ended_once_with(await service.store.events_after(job_id), EventType.JOB_CANCELLED)


# -- recovery -------------------------------------------------------------------------


async def test_a_job_whose_worker_vanished_is_taken_over_after_its_lease_expires(
    service: JobService, start_pool: StartPool
) -> None:
    job_id = await submit(service, "demo.synthetic", steps=3, step_ms=1)
    claimed = await service.claim_next_job("dead-worker", lease_ttl=0.2)
    assert claimed is not None
    assert claimed.id == job_id

    await start_pool(concurrency=1, lease_ttl_s=1.0)
    job = await ended(service, job_id)

    assert job.status is JobStatus.SUCCEEDED
    assert job.attempt == 2
    events = await service.store.events_after(job_id)
    requeued = [
        event
        for event in events
        if event.type is EventType.JOB_STATUS and event.payload["status"] == "queued"
    ]
    assert [event.payload["attempt"] for event in requeued] == [1, 2]
    assert "stopped responding" in requeued[-1].payload["message"]
    assert_ended_once_with(events, EventType.JOB_COMPLETED)


async def test_a_job_recovered_at_start_up_runs_again_on_the_pool(
    service: JobService, start_pool: StartPool
) -> None:
    job_id = await submit(service, "demo.synthetic", steps=3, step_ms=1)
    # The lease would outlive the test: only recovery at start can free the job.
    assert await service.claim_next_job("dead-process", lease_ttl=3600) is not None

    assert await service.recover_all_running() == [job_id]
    await start_pool(concurrency=1, lease_ttl_s=5)

    # Requeued by the recovery (the pool may have claimed it again since).
    requeued = [
        event.payload
        for event in await service.store.events_after(job_id)
        if event.type is EventType.JOB_STATUS and event.payload["status"] == "queued"
    ]
    assert requeued[-1]["attempt"] == 2
    assert "stopped while it ran" in requeued[-1]["message"]
    job = await ended(service, job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert job.attempt == 2


async def test_stopping_past_the_grace_puts_a_running_job_back_in_the_queue(
    service: JobService, start_pool: StartPool
) -> None:
    pool = await start_pool(concurrency=1, lease_ttl_s=60, shutdown_grace_s=0.2)
    job_id = await submit(service, "test.sleeps", seconds=30)
    await pipeline_started(service, job_id)

    async with asyncio.timeout(WAIT_S):
        await pool.stop()

    job = await service.get_job(job_id)
    assert job.status is JobStatus.QUEUED
    assert job.attempt == 2
    assert job.lease_owner is None
    assert pool.running_jobs == []
    last = (await service.store.events_after(job_id))[-1]
    assert last.payload["status"] == "queued"
    assert "shut down" in last.payload["message"]


async def test_stopping_lets_a_job_that_ends_within_the_grace_finish(
    service: JobService, start_pool: StartPool
) -> None:
    pool = await start_pool(concurrency=1, lease_ttl_s=60, shutdown_grace_s=10)
    job_id = await submit(service, "test.sleeps", seconds=0.3)
    await pipeline_started(service, job_id)

    async with asyncio.timeout(WAIT_S):
        await pool.stop()

    job = await service.get_job(job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert job.output == {"slept": 0.3}


async def test_a_job_claimed_as_stop_begins_is_not_left_running_unsupervised(
    service: JobService, start_pool: StartPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: stop() listed the running jobs once, before stopping the slots, so a
    job a slot claimed while stop() waited out the grace kept running after it returned."""
    pool = await start_pool(concurrency=2, lease_ttl_s=60, shutdown_grace_s=10)
    finishing = await submit(service, "test.sleeps", seconds=0.3)
    await pipeline_started(service, finishing)
    claim_next_job = service.claim_next_job
    stop_began = asyncio.Event()
    stopping: list[asyncio.Task[None]] = []

    async def claim_as_stop_begins(worker_id: str, lease_ttl: float) -> Job | None:
        if not stopping:
            stopping.append(asyncio.create_task(pool.stop()))
            stop_began.set()
            await asyncio.sleep(0)  # stop() runs up to its first wait
        return await claim_next_job(worker_id, lease_ttl)

    monkeypatch.setattr(service, "claim_next_job", claim_as_stop_begins)
    late = await submit(service, "test.sleeps", seconds=30)
    async with asyncio.timeout(WAIT_S):
        await stop_began.wait()
        await stopping[0]

    assert (await service.get_job(finishing)).status is JobStatus.SUCCEEDED
    assert (await service.get_job(late)).status is JobStatus.QUEUED
    assert pool.running_jobs == []


# -- concurrency ----------------------------------------------------------------------


async def test_a_pool_of_three_runs_three_jobs_at_once(
    service: JobService, start_pool: StartPool
) -> None:
    pool = await start_pool(concurrency=3, lease_ttl_s=60)
    job_ids = [await submit(service, "test.sleeps", seconds=30) for _ in range(3)]

    async with asyncio.timeout(WAIT_S):
        await asyncio.gather(*(pipeline_started(service, job_id) for job_id in job_ids))

    jobs = [await service.get_job(job_id) for job_id in job_ids]
    assert [job.status for job in jobs] == [JobStatus.RUNNING] * 3
    assert {job.lease_owner for job in jobs} == {f"{pool.worker_id}#1"}
    assert sorted(pool.running_jobs) == sorted(job_ids)
    for job_id in job_ids:
        await service.request_cancel(job_id, TENANT)
    for job_id in job_ids:
        assert (await ended(service, job_id)).status is JobStatus.CANCELLED


async def test_an_output_json_cannot_encode_fails_the_job_instead_of_leaving_it_running(
    service: JobService, start_pool: StartPool
) -> None:
    """Regression: a set in the output made the terminal write raise, the job stayed
    `running` until its lease expired, and every attempt did the same."""
    await start_pool(concurrency=1)
    job_id = await submit(service, "test.not_json")

    job = await ended(service, job_id)

    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.code == ErrorCode.INVALID_OUTPUT
    assert job.attempt == 1


async def test_a_failed_lease_renewal_does_not_abandon_the_running_pipeline(
    service: JobService, start_pool: StartPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: any renewal error other than LeaseLost left the pipeline running
    unsupervised, freed its slot, and the job ran again once its lease expired."""
    renew_lease = service.renew_lease
    failures = 0

    async def renew_failing_once(job_id: str, lease: str, lease_ttl: float) -> bool:
        nonlocal failures
        if failures == 0:
            failures += 1
            raise OperationalError("UPDATE jobs", {}, Exception("database is locked"))
        return await renew_lease(job_id, lease, lease_ttl)

    monkeypatch.setattr(service, "renew_lease", renew_failing_once)
    await start_pool(concurrency=1, lease_ttl_s=30)
    job_id = await submit(service, "demo.synthetic", steps=10, step_ms=20)

    job = await ended(service, job_id)

    assert failures == 1
    assert job.status is JobStatus.SUCCEEDED
    assert job.attempt == 1
