"""The store on SQLite (WAL) and PostgreSQL through one SQLAlchemy Core layer.

Writes happen inside `Store.write()`, a transaction in which the service locks a
job, appends events and updates the snapshot together. Event ids (`seq`) must never
let a late commit slip behind a reader's cursor (SPEC §4.8): SQLite has one writer
at a time, so ids are taken in commit order; on PostgreSQL each writing transaction
takes one advisory lock before it appends, which gives the same order.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from genwire.models import (
    Artifact,
    Event,
    EventType,
    Job,
    JobError,
    JobStatus,
    JsonObject,
    format_time,
    utc_now,
)
from genwire.store import schema
from genwire.store.migrations import migrate

#: Key of the PostgreSQL advisory lock that orders appends (any constant works).
APPEND_LOCK_KEY = 0x67656E77
MIGRATE_LOCK_KEY = 0x67656E78
#: First half of the two-key advisory locks that serialize creates under one
#: Idempotency-Key (the two-key space never overlaps the one-key locks above).
IDEMPOTENCY_LOCK_SPACE = 0x67656E79


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def database_url(url: str) -> str:
    """Turn `sqlite:///path` or `postgresql://…` into the async driver's URL."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


@dataclass(frozen=True)
class JobPage:
    items: list[Job]
    next_cursor: str | None


class WriteTx:
    """One write transaction: what the service may do to jobs and the log."""

    def __init__(self, connection: AsyncConnection, is_postgres: bool) -> None:
        self._connection = connection
        self._is_postgres = is_postgres
        self._append_locked = False
        self.appended: list[Event] = []
        #: bus topics to wake after commit, besides those of the appended events
        self.extra_topics: list[str] = []

    async def insert_job(self, job: Job) -> None:
        await self._connection.execute(sa.insert(schema.jobs).values(**_job_values(job)))

    async def lock_job(self, job_id: str, tenant: str | None = None) -> Job | None:
        query = sa.select(schema.jobs).where(schema.jobs.c.id == job_id).with_for_update()
        if tenant is not None:
            query = query.where(schema.jobs.c.tenant == tenant)
        row = (await self._connection.execute(query)).mappings().first()
        return _job_from_row(row) if row else None

    async def claim_queued(self, exclude: Sequence[str] = ()) -> Job | None:
        """Lock the oldest queued job no other transaction holds."""
        query = (
            sa.select(schema.jobs)
            .where(schema.jobs.c.status == JobStatus.QUEUED.value)
            .order_by(schema.jobs.c.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if exclude:
            query = query.where(schema.jobs.c.id.not_in(exclude))
        row = (await self._connection.execute(query)).mappings().first()
        return _job_from_row(row) if row else None

    async def lock_expired(self, now: datetime) -> list[Job]:
        query = (
            sa.select(schema.jobs)
            .where(
                schema.jobs.c.status == JobStatus.RUNNING.value,
                schema.jobs.c.lease_expires_at < now,
            )
            .order_by(schema.jobs.c.id)
            .with_for_update(skip_locked=True)
        )
        return [_job_from_row(row) for row in (await self._connection.execute(query)).mappings()]

    async def lock_running(self) -> list[Job]:
        query = (
            sa.select(schema.jobs)
            .where(schema.jobs.c.status == JobStatus.RUNNING.value)
            .order_by(schema.jobs.c.id)
            .with_for_update(skip_locked=True)
        )
        return [_job_from_row(row) for row in (await self._connection.execute(query)).mappings()]

    async def append_event(self, job: Job, event_type: EventType, fields: JsonObject) -> Event:
        """Append one event of `job` to the log and advance `job.last_event_seq`."""
        if self._is_postgres and not self._append_locked:
            await self._connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK_KEY}
            )
            self._append_locked = True
        payload = {
            "type": event_type.value,
            "job_id": job.id,
            "ts": format_time(utc_now()),
            **fields,
        }
        result = await self._connection.execute(
            sa.insert(schema.events)
            .values(
                tenant=job.tenant,
                job_id=job.id,
                project_id=job.project_id,
                type=event_type.value,
                payload=_json_dumps(payload),
            )
            .returning(schema.events.c.seq)
        )
        seq = int(result.scalar_one())
        job.last_event_seq = seq
        event = Event(seq=seq, tenant=job.tenant, job_id=job.id, type=event_type, payload=payload)
        self.appended.append(event)
        return event

    async def save_job(self, job: Job) -> None:
        """Write back every mutable field of a locked job."""
        values = _job_values(job)
        for immutable in ("id", "tenant", "pipeline", "created_at", "input", "project_id"):
            values.pop(immutable)
        await self._connection.execute(
            sa.update(schema.jobs).where(schema.jobs.c.id == job.id).values(**values)
        )

    async def artifacts_of(self, job_id: str) -> list[Artifact]:
        rows = await self._connection.execute(
            sa.select(schema.artifacts)
            .where(schema.artifacts.c.job_id == job_id)
            .order_by(schema.artifacts.c.created_at, schema.artifacts.c.id)
        )
        return [_artifact_from_row(row) for row in rows.mappings()]

    async def queue_position(self, job: Job) -> int:
        """How many queued jobs will be claimed before this one."""
        return await _jobs_ahead(self._connection, job.id)

    async def insert_artifact(self, artifact: Artifact, tenant: str) -> None:
        await self._connection.execute(
            sa.insert(schema.artifacts).values(
                id=artifact.id,
                job_id=artifact.job_id,
                tenant=tenant,
                name=artifact.name,
                type=artifact.type,
                size_bytes=artifact.size_bytes,
                sha256=artifact.sha256,
                path=artifact.path,
                created_at=utc_now(),
            )
        )

    async def find_idempotent(self, tenant: str, key: str) -> tuple[str, str] | None:
        """(request_hash, job_id) stored under an idempotency key, if any.

        On PostgreSQL it first locks the key until commit, so a concurrent create
        with the same key waits and then finds this one's job instead of failing
        on the primary key (SQLite writers are serialized already).
        """
        if self._is_postgres:
            digest = hashlib.sha256(f"{tenant}\0{key}".encode()).digest()
            await self._connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:space, :key)"),
                {
                    "space": IDEMPOTENCY_LOCK_SPACE,
                    "key": int.from_bytes(digest[:4], "big", signed=True),
                },
            )
        row = (
            await self._connection.execute(
                sa.select(
                    schema.idempotency_keys.c.request_hash, schema.idempotency_keys.c.job_id
                ).where(
                    schema.idempotency_keys.c.tenant == tenant,
                    schema.idempotency_keys.c.key == key,
                )
            )
        ).first()
        return (row[0], row[1]) if row else None

    async def remember_idempotent(
        self, tenant: str, key: str, request_hash: str, job_id: str
    ) -> None:
        await self._connection.execute(
            sa.insert(schema.idempotency_keys).values(
                tenant=tenant,
                key=key,
                request_hash=request_hash,
                job_id=job_id,
                created_at=utc_now(),
            )
        )


