"""Assembles store, bus, storage, service and workers from settings; shared by
`genwire serve` and `genwire worker`."""

from __future__ import annotations

import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from genwire.bus import LocalBus
from genwire.config import Settings
from genwire.pipelines import default_registry
from genwire.pipelines.base import PipelineRegistry
from genwire.service import JobService
from genwire.storage import LocalStorage
from genwire.store import Store
from genwire.worker import WorkerPool, WorkerSettings

log = logging.getLogger("genwire")


class DataDirInUse(RuntimeError):
    pass


class DataDirLock:
    """An exclusive lock on the data dir, held for the life of the process.

    The kernel drops it when the process dies (SIGKILL included), so whoever gets
    it knows no other genwire is running jobs from this database.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "genwire.lock"
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise DataDirInUse(
                f"the data dir {self.path.parent} is in use by {owner}; "
                "stop it or choose another --data-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"genwire pid {os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


@dataclass
class Runtime:
    settings: Settings
    store: Store
    service: JobService
    pool: WorkerPool | None
    lock: DataDirLock | None

    @classmethod
    def build(
        cls,
        settings: Settings,
        registry: PipelineRegistry | None = None,
        *,
        own_data_dir: bool = True,
    ) -> Runtime:
        """`own_data_dir`: this process is the one server of an embedded data dir
        (`genwire serve`), so it locks it and recovers what a dead predecessor left."""
        embedded = own_data_dir and settings.uses_embedded_database
        lock = DataDirLock(settings.data_dir) if embedded else None
        store = Store(settings.resolved_database_url)
        storage = LocalStorage(settings.data_dir / "files")
        service = JobService(
            store,
            LocalBus(),
            registry or default_registry(),
            storage,
            max_attempts=settings.max_attempts,
        )
        pool = None
        if settings.workers > 0:
            pool = WorkerPool(
                service,
                WorkerSettings(
                    concurrency=settings.workers,
                    lease_ttl_s=settings.lease_ttl_s,
                    job_timeout_s=settings.job_timeout_s,
                    shutdown_grace_s=settings.shutdown_grace_s,
                ),
            )
        return cls(settings, store, service, pool, lock)

    async def start(self) -> None:
        if self.lock is not None:
            self.lock.acquire()
        await self.store.migrate()
        await self.service.bus.start()
        if self.pool is not None:
            await self.pool.start(recover_running=self.lock is not None)

    async def stop(self) -> None:
        if self.pool is not None:
            await self.pool.stop()
        await self.service.bus.close()
        await self.store.close()
        if self.lock is not None:
            self.lock.release()
