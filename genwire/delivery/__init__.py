"""Delivery of the event log to readers: scopes, shared feeds, SSE frames."""