class Store:
    """Jobs, the event log and artifacts in one SQL database."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "NORMAL") -> None:
        self.url = database_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.is_postgres = self.url.startswith("postgresql")
        if self.is_sqlite:
            # One writer connection (SQLite allows one writer anyway; queueing in
            # Python is cheaper than busy-waiting on the file lock), several readers.
            self._write_engine = self._sqlite_engine(1, "BEGIN IMMEDIATE", sqlite_synchronous)
            self._read_engine = self._sqlite_engine(4, "BEGIN", sqlite_synchronous)
        else:
            self._write_engine = create_async_engine(
                self.url, pool_size=10, max_overflow=10, json_serializer=_json_dumps
            )
            self._read_engine = self._write_engine
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    def _sqlite_engine(self, size: int, begin: str, synchronous: str) -> AsyncEngine:
        engine = create_async_engine(
            self.url,
            pool_size=size,
            max_overflow=0,
            json_serializer=_json_dumps,
            connect_args={"timeout": 30},
        )

        @sa_event.listens_for(engine.sync_engine, "connect")
        def _configure(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" hook below own transactions (pysqlite's
            # implicit BEGIN would defer the write lock and invite deadlocks).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @sa_event.listens_for(engine.sync_engine, "begin")
        def _begin(connection: Connection) -> None:
            connection.exec_driver_sql(begin)

        return engine

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> Store:
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{data_dir / 'genwire.db'}")

    async def migrate(self) -> int:
        async with self._write_engine.begin() as connection:
            if self.is_postgres:
                await connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK_KEY}
                )
            return await connection.run_sync(migrate)

    async def close(self) -> None:
        await self._write_engine.dispose()
        if self._read_engine is not self._write_engine:
            await self._read_engine.dispose()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[WriteTx]:
        """A write transaction; it commits when the block ends without an exception."""
        if self._write_lock is None:
            async with self._write_engine.begin() as connection:
                yield WriteTx(connection, self.is_postgres)
            return
        async with self._write_lock, self._write_engine.begin() as connection:
            yield WriteTx(connection, self.is_postgres)

    async def get_job(self, job_id: str, tenant: str | None = None) -> Job | None:
        async with self._read_engine.connect() as connection:
            query = sa.select(schema.jobs).where(schema.jobs.c.id == job_id)
            if tenant is not None:
                query = query.where(schema.jobs.c.tenant == tenant)
            row = (await connection.execute(query)).mappings().first()
            if row is None:
                return None
            job = _job_from_row(row)
            await _attach_details(connection, [job])
            return job

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
        async with self._read_engine.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
            jobs = [_job_from_row(row) for row in rows[:limit]]
            await _attach_details(connection, jobs)
        next_cursor = jobs[-1].id if len(rows) > limit else None
        return JobPage(jobs, next_cursor)

    async def events_after(
        self, job_id: str, after_seq: int | None = None, limit: int = 1000
    ) -> list[Event]:
        query = sa.select(
            schema.events.c.seq,
            schema.events.c.tenant,
            schema.events.c.type,
            schema.events.c.payload,
        ).where(schema.events.c.job_id == job_id)
        if after_seq is not None:
            query = query.where(schema.events.c.seq > after_seq)
        query = query.order_by(schema.events.c.seq).limit(limit)
        async with self._read_engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [
            Event(
                seq=int(seq),
                tenant=tenant,
                job_id=job_id,
                type=EventType(kind),
                payload=orjson.loads(payload),
            )
            for seq, tenant, kind, payload in rows
        ]

    async def get_artifact(self, artifact_id: str, tenant: str | None = None) -> Artifact | None:
        query = sa.select(schema.artifacts).where(schema.artifacts.c.id == artifact_id)
        if tenant is not None:
            query = query.where(schema.artifacts.c.tenant == tenant)
        async with self._read_engine.connect() as connection:
            row = (await connection.execute(query)).mappings().first()
        return _artifact_from_row(row) if row else None

    async def count_by_status(self) -> dict[str, int]:
        query = sa.select(schema.jobs.c.status, sa.func.count()).group_by(schema.jobs.c.status)
        async with self._read_engine.connect() as connection:
            return {status: int(count) for status, count in await connection.execute(query)}


def request_fingerprint(body: JsonObject) -> str:
    """A stable hash of a create request, to tell a retry from a different request."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def _attach_details(connection: AsyncConnection, jobs: list[Job]) -> None:
    """Fill in artifacts and, for queued jobs, the queue position."""
    if not jobs:
        return
    ids = [job.id for job in jobs]
    rows = (
        await connection.execute(
            sa.select(schema.artifacts)
            .where(schema.artifacts.c.job_id.in_(ids))
            .order_by(schema.artifacts.c.created_at, schema.artifacts.c.id)
        )
    ).mappings()
    by_job: dict[str, list[Artifact]] = {}
    for row in rows:
        artifact = _artifact_from_row(row)
        by_job.setdefault(artifact.job_id, []).append(artifact)
    for job in jobs:
        job.artifacts = by_job.get(job.id, [])
        if job.status is JobStatus.QUEUED:
            job.queue_position = await _jobs_ahead(connection, job.id)


