"""The declared schema, one SQLAlchemy Core metadata for SQLite and PostgreSQL.

The migrations in `migrations.py` must produce exactly this; a test compares them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every dialect (SQLite stores no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL needs a BIGINT identity.
EventSeq = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant", String(100), nullable=False),
    Column("pipeline", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("phase", String(100)),
    Column("progress", Float, nullable=False),
    Column("message", Text),
    Column("attempt", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("cancel_requested", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
    Column("input", JSON(none_as_null=True), nullable=False),
    Column("metadata", JSON(none_as_null=True), nullable=False),
    Column("project_id", String(40)),
    Column("webhook", JSON(none_as_null=True)),
    Column("error", JSON(none_as_null=True)),
    Column("output", JSON(none_as_null=True)),
    Column("last_event_seq", BigInteger, nullable=False),
    Column("lease_owner", String(100)),
    Column("lease_expires_at", UtcDateTime),
    Index("ix_jobs_status_id", "status", "id"),
    # Fair claiming: each tenant's oldest queued job and its running count.
    Index("ix_jobs_status_tenant_id", "status", "tenant", "id"),
    Index("ix_jobs_tenant_id", "tenant", "id"),
    Index("ix_jobs_project_id", "project_id"),
)

events = Table(
    "events",
    metadata,
    Column("seq", EventSeq, primary_key=True, autoincrement=True),
    Column("tenant", String(100), nullable=False),
    Column("job_id", String(40), ForeignKey("jobs.id", ondelete="CASCADE")),
    Column("project_id", String(40)),
    Column("type", String(40), nullable=False),
    # The event minus its id, encoded once when appended and sent as stored.
    Column("payload", Text, nullable=False),
    Index("ix_events_job_id_seq", "job_id", "seq"),
    Index("ix_events_tenant_seq", "tenant", "seq"),
    Index("ix_events_project_id_seq", "project_id", "seq"),
    # Never reuse the id of a deleted last row: a cursor must not see it twice.
    sqlite_autoincrement=True,
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("job_id", String(40), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    # The run that made it: a job run again shows only its last run's files.
    Column("attempt", Integer, nullable=False),
    Column("tenant", String(100), nullable=False),
    Column("name", String(255), nullable=False),
    Column("type", String(200), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("path", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_artifacts_job_id_attempt", "job_id", "attempt"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("tenant", String(100), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("job_id", String(40), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant", String(100), nullable=False),
    Column("name", String(200)),
    Column("webhook", JSON(none_as_null=True)),
    Column("created_at", UtcDateTime, nullable=False),
    #: set once, with the project-completed event, when every clip has ended
    Column("completed_at", UtcDateTime),
    Column("last_event_seq", BigInteger, nullable=False),
    Index("ix_projects_tenant_id", "tenant", "id"),
)

# The webhook outbox: a delivery is written in the transaction of the event it
# carries, so no event that should be delivered can be lost between commit and send.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),  #: the stable `webhook-id`
    Column("tenant", String(100), nullable=False),
    Column("job_id", String(40)),
    Column("project_id", String(40)),
    Column("event_seq", BigInteger, nullable=False),
    Column("event_type", String(40), nullable=False),
    Column("url", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_job_id", "job_id"),
    Index("ix_webhook_deliveries_project_id", "project_id"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", EventSeq, primary_key=True, autoincrement=True),
    Column(
        "delivery_id",
        String(40),
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("attempted_at", UtcDateTime, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("duration_ms", Float, nullable=False),
    Index("ix_webhook_attempts_delivery_id", "delivery_id"),
)

# A call to a remote provider (SPEC §7.1), written before genwire waits on anything:
# a restart finds the provider's job here and follows it instead of submitting again.
provider_calls = Table(
    "provider_calls",
    metadata,
    Column("id", String(40), primary_key=True),  #: names the call in its webhook URL
    Column("job_id", String(40), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(200), nullable=False),  #: the call's name within its job
    Column("provider", String(40), nullable=False),
    Column("state", String(20), nullable=False),
    #: the provider's id; Runware's taskUUID is chosen by genwire and set before submitting
    Column("provider_job_id", String(200)),
    Column("secret", String(64), nullable=False),  #: in the webhook URL: only the provider knows it
    #: what the call asked for: its key may not be reused for another request
    Column("request_hash", String(64), nullable=False),
    Column("handle", JSON(none_as_null=True)),  #: what following needs (fal's URLs, …)
    Column("webhook_status", JSON(none_as_null=True)),  #: the latest verified webhook, parsed
    Column("webhook_terminal", Boolean, nullable=False),  #: that webhook ended the job
    Column("deadline_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_provider_calls_job_id_key", "job_id", "key", unique=True),
)
