"""A job's attempts in words: the line `watch` prints when a job starts over, and
how a job ended, counting every attempt."""

from __future__ import annotations

from genwire.cli.times import took
from genwire.client import Job, JobStatusEvent

#: Why an attempt ended (the `reason.code` of the event that requeued its job), in
#: people's words, short enough for the line to fit in 80 columns; a code not listed
#: here (`released`: "its worker shut down", "the store failed while it ran") shows
#: the server's own `reason.message`.
REASON_WORDS = {
    "server_restarted": "the server restarted",
    "worker_lost": "its worker was lost",
}


def starting_over(requeue: JobStatusEvent, reached: float) -> str:
    """What `watch` says when the job goes back to the queue to run again from its
    start, `reached` being the overall progress the attempt that ended had made:
    "attempt 2 of 3: the server restarted during attempt 1 (at 40 %); starting over"."""
    of = f" of {requeue.max_attempts}" if requeue.max_attempts else ""
    at = f" (at {int(reached)} %)" if reached >= 1 else ""
    ended = requeue.attempt - 1
    if requeue.reason is None:  # a server from before requeues said why
        why = f"attempt {ended} stopped{at}"
    else:
        words = REASON_WORDS.get(requeue.reason.code) or requeue.reason.message
        why = f"{words} during attempt {ended}{at}"
    return f"attempt {requeue.attempt}{of}: {why}; starting over"


def outcome(job: Job) -> str:
    """The status and, once the job has ended, the time from its creation to its end
    (what its submitter waited, queue and every attempt included): "succeeded in
    12 s", "cancelled after 3 s", "succeeded after 2 attempts in 66 s"."""
    if job.finished_at is None:
        return job.status
    spent = took((job.finished_at - job.created_at).total_seconds())
    if job.attempt > 1:
        return f"{job.status} after {job.attempt} attempts in {spent}"
    return (
        f"{job.status} in {spent}" if job.status == "succeeded" else f"{job.status} after {spent}"
    )