async def _jobs_ahead(connection: AsyncConnection, job_id: str) -> int:
    ahead = await connection.execute(
        sa.select(sa.func.count())
        .select_from(schema.jobs)
        .where(schema.jobs.c.status == JobStatus.QUEUED.value, schema.jobs.c.id < job_id)
    )
    return int(ahead.scalar_one())


def _job_values(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "tenant": job.tenant,
        "pipeline": job.pipeline,
        "status": job.status.value,
        "phase": job.phase,
        "progress": job.progress,
        "message": job.message,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "cancel_requested": job.cancel_requested,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "input": job.input,
        "metadata": job.metadata,
        "project_id": job.project_id,
        "webhook": job.webhook,
        "error": job.error.to_json() if job.error else None,
        "output": job.output,
        "last_event_seq": job.last_event_seq,
        "lease_owner": job.lease_owner,
        "lease_expires_at": job.lease_expires_at,
    }


def _job_from_row(row: RowMapping) -> Job:
    error = row["error"]
    return Job(
        id=row["id"],
        tenant=row["tenant"],
        pipeline=row["pipeline"],
        status=JobStatus(row["status"]),
        phase=row["phase"],
        progress=float(row["progress"]),
        message=row["message"],
        attempt=int(row["attempt"]),
        max_attempts=int(row["max_attempts"]),
        cancel_requested=bool(row["cancel_requested"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        input=row["input"],
        metadata=row["metadata"],
        project_id=row["project_id"],
        webhook=row["webhook"],
        error=JobError(**error) if error else None,
        output=row["output"],
        last_event_seq=int(row["last_event_seq"]),
        lease_owner=row["lease_owner"],
        lease_expires_at=row["lease_expires_at"],
    )


def _artifact_from_row(row: RowMapping) -> Artifact:
    return Artifact(
        id=row["id"],
        job_id=row["job_id"],
        name=row["name"],
        type=row["type"],
        size_bytes=int(row["size_bytes"]),
        sha256=row["sha256"],
        path=row["path"],
    )
