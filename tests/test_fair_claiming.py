"""Fair claiming across tenants (SPEC §3) and the per-tenant running cap, on SQLite
and PostgreSQL: one tenant's many jobs, or its endless ones, do not hold back
another tenant's one."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from genwire.apikeys import keys_file_line
from genwire.bus import LocalBus
from genwire.models import Job, JobStatus
from genwire.service import CreateJob, JobService
from genwire.store import SqlStore
from genwire.worker import WorkerPool, WorkerSettings
from tests.conftest import ServerProcess
from tests.waiting import wait_until

LEASE_TTL_S = 60.0
#: Upper bound of every wait: far above what each behaviour needs, far below a hang.
WAIT_S = 15.0
QUICK = CreateJob("demo.synthetic", {"steps": 1, "step_ms": 1})
#: Runs far longer than any test: only cancellation or the pool's stop ends it.
ENDLESS = CreateJob("test.sleeps", {"seconds": 3600})

CappedService = Callable[[int | None], JobService]


@pytest.fixture
def capped(service: JobService) -> CappedService:
    """JobServices on the test's store with a per-tenant running cap of their own."""

    def make(max_running_per_tenant: int | None) -> JobService:
        return JobService(
            service.store,
            service.bus,
            service.registry,
            service.storage,
            max_running_per_tenant=max_running_per_tenant,
        )

    return make


async def create(service: JobService, tenant: str, request: CreateJob = QUICK) -> str:
    job, created = await service.create_job(tenant, request)
    assert created
    return job.id


async def claim(service: JobService, worker_id: str = "worker-1") -> Job | None:
    return await service.claim_next_job(worker_id, LEASE_TTL_S)


async def claimed_ids(service: JobService, count: int) -> list[str]:
    ids = []
    for index in range(count):
        job = await claim(service, f"worker-{index}")
        assert job is not None
        ids.append(job.id)
    return ids


