"""WorkerPools started by a test and stopped when it ends (see the fixtures that
use `PoolStarter`)."""

from __future__ import annotations

import asyncio
from typing import Any

from genwire.service import JobService
from genwire.worker import OthersQueueing, WorkerPool, WorkerSettings

#: Upper bound of stopping them all: far above what it needs, far below a hang.
STOP_WITHIN_S = 15.0


class PoolStarter:
    """`await start(service, others_queueing, **settings)` starts a pool; `stop_all()`
    stops every one."""

    def __init__(self) -> None:
        self.pools: list[WorkerPool] = []

    async def __call__(
        self, service: JobService, others_queueing: OthersQueueing | None = None, **settings: Any
    ) -> WorkerPool:
        # A short shutdown grace so that a pool stopped with a job still running
        # (a test that leaves one) releases it instead of waiting it out.
        settings.setdefault("shutdown_grace_s", 0.5)
        pool = WorkerPool(service, WorkerSettings(**settings), others_queueing)
        self.pools.append(pool)
        await pool.start()
        return pool

    async def stop_all(self) -> None:
        async with asyncio.timeout(STOP_WITHIN_S):
            for pool in self.pools:
                await pool.stop()
