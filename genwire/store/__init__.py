"""Durable state: jobs, the per-job event log, artifacts (SQLite or PostgreSQL)."""

from genwire.interfaces import Store
from genwire.store.sql import SqlStore
from genwire.store.transactions import WriteTx

__all__ = ["SqlStore", "Store", "WriteTx"]
