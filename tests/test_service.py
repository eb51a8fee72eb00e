"""JobService: the one place that changes a job, on SQLite and PostgreSQL.

Jobs here are driven by hand (claim, report, end) so that every transition is
checked on its own; `test_worker.py` drives them with a real WorkerPool.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from genwire.bus import LocalBus, topics
from genwire.errors import IdempotencyMismatch, InputRejected, LeaseLost, StateConflict, UnknownId
from genwire.models import (
    EVENT_ID_WIDTH,
    ErrorCode,
    Event,
    EventType,
    JobError,
    JobStatus,
    StepState,
    utc_now,
)
from genwire.pipelines import PipelineRegistry
from genwire.service import CreateJob, JobService
from tests.pipelines import hangs

TENANT = "tenant-a"
SYNTHETIC = CreateJob("demo.synthetic", {"steps": 3, "step_ms": 1})
LEASE_TTL_S = 60.0
#: Far enough ahead that every lease taken in a test has expired by then.
AFTER_EVERY_LEASE = timedelta(seconds=LEASE_TTL_S * 10)


async def create(service: JobService, request: CreateJob = SYNTHETIC, tenant: str = TENANT) -> str:
    job, created = await service.create_job(tenant, request)
    assert created
    return job.id


async def claim(service: JobService, worker_id: str = "worker-1") -> str:
    job = await service.claim_next_job(worker_id, LEASE_TTL_S)
    assert job is not None
    return job.id


async def events_of(service: JobService, job_id: str) -> list[Event]:
    return await service.store.events_after(job_id)


async def expire_leases(service: JobService) -> list[str]:
    return await service.recover_expired_leases(now=utc_now() + AFTER_EVERY_LEASE)


def assert_one_terminal_event_last(events: list[Event], expected: EventType) -> None:
    terminal = [event for event in events if event.type.is_terminal]
    assert [event.type for event in terminal] == [expected]
    assert events[-1] is terminal[0]


# -- create ---------------------------------------------------------------------------


async def test_create_job_appends_a_queued_status_event_that_the_snapshot_points_at(
    service: JobService,
) -> None:
    job, created = await service.create_job(TENANT, SYNTHETIC)

    events = await events_of(service, job.id)
    assert created
    assert [event.type for event in events] == [EventType.JOB_STATUS]
    assert events[0].payload["status"] == "queued"
    assert events[0].payload["queue_position"] == 0
    assert events[0].payload["attempt"] == 1
    assert job.status is JobStatus.QUEUED
    assert job.last_event_id == events[0].id
    assert job.to_json()["last_event_id"] == events[0].id


async def test_queue_positions_count_the_jobs_ahead(service: JobService) -> None:
    job_ids = [await create(service) for _ in range(3)]

    first_events = [(await events_of(service, job_id))[0] for job_id in job_ids]
    assert [event.payload["queue_position"] for event in first_events] == [0, 1, 2]
    snapshots = [await service.get_job(job_id) for job_id in job_ids]
    assert [job.queue_position for job in snapshots] == [0, 1, 2]

    await claim(service)

    after_claim = [await service.get_job(job_id) for job_id in job_ids[1:]]
    assert [job.queue_position for job in after_claim] == [0, 1]


# -- the event log --------------------------------------------------------------------


async def test_event_ids_increase_as_numbers_and_as_zero_padded_strings(
    service: JobService,
) -> None:
    job_id = await create(service)
    other_id = await create(service)
    await claim(service)
    reporter = service.reporter(job_id, "worker-1#1")
    await reporter.step_status("work", StepState.STARTED, 0.0)
    await reporter.step_progress("work", 30.0, 33.3, "step 1", None)
    # Another job's event in between, so the job's own ids are not contiguous.
    await service.request_cancel(other_id)
    await reporter.step_progress("work", 60.0, 66.7, "step 2", None)
    await reporter.warning("almost there", "hint")
    await reporter.step_status("work", StepState.COMPLETED, 90.0)
    await service.complete_job(job_id, "worker-1#1", {"answer": 42})

    events = await events_of(service, job_id)
    seqs = [event.seq for event in events]
    ids = [event.id for event in events]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert all(len(event_id) == EVENT_ID_WIDTH and event_id.isdigit() for event_id in ids)
    assert ids == sorted(ids)
    assert [int(event_id) for event_id in ids] == seqs
    assert (await service.get_job(job_id)).last_event_id == ids[-1]


async def test_progress_reports_write_the_snapshot_and_never_move_progress_back(
    service: JobService,
) -> None:
    job_id = await create(service)
    await claim(service)
    reporter = service.reporter(job_id, "worker-1#1")
    await reporter.step_status("render", StepState.STARTED, 10.0)
    await reporter.step_progress("render", 40.0, 50.0, "frame 12 of 24", 3.5)
    after_progress = await service.get_job(job_id)
    await reporter.step_progress("render", 25.0, 60.0, None, None)  # a lower overall figure
    await reporter.warning("slow provider", "slow")

    job = await service.get_job(job_id)
    events = await events_of(service, job_id)
    assert (after_progress.phase, after_progress.progress) == ("render", 40.0)
    assert after_progress.message == "frame 12 of 24"
    assert (job.phase, job.progress, job.message) == ("render", 40.0, "frame 12 of 24")
    assert job.last_event_id == events[-1].id
    assert job.status is JobStatus.RUNNING
    assert job.lease_owner == "worker-1#1"
    progress_events = [event.payload for event in events if event.type is EventType.STEP_PROGRESS]
    assert progress_events[0]["progress"] == 40.0
    assert progress_events[0]["eta_s"] == 3.5
    assert progress_events[1]["progress"] == 40.0  # the snapshot's, not the lower report
    assert progress_events[1]["phase_progress"] == 60.0
    assert events[-1].type is EventType.WARNING
    assert events[-1].payload["message"] == "slow provider"


async def test_events_after_any_cursor_returns_exactly_the_events_after_it(
    service: JobService,
) -> None:
    job_id = await create(service)
    other_id = await create(service)
    await claim(service)
    reporter = service.reporter(job_id, "worker-1#1")
    await reporter.step_status("work", StepState.STARTED, 0.0)
    await service.request_cancel(other_id)
    for step in range(1, 6):
        await reporter.step_progress("work", 18.0 * step, 20.0 * step, None, None)
    await service.complete_job(job_id, "worker-1#1", {})

    events = await events_of(service, job_id)
    assert_one_terminal_event_last(events, EventType.JOB_COMPLETED)
    assert await service.store.events_after(job_id, 0) == events
    for index, event in enumerate(events):
        assert await service.store.events_after(job_id, event.seq) == events[index + 1 :]
    assert await service.store.events_after(job_id, events[-1].seq + 1000) == []


# -- claiming -------------------------------------------------------------------------


async def test_claim_next_job_hands_out_queued_jobs_oldest_first_once_each(
    service: JobService,
) -> None:
    job_ids = [await create(service) for _ in range(4)]

    claimed = [await claim(service, f"worker-{index}") for index in range(4)]

    assert claimed == job_ids
    assert await service.claim_next_job("worker-late", LEASE_TTL_S) is None
    job = await service.get_job(job_ids[0])
    assert job.status is JobStatus.RUNNING
    assert job.lease_owner == "worker-0#1"
    events = await events_of(service, job_ids[0])
    assert [event.payload["status"] for event in events] == ["queued", "running"]


async def test_concurrent_claimers_never_claim_the_same_job_twice(service: JobService) -> None:
    job_ids = {await create(service) for _ in range(12)}

    async with asyncio.timeout(30):
        results = await asyncio.gather(
            *(service.claim_next_job(f"worker-{index % 2}", LEASE_TTL_S) for index in range(24))
        )

    claimed = [job.id for job in results if job is not None]
    assert len(claimed) == len(set(claimed))
    # SKIP LOCKED may make a claimer come back empty while others hold rows; what is
    # left is still claimable, exactly once.
    while (job := await service.claim_next_job("worker-sweep", LEASE_TTL_S)) is not None:
        claimed.append(job.id)
    assert sorted(claimed) == sorted(job_ids)
    for job_id in job_ids:
        running = [e for e in await events_of(service, job_id) if e.payload["status"] == "running"]
        assert len(running) == 1


# -- leases ---------------------------------------------------------------------------


async def test_a_first_run_cannot_write_once_its_own_worker_runs_the_job_again(
    service: JobService,
) -> None:
    """Regression: the lease named the worker only, so when a pool's own reaper
    requeued a job and its dispatcher claimed it again, both runs could write and
    the first could end the job."""
    job_id = await create(service)
    first = await service.claim_next_job("worker-a", LEASE_TTL_S)
    assert await expire_leases(service) == [job_id]
    second = await service.claim_next_job("worker-a", LEASE_TTL_S)
    assert first is not None
    assert second is not None
    assert first.lease_owner != second.lease_owner

    with pytest.raises(LeaseLost):
        await service.complete_job(job_id, str(first.lease_owner), {"run": 1})
    completed = await service.complete_job(job_id, str(second.lease_owner), {"run": 2})
    assert completed.output == {"run": 2}


async def test_a_worker_writing_with_a_lease_it_lost_gets_lease_lost_and_changes_nothing(
    service: JobService,
) -> None:
    job_id = await create(service)
    await claim(service, "worker-old")
    assert await expire_leases(service) == [job_id]
    await claim(service, "worker-new")
    before = await events_of(service, job_id)
    snapshot_before = await service.get_job(job_id)

    stale = service.reporter(job_id, "worker-old#1")
    with pytest.raises(LeaseLost):
        await stale.step_status("work", StepState.STARTED, 0.0)
    with pytest.raises(LeaseLost):
        await stale.step_progress("work", 50.0, 50.0, "stale", None)
    with pytest.raises(LeaseLost):
        await stale.warning("stale", None)
    with pytest.raises(LeaseLost):
        await service.renew_lease(job_id, "worker-old#1", LEASE_TTL_S)
    with pytest.raises(LeaseLost):
        await service.complete_job(job_id, "worker-old#1", {})
    with pytest.raises(LeaseLost):
        await service.fail_job(job_id, "worker-old#1", JobError("boom", "stale"))
    with pytest.raises(LeaseLost):
        await service.cancel_running_job(job_id, "worker-old#1")

    assert await events_of(service, job_id) == before
    snapshot_after = await service.get_job(job_id)
    assert snapshot_after.status is JobStatus.RUNNING
    assert snapshot_after.lease_owner == "worker-new#2"
    assert snapshot_after.last_event_seq == snapshot_before.last_event_seq


async def test_renewing_a_held_lease_extends_it_and_reports_no_cancel(
    service: JobService,
) -> None:
    job_id = await create(service)
    await service.claim_next_job("worker-1", 1.0)
    before = await service.get_job(job_id)

    assert await service.renew_lease(job_id, "worker-1#1", LEASE_TTL_S) is False

    after = await service.get_job(job_id)
    assert before.lease_expires_at is not None
    assert after.lease_expires_at is not None
    assert after.lease_expires_at > before.lease_expires_at


# -- cancel ---------------------------------------------------------------------------


async def test_cancelling_a_queued_job_ends_it_with_one_cancelled_event_last(
    service: JobService,
) -> None:
    job_id = await create(service)

    job = await service.request_cancel(job_id, TENANT)

    assert job.status is JobStatus.CANCELLED
    assert job.finished_at is not None
    events = await events_of(service, job_id)
    assert_one_terminal_event_last(events, EventType.JOB_CANCELLED)
    assert events[-1].payload["status"] == "cancelled"
    assert job.last_event_id == events[-1].id
    assert await service.claim_next_job("worker-1", LEASE_TTL_S) is None


async def test_cancelling_a_running_job_flags_it_and_tells_its_worker(
    service: JobService,
) -> None:
    job_id = await create(service)
    await claim(service)

    with service.bus.subscribe(topics.cancel(job_id)) as cancel_notice:
        job = await service.request_cancel(job_id, TENANT)
        assert await cancel_notice.wait(timeout=10.0)  # only a guard against a hang

    assert job.status is JobStatus.RUNNING
    assert job.cancel_requested
    assert await service.renew_lease(job_id, "worker-1#1", LEASE_TTL_S) is True
    events = await events_of(service, job_id)
    assert events[-1].type is EventType.JOB_STATUS
    assert events[-1].payload["cancel_requested"] is True
    assert not any(event.type.is_terminal for event in events)


async def test_cancelling_a_running_job_twice_appends_no_second_event(
    service: JobService,
) -> None:
    job_id = await create(service)
    await claim(service)
    await service.request_cancel(job_id)
    before = await events_of(service, job_id)

    again = await service.request_cancel(job_id)

    assert again.cancel_requested
    assert await events_of(service, job_id) == before


async def test_cancelling_an_ended_job_is_a_conflict(service: JobService) -> None:
    job_id = await create(service)
    await service.request_cancel(job_id)

    with pytest.raises(StateConflict):
        await service.request_cancel(job_id)

    assert_one_terminal_event_last(await events_of(service, job_id), EventType.JOB_CANCELLED)


async def test_cancelling_an_unknown_job_is_not_found(service: JobService) -> None:
    with pytest.raises(UnknownId):
        await service.request_cancel("job_doesnotexist", TENANT)


async def test_cancelling_another_tenants_job_is_not_found_and_changes_nothing(
    service: JobService,
) -> None:
    job_id = await create(service, tenant="tenant-a")

    with pytest.raises(UnknownId):
        await service.request_cancel(job_id, "tenant-b")
    with pytest.raises(UnknownId):
        await service.get_job(job_id, "tenant-b")

    assert (await service.get_job(job_id)).status is JobStatus.QUEUED
    assert len(await events_of(service, job_id)) == 1


# -- recovery -------------------------------------------------------------------------


async def test_an_expired_lease_requeues_the_job_for_another_attempt(
    service: JobService,
) -> None:
    job_id = await create(service)
    await claim(service)
    reporter = service.reporter(job_id, "worker-1#1")
    await reporter.step_status("work", StepState.STARTED, 0.0)
    await reporter.step_progress("work", 40.0, 44.0, None, None)

    assert await service.recover_expired_leases() == []
    assert await expire_leases(service) == [job_id]

    job = await service.get_job(job_id)
    assert job.status is JobStatus.QUEUED
    assert job.attempt == 2
    assert job.progress == 0
    assert job.phase is None
    assert job.lease_owner is None
    assert job.queue_position == 0
    last = (await events_of(service, job_id))[-1]
    assert last.type is EventType.JOB_STATUS
    assert last.payload["status"] == "queued"
    assert last.payload["attempt"] == 2
    assert last.payload["progress"] == 0
    assert "stopped responding" in last.payload["message"]
    assert last.payload["reason"] == {
        "code": "worker_lost",
        "message": "its worker stopped responding",
    }
    assert last.payload["max_attempts"] == service.max_attempts
    assert "queue_position" in last.payload
    assert await claim(service, "worker-2") == job_id


async def test_a_job_out_of_attempts_fails_with_worker_lost(service: JobService) -> None:
    job_id = await create(service)

    for attempt in range(1, service.max_attempts + 1):
        await claim(service, f"worker-{attempt}")
        assert await expire_leases(service) == [job_id]

    job = await service.get_job(job_id)
    assert job.status is JobStatus.FAILED
    assert job.attempt == service.max_attempts
    assert job.error is not None
    assert job.error.code == ErrorCode.WORKER_LOST
    events = await events_of(service, job_id)
    assert_one_terminal_event_last(events, EventType.JOB_FAILED)
    assert events[-1].payload["error"]["code"] == "worker_lost"
    assert await service.claim_next_job("worker-x", LEASE_TTL_S) is None


async def test_an_expired_lease_of_a_job_being_cancelled_ends_it_cancelled(
    service: JobService,
) -> None:
    job_id = await create(service)
    await claim(service)
    await service.request_cancel(job_id)

    assert await expire_leases(service) == [job_id]

    job = await service.get_job(job_id)
    assert job.status is JobStatus.CANCELLED
    assert_one_terminal_event_last(await events_of(service, job_id), EventType.JOB_CANCELLED)


async def test_recover_all_running_requeues_every_running_job(service: JobService) -> None:
    running = [await create(service) for _ in range(2)]
    queued = await create(service)
    for index in range(2):
        await claim(service, f"worker-{index}")

    recovered = await service.recover_all_running()

    assert sorted(recovered) == sorted(running)
    for job_id in running:
        job = await service.get_job(job_id)
        assert job.status is JobStatus.QUEUED
        assert job.attempt == 2
        last = (await events_of(service, job_id))[-1]
        assert last.payload["status"] == "queued"
        assert "server stopped" in last.payload["message"]
        assert last.payload["reason"]["code"] == "server_restarted"
        assert last.payload["max_attempts"] == service.max_attempts
    assert (await service.get_job(queued)).attempt == 1


# -- idempotency ----------------------------------------------------------------------


async def test_the_same_idempotency_key_and_request_return_the_same_job(
    service: JobService,
) -> None:
    first, first_created = await service.create_job(TENANT, SYNTHETIC, "key-1")
    again, again_created = await service.create_job(TENANT, SYNTHETIC, "key-1")

    assert first_created
    assert not again_created
    assert again.id == first.id
    assert len(await events_of(service, first.id)) == 1
    assert len((await service.list_jobs(TENANT)).items) == 1


async def test_the_same_idempotency_key_with_another_request_is_a_mismatch(
    service: JobService,
) -> None:
    await service.create_job(TENANT, SYNTHETIC, "key-1")

    with pytest.raises(IdempotencyMismatch):
        await service.create_job(TENANT, CreateJob("demo.synthetic", {"steps": 4}), "key-1")

    assert len((await service.list_jobs(TENANT)).items) == 1


async def test_concurrent_creates_with_one_idempotency_key_all_get_the_same_job(
    service: JobService,
) -> None:
    """Regression: on PostgreSQL all but one of them failed on the key's primary key."""
    async with asyncio.timeout(30):
        results = await asyncio.gather(
            *(service.create_job(TENANT, SYNTHETIC, "key-1") for _ in range(5))
        )

    assert len({job.id for job, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, False, False, True]
    assert len((await service.list_jobs(TENANT)).items) == 1


async def test_idempotency_keys_belong_to_one_tenant(service: JobService) -> None:
    mine, _ = await service.create_job("tenant-a", SYNTHETIC, "key-1")
    theirs, created = await service.create_job("tenant-b", SYNTHETIC, "key-1")

    assert created
    assert theirs.id != mine.id


# -- validation -----------------------------------------------------------------------


async def test_input_failing_the_schema_is_invalid_with_field_paths(service: JobService) -> None:
    with pytest.raises(InputRejected) as caught:
        await service.create_job(
            TENANT, CreateJob("demo.synthetic", {"steps": -1, "surprise": True})
        )

    fields = {error.field for error in caught.value.errors}
    assert fields == {"input.steps", "input.surprise"}
    assert (await service.list_jobs(TENANT)).items == []


async def test_an_unknown_pipeline_is_invalid_input_on_the_pipeline_field(
    service: JobService,
) -> None:
    with pytest.raises(InputRejected) as caught:
        await service.create_job(TENANT, CreateJob("no.such.pipeline", {}))

    assert [error.field for error in caught.value.errors] == ["pipeline"]
    assert "demo.synthetic" in caught.value.errors[0].message


async def test_input_is_stored_with_the_schema_defaults_filled_in(service: JobService) -> None:
    job, _ = await service.create_job(TENANT, CreateJob("demo.synthetic", {"steps": 2}))

    assert job.input["steps"] == 2
    assert job.input["step_ms"] == 10.0


async def test_a_worker_only_claims_jobs_of_the_pipelines_it_has(service: JobService) -> None:
    """During a rolling deploy an older worker must leave a newer pipeline's jobs to
    the workers that have it, not fail them as unknown."""
    job_id = await create(service)
    older = JobService(service.store, LocalBus(), PipelineRegistry([hangs]), service.storage)

    assert await older.claim_next_job("older-worker", LEASE_TTL_S) is None
    claimed = await service.claim_next_job("newer-worker", LEASE_TTL_S)
    assert claimed is not None
    assert claimed.id == job_id


async def test_a_job_run_again_shows_only_the_files_of_its_last_run(
    service: JobService, tmp_path: Path
) -> None:
    """Regression: artifacts were listed per job, so a job run twice showed both
    runs' files while its output named only the second's."""
    job_id = await create(service)

    async def run_once(worker_id: str, content: bytes) -> str:
        job = await service.claim_next_job(worker_id, LEASE_TTL_S)
        assert job is not None
        assert job.lease_owner is not None
        source = tmp_path / f"{worker_id}.bin"
        source.write_bytes(content)
        artifact = await service.reporter(job_id, job.lease_owner).artifact(source, "out.bin", None)
        return artifact.id

    await run_once("worker-1", b"first run")
    assert await expire_leases(service) == [job_id]
    second = await run_once("worker-2", b"second run")
    job = await service.get_job(job_id)
    assert job.lease_owner is not None
    await service.complete_job(job_id, job.lease_owner, {})

    snapshot = await service.get_job(job_id)
    assert [artifact.id for artifact in snapshot.artifacts] == [second]
    completed = (await events_of(service, job_id))[-1]
    assert [artifact["id"] for artifact in completed.payload["artifacts"]] == [second]


async def test_a_graceful_release_does_not_use_up_the_attempts(service: JobService) -> None:
    """Three deploys during a long job must not fail it as worker_lost."""
    job_id = await create(service)
    for release in range(1, 5):
        job = await service.claim_next_job(f"worker-{release}", LEASE_TTL_S)
        assert job is not None
        assert job.lease_owner is not None
        await service.release_job(job_id, job.lease_owner, "its worker shut down")

    job = await service.get_job(job_id)
    assert job.status is JobStatus.QUEUED
    assert job.attempt == 5
    last = (await events_of(service, job_id))[-1]
    assert last.payload["reason"] == {"code": "released", "message": "its worker shut down"}
    assert last.payload["max_attempts"] == service.max_attempts + 4
