"""Durable state: jobs, the per-job event log, artifacts (SQLite or PostgreSQL)."""

from genwire.store.sql import JobPage, Store
from genwire.store.transactions import WriteTx

__all__ = ["JobPage", "Store", "WriteTx"]
