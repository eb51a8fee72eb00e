"""The migrated schema is exactly the declared one, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from genwire.store import SqlStore
from genwire.store.migrations import MIGRATIONS, VERSION_TABLE, current_version
from genwire.store.schema import metadata


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection,
        opts={
            "include_name": lambda name, kind, parent: name != VERSION_TABLE,
            "compare_type": True,
        },
    )
    return list(compare_metadata(context, metadata))


async def test_migrated_schema_equals_declared_schema(store: SqlStore) -> None:
    assert await store.read(_differences) == []


async def test_migrating_twice_changes_nothing(store: SqlStore) -> None:
    assert await store.migrate() == len(MIGRATIONS)
    assert await store.read(current_version) == len(MIGRATIONS)
