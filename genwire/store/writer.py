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
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]]


class WriterThread:
    """Started by the first write. The thread holds only the queue, never this
    object: a store that is dropped without being closed still lets it go (the
    thread then ends), with its engines and files."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # no job may slip in behind shutdown's marker
        self._closed = False
        self._thread: threading.Thread | None = None

    def run(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Queue `fn`; the future gets its value or its exception. A future cancelled
        before its turn comes is skipped, as an executor's would be."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the store's writer has been shut down")
            if self._thread is None:
                self._thread = self._start()
            self._jobs.put((loop, future, fn))
        return future

    def _start(self) -> threading.Thread:
        # A daemon: a transaction cut off at interpreter exit was never committed,
        # and SQLite rolls it back; nobody waits for its answer any more.
        thread = threading.Thread(target=_serve, args=(self._jobs,), name=self._name, daemon=True)
        thread.start()
        weakref.finalize(self, self._jobs.put, None)
        return thread

    def shutdown(self) -> None:
        """Run what is queued, then stop (blocking; safe to call twice)."""
        with self._lock:
            self._closed = True
            self._jobs.put(None)
            thread = self._thread
        if thread is not None:
            thread.join()


def _serve(jobs: queue.SimpleQueue[_Job | None]) -> None:
    while True:
        job = jobs.get()
        if job is None:
            return
        _run_one(*job)
        del job  # not kept while waiting: it holds the caller's loop, result and store


def _run_one(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], fn: Callable[[], Any]
) -> None:
    if future.cancelled():  # its caller is gone; read racily, as executors do
        return
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
