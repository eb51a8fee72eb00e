"""Durable state: jobs, the per-job event log, artifacts (SQLite or PostgreSQL)."""

from genwire.store.sql import JobPage, Store, WriteTx, request_fingerprint

__all__ = ["JobPage", "Store", "WriteTx", "request_fingerprint"]
