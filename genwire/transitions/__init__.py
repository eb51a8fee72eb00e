"""The moves of the state machines, each inside a write transaction: a job's
(`jobs`) and, when a clip ends, its project's (`projects`)."""

from genwire.transitions.jobs import (
    RequeueReason,
    append_status,
    end,
    lease_of,
    owned,
    owned_progress,
    replay_of,
    retry_or_fail,
    start,
)

__all__ = [
    "RequeueReason",
    "append_status",
    "end",
    "lease_of",
    "owned",
    "owned_progress",
    "replay_of",
    "retry_or_fail",
    "start",
]
