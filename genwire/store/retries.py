"""A write that must not be lost, tried again while the store is unavailable: the
end of a job (else its lease runs out and it runs all over again), or a provider
job's id (else a rerun cannot follow it)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from genwire.errors import StoreUnavailable

log = logging.getLogger("genwire.store")
T = TypeVar("T")

#: Pauses between tries; the last try's failure is raised.
STORE_RETRY_BACKOFF_S = (0.2, 1.0, 3.0, 10.0)


async def written_despite_outages(write: Callable[[], Awaitable[T]], what: str) -> T:
    """`write()`, tried again after each pause while it raises StoreUnavailable."""
    for pause in STORE_RETRY_BACKOFF_S:
        try:
            return await write()
        except StoreUnavailable:
            log.exception("%s failed; trying again in %g s", what, pause)
            await asyncio.sleep(pause)
    return await write()
