"""Assembles store, bus, storage, service and workers from settings; shared by
`genwire serve` and `genwire worker`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from genwire.bus import Bus, bus_for
from genwire.config import Settings
from genwire.delivery import FeedHub, OthersWriting
from genwire.locks import (
    ProcessLock,
    acquire_server_lock,
    lock_out_workers,
    worker_processes_alive,
    workers_lock,
)
from genwire.pipelines import default_registry
from genwire.pipelines.base import PipelineRegistry
from genwire.pipelines.loading import registry_with
from genwire.providers.remote import RemoteProviders
from genwire.service import JobService
from genwire.storage import ArtifactStorage, open_storage
from genwire.store import SqlStore, Store
from genwire.tokens import StreamTokens
from genwire.webhooks import WebhookSender
from genwire.worker import LeaseReaper, OthersQueueing, WorkerPool, WorkerSettings

log = logging.getLogger("genwire")


def _others_writing(settings: Settings) -> OthersWriting:
    """Who else may append events an in-process bus never hears of (a bus that
    reaches other processes has the feeds' backstop instead).

    On the embedded SQLite database: `genwire worker` processes, which hold a shared
    lock beside it. Anywhere else (PostgreSQL): any node, so feeds look again every
    second while read.
    """
    url = settings.resolved_database_url
    if not url.startswith("sqlite:///"):
        return lambda: True
    database = Path(url.removeprefix("sqlite:///"))
    return lambda: worker_processes_alive(database)


def _others_queueing(settings: Settings, owns_data_dir: bool) -> OthersQueueing:
    """Who else may queue jobs an in-process bus never announces to this process's
    idle workers: for the one server of an embedded database, `genwire worker`
    processes (their reapers requeue, their ends free a tenant's cap); for a
    `genwire worker` or a node of a shared database, the servers: always."""
    if not owns_data_dir:
        return lambda: True
    return _others_writing(settings)  # the same processes: those that write the database


@dataclass
class Runtime:
    settings: Settings
    store: Store
    service: JobService
    pool: WorkerPool | None
    hub: FeedHub
    owns_data_dir: bool
    remote: RemoteProviders
    locks: list[ProcessLock] = field(default_factory=list)
    reaper: LeaseReaper | None = None
    webhooks: WebhookSender | None = None
    stream_tokens: StreamTokens | None = None

    @classmethod
    def build(
        cls,
        settings: Settings,
        registry: PipelineRegistry | None = None,
        *,
        own_data_dir: bool = True,
        server_lock: ProcessLock | None = None,
    ) -> Runtime:
        """`own_data_dir`: this process is the one server of an embedded data dir
        (`genwire serve`), so it locks it and recovers what a dead predecessor left."""
        # Annotated with the interfaces: mypy checks the classes implement them.
        store: Store = SqlStore(settings.resolved_database_url)
        storage: ArtifactStorage = open_storage(settings.storage_url, settings.data_dir)
        bus: Bus = bus_for(settings.bus_url)
        remote = RemoteProviders(settings.providers, store, bus, settings.public_url)
        service = JobService(
            store,
            bus,
            registry or registry_with(default_registry(), settings.pipeline_modules),
            storage,
            max_attempts=settings.max_attempts,
            remote=remote,
            configured_providers=remote.providers,
            max_running_per_tenant=settings.max_running_per_tenant,
            max_queued_per_tenant=settings.max_queued_per_tenant,
        )
        owns = own_data_dir and settings.uses_embedded_database
        pool = None
        if settings.workers > 0:
            # A bus that reaches other processes announces their jobs itself.
            unheard = None if bus.announced is not None else _others_queueing(settings, owns)
            pool = WorkerPool(
                service,
                WorkerSettings(
                    concurrency=settings.workers,
                    lease_ttl_s=settings.lease_ttl_s,
                    job_timeout_s=settings.job_timeout_s,
                    shutdown_grace_s=settings.shutdown_grace_s,
                ),
                others_queueing=unheard,
            )
        hub = FeedHub(
            store,
            service.bus,
            # A bus that reaches other processes has the backstop instead.
            others_writing=None if bus.announced is not None else _others_writing(settings),
            backstop_s=settings.bus_backstop_s,
        )
        locks = [server_lock] if server_lock else []
        return cls(settings, store, service, pool, hub, owns, remote, locks)

    @property
    def _sqlite_path(self) -> Path | None:
        url = self.settings.resolved_database_url
        return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None

    async def start(self) -> None:
        database = self._sqlite_path
        if self.owns_data_dir:
            if not self.locks:
                self.locks.append(acquire_server_lock(self.settings.data_dir))
        elif database is not None and self.pool is not None:
            shared = workers_lock(database)
            shared.try_acquire(shared=True)
            self.locks.append(shared)
        await self.store.migrate()
        await self.service.bus.start()
        # Every node sends: deliveries queued anywhere go out while any node runs.
        self.webhooks = WebhookSender.from_settings(self.store, self.service.bus, self.settings)
        self.stream_tokens = StreamTokens(self.webhooks.settings.key)
        self.webhooks.start()
        if self.owns_data_dir and database is not None:
            await self._recover_orphans(database)
        if self.pool is not None:
            await self.pool.start()
        else:
            # No workers here, but expired leases must still come back to the queue.
            self.reaper = LeaseReaper(self.service, self.settings.lease_ttl_s / 2)
            self.reaper.start()

    async def _recover_orphans(self, database: Path) -> None:
        """With no worker process alive on the database, every job still `running`
        lost its worker: requeue them now rather than when their leases expire."""
        workers_out = lock_out_workers(database)
        if workers_out is None:
            return
        try:
            recovered = await self.service.recover_all_running()
        finally:
            workers_out.release()
        if recovered:
            log.warning("requeued %d job(s) left running: %s", len(recovered), recovered)

    async def stop(self) -> None:
        if self.pool is not None:
            await self.pool.stop()
        if self.reaper is not None:
            await self.reaper.stop()
        if self.webhooks is not None:
            await self.webhooks.stop()
        await self.hub.close()
        await self.remote.close()
        await self.service.bus.close()
        await self.store.close()
        for lock in self.locks:
            lock.release()
