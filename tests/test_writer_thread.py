"""The SQLite store's writer thread: transactions run one at a time, in order, and
each outcome reaches the loop that asked for it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from genwire.store import SqlStore
from genwire.store.writer import WriterThread
from tests.waiting import eventually


@pytest.fixture
def writer() -> Iterator[WriterThread]:
    thread = WriterThread("test-writer")
    yield thread
    thread.shutdown()


async def test_jobs_run_in_order_on_one_thread_and_return_their_values(
    writer: WriterThread,
) -> None:
    ran: list[tuple[int, str]] = []

    def job(n: int) -> int:
        ran.append((n, threading.current_thread().name))
        return n * n

    values = await asyncio.gather(*(writer.run(lambda n=n: job(n)) for n in range(50)))

    assert values == [n * n for n in range(50)]
    assert [n for n, _ in ran] == list(range(50))
    assert {name for _, name in ran} == {"test-writer"}


async def test_an_exception_reaches_the_caller_and_the_thread_goes_on(
    writer: WriterThread,
) -> None:
    failure = ValueError("refused")

    def fails() -> None:
        raise failure

    with pytest.raises(ValueError, match="refused") as raised:
        await writer.run(fails)
    assert raised.value is failure
    assert await writer.run(lambda: "next") == "next"


async def test_a_job_cancelled_before_its_turn_never_runs(writer: WriterThread) -> None:
    release = threading.Event()
    ran: list[str] = []
    blocker = writer.run(lambda: release.wait(10))
    skipped = writer.run(lambda: ran.append("skipped"))
    skipped.cancel()
    release.set()

    assert await blocker is True
    assert await writer.run(lambda: ran.append("after")) is None
    assert ran == ["after"]


async def test_a_caller_cancelled_while_its_job_runs_leaves_the_job_whole(
    writer: WriterThread,
) -> None:
    started, release = threading.Event(), threading.Event()
    done: list[str] = []
    loop_errors: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: loop_errors.append(context))

    def slow() -> str:
        started.set()
        release.wait(10)
        done.append("committed")
        return "value"

    async def caller() -> str:
        return await writer.run(slow)

    task = asyncio.create_task(caller())
    await asyncio.to_thread(started.wait, 10)
    task.cancel()
    await asyncio.sleep(0)  # the task's await of the job's future is cancelled too
    release.set()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert await writer.run(lambda: "next") == "next"  # after the outcome came back
    assert done == ["committed"]
    assert loop_errors == []  # the outcome of a cancelled caller is dropped quietly


async def test_shutdown_runs_what_is_queued_then_refuses_more() -> None:
    writer = WriterThread("test-writer")
    release = threading.Event()
    ran: list[int] = []
    first = writer.run(lambda: release.wait(10))
    queued = writer.run(lambda: ran.append(1))
    stopping = asyncio.ensure_future(asyncio.to_thread(writer.shutdown))
    await eventually(lambda: writer._closed, "the writer to close")  # while a job runs
    with pytest.raises(RuntimeError, match="shut down"):
        writer.run(lambda: None)
    release.set()
    await stopping

    assert await first is True
    await queued
    assert ran == [1]
    writer.shutdown()  # a second time is harmless


def test_a_writer_dropped_without_shutdown_lets_its_thread_end() -> None:
    writer = WriterThread("test-dropped-writer")

    async def one_job(on: WriterThread) -> int:
        return await on.run(lambda: 1)

    assert asyncio.run(one_job(writer)) == 1
    thread = writer._thread
    assert thread is not None
    del writer
    gc.collect()
    thread.join(10)
    assert not thread.is_alive()


def test_a_store_dropped_without_closing_lets_go_of_its_database(tmp_path: Path) -> None:
    database = tmp_path / "dropped.db"
    store = SqlStore(f"sqlite:///{database}")
    asyncio.run(store.migrate())
    assert _open_files_under(tmp_path)

    del store
    gc.collect()

    assert _open_files_under(tmp_path) == []
    assert "genwire-sqlite-writer" not in {thread.name for thread in threading.enumerate()}


def _open_files_under(folder: Path) -> list[str]:
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
    return [target for target in targets if target.startswith(str(folder))]


def test_a_loop_that_closed_while_its_job_ran_does_not_stop_the_thread() -> None:
    writer = WriterThread("test-writer")
    started, release = threading.Event(), threading.Event()

    async def leave_while_running() -> None:
        writer.run(lambda: (started.set(), release.wait(10)))
        await asyncio.to_thread(started.wait, 10)

    asyncio.run(leave_while_running())  # this loop is closed before the job ends
    release.set()

    async def next_job() -> str:
        return await asyncio.wait_for(writer.run(lambda: "still here"), 10)

    try:
        assert asyncio.run(next_job()) == "still here"
    finally:
        writer.shutdown()
