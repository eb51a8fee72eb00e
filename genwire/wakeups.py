"""Which bus topics a committed change wakes: who is waiting on the events it
appended (streams of a job, project or tenant; waiters on an end; idle workers)."""

from __future__ import annotations

from genwire.bus import topics
from genwire.models import Event, EventType, JobStatus


def topics_to_wake(appended: list[Event], capped: bool = False) -> list[str]:
    """The topics to wake for `appended`, each once; `capped`: a per-tenant running
    cap is set, so a job that ends may let its tenant's queued jobs be claimed."""
    announced: list[str] = []
    for event in appended:
        if event.project_id is not None:
            announced.append(topics.project(event.project_id))
        if event.job_id is not None:
            announced.append(topics.job(event.job_id))
            if event.type.is_terminal:
                announced.append(topics.ended(event.job_id))
                if capped:
                    announced.append(topics.QUEUE)
        if event.type is EventType.JOB_STATUS and event.payload.get("status") == JobStatus.QUEUED:
            announced.append(topics.QUEUE)
    announced.extend(topics.tenant(name) for name in {event.tenant for event in appended})
    return list(dict.fromkeys(announced))
