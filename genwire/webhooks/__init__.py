"""Signed webhooks (SPEC §5): an outbox written with the events, a sender that retries.

outbox.py   which appended events owe a delivery (in the event's transaction)
signing.py  Standard Webhooks signatures; the server's `whsec_…` secret
targets.py  no targets in private address ranges (SPEC §8), checked at create and send
sender.py   the per-node sender: claim under a lease, POST, log, retry on schedule
"""

from genwire.webhooks.outbox import queue_deliveries
from genwire.webhooks.sender import WebhookSender
from genwire.webhooks.targets import refuse_private_webhook

__all__ = ["WebhookSender", "queue_deliveries", "refuse_private_webhook"]
