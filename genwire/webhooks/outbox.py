"""Which appended events owe a webhook delivery; written in the event's transaction."""

from __future__ import annotations

from genwire.store import WriteTx


def queue_deliveries(tx: WriteTx) -> None:
    """Queue a delivery for each appended event its job's or project's webhook asks for."""
    # Filled in by the webhooks work (SPEC §5); until then nothing is delivered.
    del tx
