"""The webhook outbox (SPEC §5): deliveries queued in their event's transaction,
claimed by senders under a lease, and the log of their attempts.

The functions take the `WriteTx` of `SqlStore.write` (on SQLite they must run in its
one writer thread, on PostgreSQL behind its write lock) or the connection of
`SqlStore.read`; outside the store, `WebhookOutbox` runs each in its own transaction.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from genwire.models import Event
from genwire.store.schema import webhook_attempts, webhook_deliveries
from genwire.store.transactions import WriteTx

if TYPE_CHECKING:
    from genwire.store.sql import SqlStore


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  #: waiting for its next attempt, or being sent under a lease
    DELIVERED = "delivered"  #: final: the target answered 2xx
    FAILED = "failed"  #: final: out of attempts, or refused for good (a private address)


@dataclass(frozen=True)
class Delivery:
    """What a sender needs to make one attempt."""

    id: str  #: the stable `webhook-id`
    url: str
    payload: str  #: the body, encoded once when queued: every attempt signs the same bytes
    attempts: int  #: made before this one


@dataclass(frozen=True)
class Attempt:
    attempted_at: datetime
    status_code: int | None  #: None when no answer came (refused, timed out)
    error: str | None
    duration_ms: float


@dataclass(frozen=True)
class DeliveryRecord:
    """A delivery as `GET /api/jobs/{id}/webhooks` shows it."""

    id: str
    event_seq: int
    event_type: str
    url: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    attempts_log: list[Attempt]


def _connection_of(tx: WriteTx) -> Connection:
    # The outbox is part of the store: it shares the transaction's connection
    # rather than growing WriteTx by one method per statement.
    return tx._connection


def insert_delivery(
    tx: WriteTx, delivery_id: str, event: Event, url: str, payload: str, now: datetime
) -> None:
    """Queue one delivery of `event`, due at once."""
    _connection_of(tx).execute(
        sa.insert(webhook_deliveries).values(
            id=delivery_id,
            tenant=event.tenant,
            job_id=event.job_id,
            project_id=event.project_id,
            event_seq=event.seq,
            event_type=event.type.value,
            url=url,
            payload=payload,
            status=DeliveryStatus.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )


def claim_due(
    tx: WriteTx,
    now: datetime,
    lease_until: datetime,
    limit: int,
    in_flight: Collection[str] = (),
) -> list[Delivery]:
    """Take up to `limit` due deliveries, oldest due first, by pushing their next
    attempt to `lease_until`: a sender that dies mid-send leaves them due again then.
    `in_flight`: deliveries this sender is still sending, whose lease may have run
    out while the attempt is being recorded; never claimed twice.

    Write transactions are serialised (see WriteTx), so no two senders claim one row.
    """
    table = webhook_deliveries
    query = (
        sa.select(table.c.id, table.c.url, table.c.payload, table.c.attempts)
        .where(
            table.c.status == DeliveryStatus.PENDING.value,
            table.c.next_attempt_at <= now,
        )
        .order_by(table.c.next_attempt_at, table.c.id)
        .limit(limit)
    )
    if in_flight:
        query = query.where(table.c.id.not_in(list(in_flight)))
    claimed = [Delivery(*row) for row in _connection_of(tx).execute(query)]
    if claimed:
        _connection_of(tx).execute(
            sa.update(table)
            .where(table.c.id.in_([delivery.id for delivery in claimed]))
            .values(next_attempt_at=lease_until)
        )
    return claimed


def record_attempt(
    tx: WriteTx,
    delivery_id: str,
    attempt: Attempt,
    status: DeliveryStatus,
    next_attempt_at: datetime | None,
) -> None:
    """Log an attempt and move the delivery on: delivered, failed, or due again."""
    connection = _connection_of(tx)
    finished_at = attempt.attempted_at + timedelta(milliseconds=attempt.duration_ms)
    connection.execute(
        sa.insert(webhook_attempts).values(
            delivery_id=delivery_id,
            attempted_at=attempt.attempted_at,
            status_code=attempt.status_code,
            error=attempt.error,
            duration_ms=attempt.duration_ms,
        )
    )
    table = webhook_deliveries
    connection.execute(
        sa.update(table)
        .where(table.c.id == delivery_id, table.c.status == DeliveryStatus.PENDING.value)
        .values(
            attempts=table.c.attempts + 1,
            status=status.value,
            next_attempt_at=next_attempt_at,
            finished_at=None if status is DeliveryStatus.PENDING else finished_at,
        )
    )


def release(tx: WriteTx, delivery_ids: Collection[str], now: datetime) -> None:
    """Make claimed deliveries due at once (a sender stopping mid-send gives them back)."""
    table = webhook_deliveries
    _connection_of(tx).execute(
        sa.update(table)
        .where(table.c.id.in_(list(delivery_ids)), table.c.status == DeliveryStatus.PENDING.value)
        .values(next_attempt_at=now)
    )


def next_due_at(connection: Connection) -> datetime | None:
    """When the next pending delivery is due (or its lease ends); None when none is pending."""
    table = webhook_deliveries
    moment: datetime | None = connection.execute(
        sa.select(sa.func.min(table.c.next_attempt_at)).where(
            table.c.status == DeliveryStatus.PENDING.value
        )
    ).scalar_one()
    return moment


def deliveries_of_job(connection: Connection, job_id: str) -> list[DeliveryRecord]:
    """Every delivery of a job's events, oldest event first, each with its attempts."""
    table = webhook_deliveries
    found = connection.execute(
        sa.select(table).where(table.c.job_id == job_id).order_by(table.c.event_seq, table.c.id)
    ).mappings()
    records = [
        DeliveryRecord(
            id=row["id"],
            event_seq=int(row["event_seq"]),
            event_type=row["event_type"],
            url=row["url"],
            status=DeliveryStatus(row["status"]),
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            created_at=row["created_at"],
            finished_at=row["finished_at"],
            attempts_log=[],
        )
        for row in found
    ]
    if records:
        attempts = webhook_attempts
        logged = connection.execute(
            sa.select(attempts)
            .where(attempts.c.delivery_id.in_([record.id for record in records]))
            .order_by(attempts.c.id)
        ).mappings()
        by_id = {record.id: record.attempts_log for record in records}
        for row in logged:
            by_id[row["delivery_id"]].append(
                Attempt(row["attempted_at"], row["status_code"], row["error"], row["duration_ms"])
            )
    return records


class WebhookOutbox:
    """The outbox of one store, as the webhook sender and the API use it: every
    statement above in its own transaction, no connection handed out."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def claim_due(
        self, now: datetime, lease_until: datetime, limit: int, in_flight: Collection[str] = ()
    ) -> list[Delivery]:
        claimed, _ = await self.store.write(
            lambda tx: claim_due(tx, now, lease_until, limit, in_flight)
        )
        return claimed

    async def record_attempt(
        self,
        delivery_id: str,
        attempt: Attempt,
        status: DeliveryStatus,
        next_attempt_at: datetime | None,
    ) -> None:
        await self.store.write(
            lambda tx: record_attempt(tx, delivery_id, attempt, status, next_attempt_at)
        )

    async def release(self, delivery_ids: Collection[str], now: datetime) -> None:
        await self.store.write(lambda tx: release(tx, delivery_ids, now))

    async def next_due_at(self) -> datetime | None:
        return await self.store.read(next_due_at)

    async def of_job(self, job_id: str) -> list[DeliveryRecord]:
        return await self.store.read(lambda connection: deliveries_of_job(connection, job_id))
