"""The one thread that runs a SQLite store's write transactions, in order.

`loop.run_in_executor` chains a `concurrent.futures.Future` (with its condition
lock) to an asyncio one through four callbacks. At a progress event's size that
hand-off cost the event loop more than the event's own statements, once per event;
here a transaction's outcome goes back to its loop in one `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]]


class WriterThread:
    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        # A daemon: a transaction cut off at interpreter exit was never committed,
        # and SQLite rolls it back; nobody waits for its answer any more.
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def run(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Queue `fn`; the future gets its value or its exception. A future cancelled
        before its turn comes is skipped, as an executor's would be."""
        if self._closed:
            raise RuntimeError("the store's writer has been shut down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, fn))
        return future

    def shutdown(self) -> None:
        """Run what is queued, then stop (blocking; safe to call twice)."""
        self._closed = True
        self._jobs.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, fn = job
            if future.cancelled():  # its caller is gone; read racily, as executors do
                continue
            try:
                outcome: tuple[bool, Any] = (True, fn())
            except BaseException as error:  # handed to the caller, whatever it is
                outcome = (False, error)
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
                loop.call_soon_threadsafe(_settle, future, outcome)


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.cancelled():
        return
    succeeded, value = outcome
    if succeeded:
        future.set_result(value)
    else:
        future.set_exception(value)
