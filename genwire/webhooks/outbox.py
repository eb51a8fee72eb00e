"""Which appended events owe a webhook delivery; written in the event's transaction."""

from __future__ import annotations

import orjson

from genwire.bus import topics
from genwire.ids import new_id
from genwire.models import TERMINAL_EVENT_TYPES, Event, EventType, JsonObject, utc_now
from genwire.store import WriteTx
from genwire.store.deliveries import insert_delivery

#: What a webhook without `events` gets (SPEC §5 "default: the terminal events"):
#: a job's end, or a project's completion.
DEFAULT_EVENT_TYPES = frozenset({*TERMINAL_EVENT_TYPES, EventType.PROJECT_COMPLETED})


def queue_deliveries(tx: WriteTx) -> None:
    """Queue a delivery for each appended event its job's or project's webhook asks
    for, and wake the senders once the transaction commits."""
    now = utc_now()
    queued = False
    for event, webhook in tx.webhook_targets:
        if not wants(webhook, event):
            continue
        insert_delivery(tx, new_id("msg"), event, str(webhook["url"]), body_of(event), now)
        queued = True
    if queued:
        tx.extra_topics.append(topics.WEBHOOKS)


def wants(webhook: JsonObject, event: Event) -> bool:
    events = webhook.get("events")
    if events is None:
        return event.type in DEFAULT_EVENT_TYPES
    return event.type.value in events


def body_of(event: Event) -> str:
    """The Standard Webhooks body, encoded once: every attempt sends and signs these bytes."""
    return orjson.dumps(
        {"type": event.type.value, "timestamp": event.payload["ts"], "data": event.to_json()}
    ).decode()
