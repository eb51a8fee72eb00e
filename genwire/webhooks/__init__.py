"""Signed webhooks (SPEC §5): an outbox written with the events, a sender that retries."""
