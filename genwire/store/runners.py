"""How a SQL store runs its transactions: each a synchronous function of one
connection, run whole — on SQLite in a writer thread (one writer, as SQLite allows
anyway) or a reader thread; on PostgreSQL in a greenlet over asyncpg.

Kept apart from `SqlStore`, which says what the statements are: this module owns
the engines, threads and pragmas, and turns the driver's errors into genwire's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from genwire.errors import StoreUnavailable
from genwire.store.transactions import on_sqlite_driver
from genwire.store.writer import WriterThread

T = TypeVar("T")
READER_THREADS = 4


class Runner(Protocol):
    async def write(
        self, fn: Callable[[Connection], T], committed: Callable[[T], None] | None = None
    ) -> T:
        """Run `fn` in a write transaction; `committed` gets its value once committed,
        before any other transaction of this runner commits."""

    async def read(self, fn: Callable[[Connection], T]) -> T: ...

    async def close(self) -> None: ...


def runner_for(url: str, sqlite_synchronous: str) -> Runner:
    """The runner of a `sqlite:///…` or `postgresql://…` URL, its errors translated."""
    if url.startswith("sqlite"):
        return _Translating(SqliteRunner(url, sqlite_synchronous))
    return _Translating(_PostgresRunner(_driver_url(url)))


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _driver_url(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


class _Translating:
    """A runner whose database errors leave it as genwire's `StoreUnavailable` (the
    driver's error as its cause): nothing above the store knows SQLAlchemy."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    async def write(
        self, fn: Callable[[Connection], T], committed: Callable[[T], None] | None = None
    ) -> T:
        try:
            return await self.runner.write(fn, committed)
        except DBAPIError as error:
            raise StoreUnavailable(str(error.orig or error)) from error

    async def read(self, fn: Callable[[Connection], T]) -> T:
        try:
            return await self.runner.read(fn)
        except DBAPIError as error:
            raise StoreUnavailable(str(error.orig or error)) from error

    async def close(self) -> None:
        await self.runner.close()


class SqliteRunner:
    """One writer thread and a few reader threads, each with its own connections."""

    def __init__(self, url: str, synchronous: str) -> None:
        self._write_engine = self._engine(url, 1, "BEGIN IMMEDIATE", synchronous)
        self._read_engine = self._engine(url, READER_THREADS, "BEGIN", synchronous)
        self._writer = WriterThread("genwire-sqlite-writer")
        #: the writer thread's connection, kept open between its transactions
        self._write_connection: Connection | None = None
        self._readers = ThreadPoolExecutor(
            READER_THREADS, thread_name_prefix="genwire-sqlite-reader"
        )

    @staticmethod
    def _engine(url: str, size: int, begin: str, synchronous: str) -> Engine:
        engine = sa.create_engine(
            url,
            pool_size=size,
            max_overflow=0,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            connect_args={"timeout": 30, "check_same_thread": False},
        )

        @sa_event.listens_for(engine, "connect")
        def _configure(dbapi_connection: Any, _record: Any) -> None:
            # Transactions are begun by the hook below: pysqlite's implicit BEGIN
            # would defer the write lock and invite deadlocks between processes.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @sa_event.listens_for(engine, "begin")
        def _begin(connection: Connection) -> None:
            # On the driver, a tenth of SQLAlchemy's cost; "database is locked" here
            # is still a DBAPIError like any other store error.
            driver = connection.connection.driver_connection
            assert driver is not None  # a connection that is open
            on_sqlite_driver(driver, begin)

        return engine

    async def write(
        self, fn: Callable[[Connection], T], committed: Callable[[T], None] | None = None
    ) -> T:
        return await self._writer.run(lambda: self._commit(fn, committed))

    def _commit(self, fn: Callable[[Connection], T], committed: Callable[[T], None] | None) -> T:
        connection = self._writer_connection()
        try:
            with connection.begin():
                value = fn(connection)
        except BaseException:
            # Some failed commits leave SQLite's transaction open, and SQLAlchemy
            # leaves its rollback to the pool: give the connection back, for a new one.
            self._close_writer_connection()
            raise
        if committed is not None:
            committed(value)  # still in the one writer thread: in commit order
        return value

    def _writer_connection(self) -> Connection:
        """Kept between transactions: a pool check-out and check-in (with its reset)
        cost more than an event's statements, and they came between the commit and
        the wake-up of the event's readers."""
        if self._write_connection is None:
            self._write_connection = self._write_engine.connect()
        return self._write_connection

    def _close_writer_connection(self) -> None:
        connection, self._write_connection = self._write_connection, None
        if connection is not None:
            connection.close()

    async def read(self, fn: Callable[[Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._readers, self._in_transaction, self._read_engine, fn
        )

    @staticmethod
    def _in_transaction(engine: Engine, fn: Callable[[Connection], T]) -> T:
        with engine.begin() as connection:
            return fn(connection)

    async def close(self) -> None:
        await asyncio.to_thread(self._writer.shutdown)
        await asyncio.to_thread(self._readers.shutdown, True)
        self._close_writer_connection()  # its thread has finished every write
        self._write_engine.dispose()
        self._read_engine.dispose()


class _PostgresRunner:
    def __init__(self, url: str) -> None:
        self._engine: AsyncEngine = create_async_engine(
            url,
            pool_size=10,
            max_overflow=10,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
        )

    async def write(
        self, fn: Callable[[Connection], T], committed: Callable[[T], None] | None = None
    ) -> T:
        async with self._engine.begin() as connection:
            value = await connection.run_sync(fn)
        if committed is not None:
            committed(value)
        return value

    async def read(self, fn: Callable[[Connection], T]) -> T:
        # One snapshot for every statement of a read (a job and its artifacts).
        async with self._engine.connect() as connection:
            await connection.execution_options(isolation_level="REPEATABLE READ")
            return await connection.run_sync(fn)

    async def close(self) -> None:
        await self._engine.dispose()
