"""The store on SQLite (WAL) and PostgreSQL through one SQLAlchemy Core layer.

Every store operation is a synchronous function of one connection, run whole by a
runner: on SQLite in a writer thread (one writer, as SQLite allows anyway) or a
reader thread; on PostgreSQL in a greenlet over asyncpg. A write transaction is a
`WriteTx` in which the service locks a job, appends events and saves the snapshot
together.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from genwire.errors import StoreUnavailable
from genwire.metrics import Histogram
from genwire.models import Artifact, Event, EventType, Job, JobStatus
from genwire.store import rows, schema
from genwire.store.entries import LogEntry, Scope, ScopeKind
from genwire.store.migrations import migrate
from genwire.store.projects import ProjectView, read_project
from genwire.store.recent import RecentEvents
from genwire.store.transactions import MIGRATE_LOCK_KEY, WriteTx, on_sqlite_driver
from genwire.store.writer import WriterThread

T = TypeVar("T")
log = logging.getLogger("genwire.store")
READER_THREADS = 4


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


@dataclass(frozen=True)
class JobPage:
    items: list[Job]
    next_cursor: str | None


class _Runner(Protocol):
    async def write(
        self, fn: Callable[[Connection], T], committed: Callable[[T], None] | None = None
    ) -> T:
        """Run `fn` in a write transaction; `committed` gets its value once committed,
        before any other transaction of this runner commits."""

    async def read(self, fn: Callable[[Connection], T]) -> T: ...

    async def close(self) -> None: ...


class _Translating:
    """A runner whose database errors leave it as genwire's `StoreUnavailable` (the
    driver's error as its cause): nothing above the store knows SQLAlchemy."""

    def __init__(self, runner: _Runner) -> None:
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


class _SqliteRunner:
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