async def running_by_tenant(service: JobService, tenants: list[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for tenant in tenants:
        page = await service.list_jobs(tenant, status=JobStatus.RUNNING.value, limit=100)
        counts[tenant] = len(page.items)
    return counts


# -- fair order -----------------------------------------------------------------------


async def test_one_tenants_long_queue_does_not_hold_back_another_tenants_job(
    service: JobService,
) -> None:
    """Regression: claims took the oldest queued job of any tenant, so a job queued
    behind 10 000 of another tenant's waited for all of them."""
    flood = [await create(service, "tenant-a") for _ in range(100)]
    lone = await create(service, "tenant-b")

    assert await claimed_ids(service, 2) == [flood[0], lone]


async def test_tenants_take_turns_and_each_tenants_jobs_go_oldest_first(
    service: JobService,
) -> None:
    a1, a2, a3 = [await create(service, "tenant-a") for _ in range(3)]
    b1, b2 = [await create(service, "tenant-b") for _ in range(2)]
    c1 = await create(service, "tenant-c")

    # Fewest running first; among equals, the tenant whose oldest queued job is oldest.
    assert await claimed_ids(service, 6) == [a1, b1, c1, a2, b2, a3]
    assert await claim(service) is None


async def test_a_queued_job_s_position_counts_the_jobs_fair_claiming_takes_first(
    service: JobService,
) -> None:
    """Regression: the position counted every older queued job of every tenant, so a
    job behind another tenant's 100 said 100 ahead and was taken second."""
    flood = [await create(service, "tenant-a") for _ in range(100)]
    lone = await create(service, "tenant-b")
    a1, a2, a3 = flood[:3]
    b2 = await create(service, "tenant-b")

    async def ahead(job_id: str) -> int | None:
        return (await service.get_job(job_id)).queue_position

    # Rounds: a1 lone | a2 b2 | a3 … each a job of each tenant, oldest first.
    assert [await ahead(job) for job in (a1, lone, a2, b2, a3)] == [0, 1, 2, 3, 4]
    assert await ahead(flood[-1]) == 101
    assert await claimed_ids(service, 4) == [a1, lone, a2, b2]


# -- the per-tenant cap ---------------------------------------------------------------


async def test_a_tenant_at_its_cap_is_skipped_for_another_tenants_job(
    capped: CappedService,
) -> None:
    """Regression: a tenant's endless jobs took every slot, so another tenant's job
    never started."""
    service = capped(1)
    first = await create(service, "tenant-a")
    await create(service, "tenant-a")
    lone = await create(service, "tenant-b")
    running = await claim(service)
    assert running is not None
    assert running.id == first

    second = await claim(service)

    assert second is not None
    assert second.id == lone


async def test_a_cap_with_one_tenants_work_leaves_the_other_slots_idle(
    capped: CappedService,
) -> None:
    """The cap is hard: nothing preempts a running job, so a cap that gave way while
    the queue held one tenant's work would let its endless jobs fill every slot."""
    service = capped(2)
    job_ids = [await create(service, "tenant-a") for _ in range(3)]
    assert await claimed_ids(service, 2) == job_ids[:2]

    assert await claim(service) is None

    first = await service.get_job(job_ids[0])
    assert first.lease_owner is not None
    await service.complete_job(first.id, first.lease_owner, {})
    third = await claim(service)
    assert third is not None
    assert third.id == job_ids[2]


async def test_the_cap_counts_running_jobs_of_every_worker_not_one_process(
    capped: CappedService, database_url: str
) -> None:
    other_node = SqlStore(database_url)
    try:
        here = capped(1)
        elsewhere = JobService(
            other_node, LocalBus(), here.registry, here.storage, max_running_per_tenant=1
        )
        await create(here, "tenant-a")
        await create(here, "tenant-a")
        assert await claim(elsewhere, "other-node") is not None

        assert await claim(here) is None
    finally:
        await other_node.close()


async def test_concurrent_claimers_on_several_nodes_never_pass_the_cap_nor_claim_twice(
    capped: CappedService, database_url: str
) -> None:
    tenants = ["tenant-a", "tenant-b", "tenant-c"]
    here = capped(2)
    for _ in range(6):
        for tenant in tenants:
            await create(here, tenant)
    stores = [SqlStore(database_url) for _ in range(2)]
    nodes = [here] + [
        JobService(store, LocalBus(), here.registry, here.storage, max_running_per_tenant=2)
        for store in stores
    ]
    try:
        claims: list[Coroutine[Any, Any, Job | None]] = [
            nodes[index % len(nodes)].claim_next_job(f"worker-{index}", LEASE_TTL_S)
            for index in range(24)
        ]
        async with asyncio.timeout(30):
            results = await asyncio.gather(*claims)
    finally:
        for store in stores:
            await store.close()

    claimed = [job.id for job in results if job is not None]
    assert len(claimed) == len(set(claimed)) == 6
    assert await running_by_tenant(here, tenants) == dict.fromkeys(tenants, 2)
    for job_id in claimed:
        events = await here.store.events_after(job_id)
        assert [event.payload["status"] for event in events] == ["queued", "running"]


# -- with a real pool -----------------------------------------------------------------


@pytest.fixture
async def capped_pool(capped: CappedService) -> AsyncIterator[WorkerPool]:
    """A pool of two slots on a service that caps each tenant at one running job;
    it looks for work on its own only once an hour, so only wake-ups start jobs."""
    pool = WorkerPool(
        capped(1),
        WorkerSettings(
            concurrency=2,
            lease_ttl_s=5,
            poll_interval_s=3600,
            idle_backstop_s=3600,
            shutdown_grace_s=0.1,
        ),
    )
    await pool.start()
    yield pool
    async with asyncio.timeout(WAIT_S):
        await pool.stop()


async def test_a_tenants_endless_jobs_leave_a_slot_for_another_tenants_job(
    capped_pool: WorkerPool,
) -> None:
    service = capped_pool.service
    endless = [await create(service, "tenant-a", ENDLESS) for _ in range(2)]
    lone = await create(service, "tenant-b")

    job = await service.wait_until_ended(lone, WAIT_S)

    assert job.status is JobStatus.SUCCEEDED
    waiting = await service.get_job(endless[1])
    assert waiting.status is JobStatus.QUEUED


async def test_a_capped_tenants_next_job_starts_when_its_running_one_ends(
    capped_pool: WorkerPool,
) -> None:
    """Regression: with a free slot but its tenant at the cap, the pool slept until
    its next poll, as nothing woke it when the running job ended."""
    service = capped_pool.service
    job_ids = [await create(service, "tenant-a") for _ in range(2)]

    for job_id in job_ids:
        job = await service.wait_until_ended(job_id, WAIT_S)
        assert job.status is JobStatus.SUCCEEDED


# -- the default cap of `genwire serve` ------------------------------------------------


@pytest.mark.parametrize("cap", [None, "2"])
def test_serve_with_several_tenants_leaves_a_slot_for_another_tenants_job(
    serve_process: Callable[..., ServerProcess], tmp_path: Path, cap: str | None
) -> None:
    """Regression: with the defaults, two endless jobs of one tenant held both slots
    and another tenant's job never started. A cap set by hand still holds."""
    keys = tmp_path / "keys"
    keys.write_text(
        keys_file_line("key-of-alice-0001", "alice")
        + "\n"
        + keys_file_line("key-of-bob-000001", "bob")
        + "\n"
    )
    args = ["--keys-file", str(keys), "--workers", "2"]
    server = serve_process(*args, *(["--max-running-per-tenant", cap] if cap else []))
    endless = {"pipeline": "demo.synthetic", "input": {"steps": 1000, "step_ms": 1000}}
    with server.client() as client:
        alice = {"Authorization": "Bearer key-of-alice-0001"}
        bob = {"Authorization": "Bearer key-of-bob-000001"}
        first, second = (client.post("/api/jobs", json=endless, headers=alice).json() for _ in "ab")
        wait_until(
            lambda: (
                client.get(f"/api/jobs/{first['id']}", headers=alice).json()["status"] == "running"
            ),
            "alice's first job to run",
        )
        lone = client.post("/api/jobs", json=endless, headers=bob).json()

        def status(job: dict[str, Any], key: dict[str, str]) -> str:
            answer: str = client.get(f"/api/jobs/{job['id']}", headers=key).json()["status"]
            return answer

        if cap is None:
            wait_until(lambda: status(lone, bob) == "running", "bob's job to run")
            assert status(second, alice) == "queued"
            assert "--max-running-per-tenant 1: with 2 tenants" in server.log()
        else:
            wait_until(lambda: status(second, alice) == "running", "alice's second job to run")
            assert status(lone, bob) == "queued"
        for job, key in ((first, alice), (second, alice), (lone, bob)):
            client.post(f"/api/jobs/{job['id']}/cancel", headers=key)
