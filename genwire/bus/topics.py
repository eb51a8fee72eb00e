"""Topic names, in one place (like arq's key prefixes)."""

from __future__ import annotations

#: New work was queued: idle workers wake and try to claim.
QUEUE = "queue"

#: Webhook deliveries were queued: webhook senders wake and look for due ones.
WEBHOOKS = "webhooks"


def job(job_id: str) -> str:
    """Any event of one job."""
    return f"job:{job_id}"


def tenant(name: str) -> str:
    """Any event of any job of one tenant (the `/api/events` stream)."""
    return f"tenant:{name}"


def project(project_id: str) -> str:
    """Any event of a project or of one of its clips."""
    return f"project:{project_id}"


def cancel(job_id: str) -> str:
    """Cancel was requested for a running job: its worker stops it."""
    return f"cancel:{job_id}"


def ended(job_id: str) -> str:
    """The terminal event of one job (what `Prefer: wait` and long waits need)."""
    return f"ended:{job_id}"


def provider_call(call_id: str) -> str:
    """A verified provider webhook arrived for one call: its follower looks at once."""
    return f"provider-call:{call_id}"