def _driver_url(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


class Store:
    """Jobs, the event log and artifacts in one SQL database."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL") -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.is_postgres = url.startswith(("postgresql", "postgres://"))
        if not (self.is_sqlite or self.is_postgres):
            raise ValueError(f"unsupported database URL {url!r}: use sqlite:///… or postgresql://…")
        self._runner: _Runner = _Translating(
            _SqliteRunner(url, sqlite_synchronous)
            if self.is_sqlite
            else _PostgresRunner(_driver_url(url))
        )
        #: what this process committed lately (SQLite only: see `genwire.store.recent`)
        self.recent = RecentEvents() if self.is_sqlite else None
        #: for `GET /metrics`: events this process appended, and how long its write
        #: transactions took from being asked for to their commit
        self.events_appended = 0
        self.write_seconds = Histogram()

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> Store:
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{data_dir / 'genwire.db'}")

    async def migrate(self) -> int:
        def run(connection: Connection) -> int:
            if self.is_postgres:
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK_KEY}
                )
            return migrate(connection)

        return await self._runner.write(run)

    async def close(self) -> None:
        await self._runner.close()

    async def write(self, fn: Callable[[WriteTx], T]) -> tuple[T, WriteTx]:
        """Run `fn` in one write transaction; it commits when `fn` returns.

        Returns what `fn` returned and the transaction, with what it appended.
        """

        def run(connection: Connection) -> tuple[T, WriteTx]:
            tx = WriteTx(connection, self.is_postgres)
            return fn(tx), tx

        def committed(result: tuple[T, WriteTx]) -> None:
            if self.recent is None:
                return
            try:
                self.recent.add(result[1].appended, result[1].appended_payloads)
            except Exception:
                # The transaction committed whatever happens here: feeds read the store.
                log.exception(
                    "keeping %d committed event(s) in memory failed", len(result[1].appended)
                )
                self.recent.forget()

        started = time.perf_counter()
        result = await self._runner.write(run, committed)
        self.write_seconds.observe(time.perf_counter() - started)
        self.events_appended += len(result[1].appended)
        return result

    async def read(self, fn: Callable[[Connection], T]) -> T:
        return await self._runner.read(fn)

    async def ping(self) -> None:
        """A trivial query: raises when the database does not answer."""
        await self._runner.read(lambda connection: connection.exec_driver_sql("SELECT 1").scalar())

    async def project_view(self, project_id: str, tenant: str) -> ProjectView | None:
        """The tenant's project with its clips; None when the tenant has no such project."""
        return await self._runner.read(
            lambda connection: read_project(connection, project_id, tenant)
        )

    async def get_job(self, job_id: str, tenant: str | None = None) -> Job | None:
        def run(connection: Connection) -> Job | None:
            query = sa.select(schema.jobs).where(schema.jobs.c.id == job_id)
            if tenant is not None:
                query = query.where(schema.jobs.c.tenant == tenant)
            row = connection.execute(query).mappings().first()
            if row is None:
                return None
            job = rows.job_from_row(row)
            _attach_details(connection, [job])
            return job

        return await self._runner.read(run)

    async def list_jobs(
        self,
        tenant: str,
        *,
        status: str | None = None,
        pipeline: str | None = None,
        project_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> JobPage:
        """Newest first; `cursor` is the id of the last job of the previous page."""
        query = sa.select(schema.jobs).where(schema.jobs.c.tenant == tenant)
        if status is not None:
            query = query.where(schema.jobs.c.status == status)
        if pipeline is not None:
            query = query.where(schema.jobs.c.pipeline == pipeline)
        if project_id is not None:
            query = query.where(schema.jobs.c.project_id == project_id)
        if cursor is not None:
            query = query.where(schema.jobs.c.id < cursor)
        query = query.order_by(schema.jobs.c.id.desc()).limit(limit + 1)

        def run(connection: Connection) -> JobPage:
            found = connection.execute(query).mappings().all()
            jobs = [rows.job_from_row(row) for row in found[:limit]]
            _attach_details(connection, jobs)
            return JobPage(jobs, jobs[-1].id if len(found) > limit else None)

        return await self._runner.read(run)

    async def events_after(
        self, job_id: str, after_seq: int | None = None, limit: int = 1000
    ) -> list[Event]:
        events = schema.events
        query = sa.select(events.c.seq, events.c.tenant, events.c.type, events.c.payload).where(
            events.c.job_id == job_id
        )
        if after_seq is not None:
            query = query.where(events.c.seq > after_seq)
        query = query.order_by(events.c.seq).limit(limit)

        def run(connection: Connection) -> list[Event]:
            return [
                Event(
                    seq=int(seq),
                    tenant=tenant,
                    job_id=job_id,
                    type=EventType(kind),
                    payload=orjson.loads(payload),
                )
                for seq, tenant, kind, payload in connection.execute(query)
            ]

        return await self._runner.read(run)

    async def entries_after(self, scope: Scope, after_seq: int, limit: int = 500) -> list[LogEntry]:
        """The events of `scope` after `after_seq`, oldest first, as stored (not decoded)."""
        events = schema.events
        column = {
            ScopeKind.JOB: events.c.job_id,
            ScopeKind.TENANT: events.c.tenant,
            ScopeKind.PROJECT: events.c.project_id,
        }[scope.kind]
        query = (
            sa.select(events.c.seq, events.c.type, events.c.job_id, events.c.payload)
            .where(column == scope.key, events.c.seq > after_seq)
            .order_by(events.c.seq)
            .limit(limit)
        )

        def run(connection: Connection) -> list[LogEntry]:
            return [
                LogEntry(int(seq), EventType(kind), job_id, payload)
                for seq, kind, job_id, payload in connection.execute(query)
            ]

        return await self._runner.read(run)

    async def last_seq(self) -> int:
        """The newest committed event id (0 for an empty log).

        Ids are committed in order (see `WriteTx`), so every event committed later
        has a larger id: a reader that starts here misses nothing that follows.
        """

        def run(connection: Connection) -> int:
            return int(
                connection.execute(sa.select(sa.func.max(schema.events.c.seq))).scalar() or 0
            )

        return await self._runner.read(run)

    async def get_artifact(self, artifact_id: str, tenant: str | None = None) -> Artifact | None:
        query = sa.select(schema.artifacts).where(schema.artifacts.c.id == artifact_id)
        if tenant is not None:
            query = query.where(schema.artifacts.c.tenant == tenant)

        def run(connection: Connection) -> Artifact | None:
            row = connection.execute(query).mappings().first()
            return rows.artifact_from_row(row) if row else None

        return await self._runner.read(run)

    async def count_by_status(self) -> dict[str, int]:
        query = sa.select(schema.jobs.c.status, sa.func.count()).group_by(schema.jobs.c.status)

        def run(connection: Connection) -> dict[str, int]:
            return {status: int(count) for status, count in connection.execute(query)}

        return await self._runner.read(run)


def _attach_details(connection: Connection, jobs: list[Job]) -> None:
    """Fill in artifacts and, for queued jobs, the queue position."""
    if not jobs:
        return
    found = connection.execute(
        sa.select(schema.artifacts)
        .where(schema.artifacts.c.job_id.in_([job.id for job in jobs]))
        .order_by(schema.artifacts.c.created_at, schema.artifacts.c.id)
    ).mappings()
    attempts = {job.id: job.attempt for job in jobs}
    by_job: dict[str, list[Artifact]] = {}
    for row in found:
        if row["attempt"] == attempts[row["job_id"]]:
            by_job.setdefault(row["job_id"], []).append(rows.artifact_from_row(row))
    for job in jobs:
        job.artifacts = by_job.get(job.id, [])
        if job.status is JobStatus.QUEUED:
            job.queue_position = int(
                connection.execute(rows.JOBS_AHEAD, {"job_id": job.id}).scalar_one()
            )
