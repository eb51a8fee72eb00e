"""Calls to remote providers, kept durably (SPEC §7.1).

A call is written (`SUBMITTING`) before its request leaves genwire, and its provider
id (`SUBMITTED`) as soon as the provider answers: a worker that dies anywhere after
that resumes following the same provider job instead of paying for a second one.
Webhooks land here too, so that whichever process follows the call reads them.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from genwire.ids import new_id
from genwire.models import JsonObject, utc_now
from genwire.store.schema import provider_calls
from genwire.store.transactions import WriteTx

if TYPE_CHECKING:
    from genwire.store.sql import SqlStore


class CallState(enum.StrEnum):
    SUBMITTING = "submitting"  #: written; its request may or may not have reached the provider
    SUBMITTED = "submitted"  #: the provider took it: its id is known
    ENDED = "ended"  #: followed to its end (or given up on); nothing more to ask


@dataclass(frozen=True)
class ProviderCall:
    id: str
    job_id: str
    key: str
    provider: str
    state: CallState
    provider_job_id: str | None
    secret: str
    request_hash: str
    handle: JsonObject
    webhook_status: JsonObject | None
    deadline_at: datetime


def _call_from_row(row: Any) -> ProviderCall:
    return ProviderCall(
        id=row["id"],
        job_id=row["job_id"],
        key=row["key"],
        provider=row["provider"],
        state=CallState(row["state"]),
        provider_job_id=row["provider_job_id"],
        secret=row["secret"],
        request_hash=row["request_hash"],
        handle=row["handle"] or {},
        webhook_status=row["webhook_status"],
        deadline_at=row["deadline_at"],
    )


def _connection_of(tx: WriteTx) -> Connection:
    # Part of the store: it shares the transaction's connection, as the outbox does.
    return tx._connection


def _select_call(connection: Connection, **where: str) -> ProviderCall | None:
    query = sa.select(provider_calls)
    for column, value in where.items():
        query = query.where(provider_calls.c[column] == value)
    row = connection.execute(query).mappings().first()
    return None if row is None else _call_from_row(row)


class ProviderCalls:
    """The provider calls of one store."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def open(
        self,
        job_id: str,
        key: str,
        provider: str,
        *,
        timeout_s: float,
        request_hash: str,
        provider_job_id: str | None = None,
    ) -> tuple[ProviderCall, bool]:
        """The job's call named `key`, created (`SUBMITTING`) if it has none yet;
        returns it and whether it was created now. `provider_job_id`: an id the
        client chooses (Runware's taskUUID), fixed before anything is sent."""

        def run(tx: WriteTx) -> tuple[ProviderCall, bool]:
            connection = _connection_of(tx)
            existing = _select_call(connection, job_id=job_id, key=key)
            if existing is not None:
                return existing, False
            now = utc_now()
            call_id = new_id("call")
            values: dict[str, Any] = {
                "id": call_id,
                "job_id": job_id,
                "key": key,
                "provider": provider,
                "state": CallState.SUBMITTING.value,
                "provider_job_id": provider_job_id,
                "secret": secrets.token_urlsafe(24),
                "request_hash": request_hash,
                "handle": {},
                "webhook_status": None,
                "webhook_terminal": False,
                "deadline_at": now + timedelta(seconds=timeout_s),
                "created_at": now,
                "updated_at": now,
            }
            connection.execute(sa.insert(provider_calls).values(**values))
            created = _select_call(connection, id=call_id)
            assert created is not None
            return created, True

        value, _ = await self.store.write(run)
        return value

    async def get(self, call_id: str) -> ProviderCall | None:
        return await self.store.read(lambda connection: _select_call(connection, id=call_id))

    async def mark_submitted(self, call_id: str, provider_job_id: str, handle: JsonObject) -> None:
        """Record the provider's id, unless the call moved on already (an attempt that
        lost its lease must not bring an ended call back)."""
        await self._update(
            call_id,
            provider_calls.c.state == CallState.SUBMITTING.value,
            state=CallState.SUBMITTED.value,
            provider_job_id=provider_job_id,
            handle=handle,
        )

    async def mark_ended(self, call_id: str) -> None:
        await self._update(call_id, None, state=CallState.ENDED.value)

    async def record_webhook(self, call_id: str, status: JsonObject, *, terminal: bool) -> None:
        """Keep the latest verified webhook for whoever follows the call (it reads
        the call again when woken, and while webhooks are on, every second). A
        terminal status is kept: a late webhook of an earlier state cannot replace it."""
        unsettled = provider_calls.c.webhook_terminal.is_(False)
        await self._update(call_id, unsettled, webhook_status=status, webhook_terminal=terminal)

    async def _update(
        self, call_id: str, condition: sa.ColumnElement[bool] | None, **values: Any
    ) -> None:
        statement = sa.update(provider_calls).where(provider_calls.c.id == call_id)
        if condition is not None:
            statement = statement.where(condition)

        def run(tx: WriteTx) -> None:
            _connection_of(tx).execute(statement.values(**values, updated_at=utc_now()))

        await self.store.write(run)
