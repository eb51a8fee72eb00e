"""An idle WorkerPool waits for the bus's `queue` wake-up instead of polling the
store; it polls as before where a queued job may not wake it (another process
queues on a bus that reaches this one alone, the bus is cut off), and a long
backstop finds a job whose wake-up was lost.

Each pool here is given intervals that leave one way to find a job, so that the
job's claim proves that way works. Claims are counted at the store's claim query."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import pytest

from genwire.bus import AnnouncedEvents, LocalBus
from genwire.bus.redis import RedisBus
from genwire.interfaces import Bus
from genwire.models import JobStatus
from genwire.service import CreateJob, JobService
from genwire.storage import LocalStorage
from genwire.store import SqlStore, Store
from genwire.store.transactions import WriteTx
from genwire.worker import OthersQueueing, WorkerPool
from tests import pipelines as test_pipelines
from tests.pools import PoolStarter
from tests.waiting import eventually

TENANT = "tenant-a"
WAIT_S = 15.0  #: a ceiling that fails a hung test, never an asserted speed
HOUR_S = 3600.0  #: an interval that never comes round within a test


class StartPool(Protocol):
    async def __call__(
        self, service: JobService, others_queueing: OthersQueueing | None = None, **settings: Any
    ) -> WorkerPool: ...


@pytest.fixture
async def start_pool() -> AsyncIterator[StartPool]:
    starter = PoolStarter()
    yield starter
    await starter.stop_all()


@pytest.fixture
def claims(monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """One entry per claim query any store runs (SQLite runs them in its writer thread)."""
    counted: list[None] = []
    claim_queued = WriteTx.claim_queued

    def counting(tx: WriteTx, *args: Any, **kwargs: Any) -> Any:
        counted.append(None)
        return claim_queued(tx, *args, **kwargs)

    monkeypatch.setattr(WriteTx, "claim_queued", counting)
    return counted


def service_on(store: Store, bus: Bus, tmp_path: Path) -> JobService:
    return JobService(store, bus, test_pipelines.test_registry(), LocalStorage(tmp_path / "files"))


@pytest.fixture
def unannounced(store: Store, tmp_path: Path) -> Callable[[], Awaitable[str]]:
    """Queue a job as another process would whose bus reaches nobody here."""
    silent = service_on(store, LocalBus(), tmp_path)

    async def queue() -> str:
        job, _ = await silent.create_job(TENANT, CreateJob("test.sleeps", {"seconds": 0}))
        return job.id

    return queue


class CrossProcessBus(LocalBus):
    """A bus that says it reaches other processes, its subscription up or down as
    the test sets it (what `RedisBus` reports, without Redis)."""

    def __init__(self) -> None:
        super().__init__()
        self.state = AnnouncedEvents()
        self.state.connected = True

    @property
    def announced(self) -> AnnouncedEvents:
        return self.state


async def claimed(service: JobService, job_id: str) -> None:
    job = await service.wait_until_ended(job_id, WAIT_S)
    assert job.status is JobStatus.SUCCEEDED, f"{job_id} is {job.status} after {WAIT_S} s"


async def test_an_idle_pool_on_a_bus_does_not_poll_the_store(
    store: Store, tmp_path: Path, start_pool: StartPool, claims: list[None]
) -> None:
    """Regression: an idle pool claimed every poll interval though the bus would
    wake it for every queued job."""
    poll_s = 0.01
    await start_pool(service_on(store, LocalBus(), tmp_path), poll_interval_s=poll_s)
    await eventually(lambda: len(claims) >= 1, "the pool's first claim")

    await asyncio.sleep(50 * poll_s)  # a window of 50 poll intervals

    assert len(claims) == 1


async def test_a_job_queued_on_the_bus_wakes_an_idle_pool(
    store: Store, tmp_path: Path, start_pool: StartPool, claims: list[None]
) -> None:
    service = service_on(store, LocalBus(), tmp_path)
    await start_pool(service, poll_interval_s=HOUR_S, idle_backstop_s=HOUR_S)
    await eventually(lambda: len(claims) >= 1, "the pool's first claim")

    job, _ = await service.create_job(TENANT, CreateJob("test.sleeps", {"seconds": 0}))

    await claimed(service, job.id)


async def test_a_job_whose_wake_up_was_lost_is_claimed_by_the_backstop(
    store: Store,
    tmp_path: Path,
    start_pool: StartPool,
    claims: list[None],
    unannounced: Callable[[], Awaitable[str]],
) -> None:
    service = service_on(store, LocalBus(), tmp_path)
    await start_pool(service, poll_interval_s=HOUR_S, idle_backstop_s=0.2)
    await eventually(lambda: len(claims) >= 1, "the pool's first claim")

    job_id = await unannounced()

    await claimed(service, job_id)


async def test_an_idle_pool_polls_while_another_process_may_queue_unheard(
    store: Store,
    tmp_path: Path,
    start_pool: StartPool,
    claims: list[None],
    unannounced: Callable[[], Awaitable[str]],
) -> None:
    service = service_on(store, LocalBus(), tmp_path)
    await start_pool(service, lambda: True, poll_interval_s=0.05, idle_backstop_s=HOUR_S)
    await eventually(lambda: len(claims) >= 1, "the pool's first claim")

    job_id = await unannounced()

    await claimed(service, job_id)


async def test_an_idle_pool_stops_polling_once_no_other_process_queues(
    store: Store, tmp_path: Path, start_pool: StartPool, claims: list[None]
) -> None:
    others_alive = True
    asked: list[None] = []

    def others_queueing() -> bool:
        asked.append(None)
        return others_alive

    service = service_on(store, LocalBus(), tmp_path)
    await start_pool(service, others_queueing, poll_interval_s=0.01, idle_backstop_s=HOUR_S)
    await eventually(lambda: len(claims) >= 3, "claims while another process may queue")
    others_alive = False
    asked.clear()
    await eventually(lambda: len(asked) >= 3, "the pool asks again")
    settled = len(claims)
    asked.clear()

    await eventually(lambda: len(asked) >= 20, "20 more polls of nobody else")

    assert len(claims) == settled


async def test_an_idle_pool_polls_while_its_bus_is_cut_off_and_looks_once_it_is_back(
    store: Store,
    tmp_path: Path,
    start_pool: StartPool,
    claims: list[None],
    unannounced: Callable[[], Awaitable[str]],
) -> None:
    bus = CrossProcessBus()
    service = service_on(store, bus, tmp_path)
    await start_pool(service, poll_interval_s=0.05, idle_backstop_s=HOUR_S)
    await eventually(lambda: len(claims) >= 1, "the pool's first claim")

    bus.state.connected = False
    await claimed(service, await unannounced())

    # Back, after an outage in which announcements went unheard: one look.
    bus.state.connected = True
    bus.state.outages += 1
    await claimed(service, await unannounced())


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_job_queued_by_another_node_wakes_an_idle_pool_through_redis(
    store: SqlStore,
    redis_url: str,
    tmp_path: Path,
    start_pool: StartPool,
    claims: list[None],
) -> None:
    here, there = RedisBus(redis_url), RedisBus(redis_url)
    await here.start()
    await there.start()
    try:
        service = service_on(store, here, tmp_path)
        await start_pool(service, poll_interval_s=HOUR_S, idle_backstop_s=HOUR_S)
        await eventually(lambda: len(claims) >= 1, "the pool's first claim")
        other_node = service_on(store, there, tmp_path)

        job, _ = await other_node.create_job(TENANT, CreateJob("test.sleeps", {"seconds": 0}))

        await claimed(service, job.id)
    finally:
        await here.close()
        await there.close()
