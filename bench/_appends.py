"""The real fenced append path, driven as fast as it goes: a claimed job's reporter
appending step-progress events (lock the job, check the lease, insert the event,
update the snapshot, commit, publish)."""

from __future__ import annotations

import time

from genwire.reporter import AttemptReporter
from genwire.service import CreateJob, JobService

TENANT = "bench"
LEASE_TTL_S = 3600.0


async def claimed_reporter(service: JobService, index: int) -> AttemptReporter:
    """Creates a job and claims one under the fake worker id `bench-worker-<index>`."""
    await service.create_job(TENANT, CreateJob("demo.synthetic", {"steps": 0}))
    worker_id = f"bench-worker-{index}"
    job = await service.claim_next_job(worker_id, LEASE_TTL_S)
    if job is None:
        raise RuntimeError("the job just created could not be claimed")
    assert job.lease_owner is not None
    return service.reporter(job.id, job.lease_owner)


async def append_steps(
    reporter: AttemptReporter, count: int, latencies: list[float], until: float | None = None
) -> None:
    """Appends `count` step-progress events one after another, or fewer if the wall
    clock (`time.time()`) passes `until`; each append's duration goes to `latencies`."""
    for step in range(1, count + 1):
        if until is not None and time.time() >= until:
            return
        progress = 90.0 * step / count
        before = time.perf_counter()
        await reporter.step_progress(
            "work", progress, 100.0 * step / count, f"step {step}/{count}", eta_s=0.0
        )
        latencies.append(time.perf_counter() - before)
