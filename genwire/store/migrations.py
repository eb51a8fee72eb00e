"""Versioned migrations, applied in order at start-up on SQLite and PostgreSQL.

Each migration is frozen once released: a schema change is a new function appended
to `MIGRATIONS`, never an edit of an old one. `tests/test_migrations.py` checks that
the migrated schema equals the one declared in `schema.py`.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.engine import Connection

from genwire.store.schema import EventSeq, UtcDateTime

VERSION_TABLE = "genwire_schema_version"


def _v1_initial(op: Operations) -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("pipeline", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("phase", sa.String(100)),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("started_at", UtcDateTime),
        sa.Column("finished_at", UtcDateTime),
        sa.Column("input", sa.JSON, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("project_id", sa.String(40)),
        sa.Column("webhook", sa.JSON),
        sa.Column("error", sa.JSON),
        sa.Column("output", sa.JSON),
        sa.Column("last_event_seq", sa.BigInteger, nullable=False),
        sa.Column("lease_owner", sa.String(100)),
        sa.Column("lease_expires_at", UtcDateTime),
    )
    op.create_index("ix_jobs_status_id", "jobs", ["status", "id"])
    op.create_index("ix_jobs_tenant_id", "jobs", ["tenant", "id"])
    op.create_index("ix_jobs_project_id", "jobs", ["project_id"])
    op.create_table(
        "events",
        sa.Column("seq", EventSeq, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("job_id", sa.String(40), sa.ForeignKey("jobs.id", ondelete="CASCADE")),
        sa.Column("project_id", sa.String(40)),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_job_id_seq", "events", ["job_id", "seq"])
    op.create_index("ix_events_tenant_seq", "events", ["tenant", "seq"])
    op.create_index("ix_events_project_id_seq", "events", ["project_id", "seq"])
    op.create_table(
        "artifacts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "job_id", sa.String(40), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_artifacts_job_id_attempt", "artifacts", ["job_id", "attempt"])
    op.create_table(
        "idempotency_keys",
        sa.Column("tenant", sa.String(100), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column(
            "job_id", sa.String(40), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )

    op.create_table(
        "projects",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("webhook", sa.JSON),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("completed_at", UtcDateTime),
        sa.Column("last_event_seq", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_projects_tenant_id", "projects", ["tenant", "id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("job_id", sa.String(40)),
        sa.Column("project_id", sa.String(40)),
        sa.Column("event_seq", sa.BigInteger, nullable=False),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("finished_at", UtcDateTime),
    )
    op.create_index(
        "ix_webhook_deliveries_status_next", "webhook_deliveries", ["status", "next_attempt_at"]
    )
    op.create_index("ix_webhook_deliveries_job_id", "webhook_deliveries", ["job_id"])
    op.create_index("ix_webhook_deliveries_project_id", "webhook_deliveries", ["project_id"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", EventSeq, primary_key=True, autoincrement=True),
        sa.Column(
            "delivery_id",
            sa.String(40),
            sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("attempted_at", UtcDateTime, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("duration_ms", sa.Float, nullable=False),
    )
    op.create_index("ix_webhook_attempts_delivery_id", "webhook_attempts", ["delivery_id"])


def _v2_provider_calls(op: Operations) -> None:
    op.create_table(
        "provider_calls",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "job_id", sa.String(40), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("provider_job_id", sa.String(200)),
        sa.Column("secret", sa.String(64), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("handle", sa.JSON),
        sa.Column("webhook_status", sa.JSON),
        sa.Column("webhook_terminal", sa.Boolean, nullable=False),
        sa.Column("deadline_at", UtcDateTime, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_index(
        "ix_provider_calls_job_id_key", "provider_calls", ["job_id", "key"], unique=True
    )


def _v3_fair_claims(op: Operations) -> None:
    op.create_index("ix_jobs_status_tenant_id", "jobs", ["status", "tenant", "id"])


MIGRATIONS: list[Callable[[Operations], None]] = [
    _v1_initial,
    _v2_provider_calls,
    _v3_fair_claims,
]


def current_version(connection: Connection) -> int:
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return 0
    value = connection.execute(sa.text(f"SELECT version FROM {VERSION_TABLE}")).scalar()
    return int(value or 0)


def migrate(connection: Connection) -> int:
    """Apply every migration not yet applied, in one transaction; returns the new version."""
    version = current_version(connection)
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"the database is at schema version {version}, newer than this genwire "
            f"({len(MIGRATIONS)}); upgrade genwire"
        )
    if version == len(MIGRATIONS):
        return version
    if version == 0:
        connection.execute(sa.text(f"CREATE TABLE {VERSION_TABLE} (version INTEGER NOT NULL)"))
        connection.execute(sa.text(f"INSERT INTO {VERSION_TABLE} (version) VALUES (0)"))
    operations = Operations(MigrationContext.configure(connection))
    for step in MIGRATIONS[version:]:
        step(operations)
    connection.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version = :v"), {"v": len(MIGRATIONS)})
    return len(MIGRATIONS)
