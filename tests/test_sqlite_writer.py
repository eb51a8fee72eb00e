"""The SQLite runner keeps its writer thread's connection between transactions; a
transaction that fails, at its BEGIN, at its COMMIT or in an event's statements
(which run on the driver itself), leaves the next one as good as new. Its error is
SQLAlchemy's inside the store and genwire's `StoreUnavailable` outside it (which
the worker retries)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from genwire.bus import LocalBus
from genwire.errors import StoreUnavailable
from genwire.models import StepState
from genwire.service import CreateJob, JobService
from genwire.storage import LocalStorage
from genwire.store import SqlStore
from genwire.store.runners import SqliteRunner
from tests.pipelines import test_registry as pipelines_for_tests


@pytest.fixture
async def runner(tmp_path: Path) -> AsyncIterator[SqliteRunner]:
    runner = SqliteRunner(f"sqlite:///{tmp_path / 'store.db'}", "FULL")
    await runner.write(lambda c: c.exec_driver_sql("CREATE TABLE parents (id INTEGER PRIMARY KEY)"))
    await runner.write(
        lambda c: c.exec_driver_sql(
            "CREATE TABLE children (parent INTEGER REFERENCES parents(id)"
            " DEFERRABLE INITIALLY DEFERRED)"
        )
    )
    yield runner
    await runner.close()  # closing again is harmless (the last test)


def insert(table: str, value: int) -> Callable[[Connection], None]:
    def run(connection: Connection) -> None:
        connection.exec_driver_sql(f"INSERT INTO {table} VALUES ({value})")

    return run


async def rows(runner: SqliteRunner, table: str) -> list[int]:
    result = await runner.read(lambda c: c.exec_driver_sql(f"SELECT * FROM {table}").all())
    return [row[0] for row in result]


async def test_a_locked_database_at_begin_is_a_dbapi_error_and_the_next_write_works(
    runner: SqliteRunner, tmp_path: Path
) -> None:
    # The kept connection keeps this setting: wait 0.1 s for the lock, not 30.
    await runner.write(lambda c: c.exec_driver_sql("PRAGMA busy_timeout=100"))
    other = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with pytest.raises(DBAPIError, match="database is locked"):
            await runner.write(insert("parents", 1))
        other.execute("ROLLBACK")
        await runner.write(insert("parents", 2))
    finally:
        other.close()

    assert await rows(runner, "parents") == [2]


async def test_a_failed_commit_leaves_no_transaction_behind(runner: SqliteRunner) -> None:
    """A deferred foreign key fails at COMMIT, where SQLite keeps the transaction
    open; the runner must not carry it into its next write."""
    with pytest.raises(DBAPIError, match="FOREIGN KEY"):
        await runner.write(insert("children", 5))
    await runner.write(insert("parents", 1))
    await runner.write(insert("children", 1))

    assert await rows(runner, "parents") == [1]
    assert await rows(runner, "children") == [1]


async def test_closing_twice_is_harmless(runner: SqliteRunner) -> None:
    await runner.write(insert("parents", 1))
    await runner.close()
    await runner.close()
    assert runner._write_connection is None


async def test_an_event_the_driver_refuses_is_a_dbapi_error_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    database = tmp_path / "genwire.db"
    store = SqlStore(f"sqlite:///{database}")
    await store.migrate()
    service = JobService(store, LocalBus(), pipelines_for_tests(), LocalStorage(tmp_path / "files"))
    try:
        job, _ = await service.create_job("t", CreateJob("demo.synthetic", {"steps": 3}))
        claimed = await service.claim_next_job("worker", 60.0)
        assert claimed is not None
        reporter = service.reporter(job.id, str(claimed.lease_owner))
        await reporter.step_progress("work", 10.0, 10.0, "one", None)
        before = await service.get_job(job.id)
        with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as other:
            other.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON events"
                " BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
            )
            with pytest.raises(StoreUnavailable, match="refused by a trigger") as refused_once:
                await reporter.step_progress("work", 20.0, 20.0, "two", None)
            assert isinstance(refused_once.value.__cause__, DBAPIError)
            with pytest.raises(StoreUnavailable, match="refused by a trigger"):
                await reporter.step_status("work", StepState.COMPLETED, 30.0)
            refused = await service.get_job(job.id)
            other.execute("DROP TRIGGER refuse")
        await reporter.step_progress("work", 40.0, 40.0, "three", None)
        after = await service.get_job(job.id)
        messages = [event.payload.get("message") for event in await store.events_after(job.id)]
    finally:
        await store.close()

    assert (refused.progress, refused.message) == (10.0, "one")
    assert refused.last_event_seq == before.last_event_seq
    assert (after.progress, after.message) == (40.0, "three")
    assert messages[-2:] == ["one", "three"]
