"""A job that starts over, as the Python client and the `genwire` command tell it
(issue 18, item 5): the requeue event read typed, the line `watch` prints, its bar
back at 0, and an ending that counts every attempt. In-process; the real requeue
after a killed server is in test_process_recovery.py."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console

from genwire.cli.attempts import outcome, starting_over
from genwire.cli.jobs import JobBar
from genwire.client import Job, JobStatusEvent, RequeueReason

CREATED = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def status_event(seq: int, status: str, progress: float, attempt: int, **extra: Any) -> Any:
    return {
        "id": f"{seq:020d}",
        "type": "job-status",
        "job_id": "job_1",
        "ts": "2026-12-06T12:00:01.000000Z",
        "status": status,
        "phase": None,
        "progress": progress,
        "message": status,
        "attempt": attempt,
        **extra,
    }


def requeue_event(
    seq: int, attempt: int, code: str = "server_restarted", message: str = "the server stopped"
) -> Any:
    return status_event(
        seq,
        "queued",
        0.0,
        attempt,
        queue_position=1,
        max_attempts=3,
        reason={"code": code, "message": message},
    )


def requeue(
    attempt: int = 2, code: str | None = "server_restarted", max_attempts: int | None = 3
) -> JobStatusEvent:
    event = requeue_event(7, attempt, code or "")
    if code is None:
        del event["reason"]
    if max_attempts is None:
        del event["max_attempts"]
    return JobStatusEvent.from_json(event)


def job(attempt: int, status: str, seconds: float) -> Job:
    return Job.from_json(
        {
            "id": "job_1",
            "pipeline": "demo.synthetic",
            "status": status,
            "attempt": attempt,
            "created_at": CREATED.isoformat(),
            "finished_at": (CREATED + timedelta(seconds=seconds)).isoformat(),
        }
    )


# --- the client ---------------------------------------------------------------------


def test_a_requeue_event_reads_typed_with_its_attempt_max_attempts_and_reason() -> None:
    event = JobStatusEvent.from_json(
        requeue_event(7, 2, "worker_lost", "its worker stopped responding")
    )

    assert event.status == "queued"
    assert event.attempt == 2
    assert event.max_attempts == 3
    assert event.reason == RequeueReason("worker_lost", "its worker stopped responding", {})
    assert event.queue_position == 1
    assert event.ts == datetime(2026, 12, 6, 12, 0, 1, tzinfo=UTC)
    assert event.raw["reason"]["code"] == "worker_lost"


def test_any_other_job_status_event_has_no_reason_nor_max_attempts() -> None:
    event = JobStatusEvent.from_json(status_event(3, "running", 12.5, 1))

    assert (event.status, event.progress, event.attempt) == ("running", 12.5, 1)
    assert event.reason is None
    assert event.max_attempts is None


# --- the line watch prints ----------------------------------------------------------


def test_a_start_over_says_which_attempt_why_and_where_the_last_one_got_to() -> None:
    line = starting_over(requeue(), reached=40.7)

    assert line == "attempt 2 of 3: the server restarted during attempt 1 (at 40 %); starting over"


def test_each_reason_code_reads_in_words_and_an_unknown_one_shows_the_server_s_message() -> None:
    lost = starting_over(requeue(3, "worker_lost"), reached=88)
    released = JobStatusEvent.from_json(requeue_event(7, 2, "released", "its worker shut down"))

    assert lost == "attempt 3 of 3: its worker was lost during attempt 2 (at 88 %); starting over"
    assert starting_over(released, reached=12) == (
        "attempt 2 of 3: its worker shut down during attempt 1 (at 12 %); starting over"
    )


def test_a_start_over_leaves_out_what_it_does_not_know() -> None:
    assert starting_over(requeue(), reached=0) == (
        "attempt 2 of 3: the server restarted during attempt 1; starting over"
    )
    assert starting_over(requeue(code=None, max_attempts=None), reached=55) == (
        "attempt 2: attempt 1 stopped (at 55 %); starting over"
    )


def test_the_start_over_lines_fit_in_80_columns() -> None:
    for code in ("server_restarted", "worker_lost"):
        assert len(starting_over(requeue(9, code, max_attempts=10), reached=99.9)) <= 80


# --- the bar ------------------------------------------------------------------------


def test_the_bar_of_a_job_that_starts_over_says_why_and_runs_again_from_0() -> None:
    written = io.StringIO()
    terminal = Console(file=written, width=80, color_system=None)
    snapshot = job(1, "running", 0)
    with JobBar(snapshot, terminal) as bar:
        for event in (
            status_event(1, "queued", 0, 1),
            status_event(2, "running", 0, 1),
            {**status_event(3, "running", 40.2, 1), "type": "step-progress", "phase": "work"},
        ):
            bar.show(event)
        first = bar.progress.tasks[0]
        first_start = first.start_time
        assert first.completed == 40.2

        bar.show(requeue_event(4, 2))

        again = bar.progress.tasks[0]
        assert again.completed == 0
        assert first_start is not None
        assert again.start_time is not None
        assert again.start_time > first_start, "the elapsed time starts over too"
        bar.show(status_event(5, "running", 0, 2))
        bar.show(status_event(6, "running", 0, 2))  # the same attempt: no second line
    shown = written.getvalue()

    assert shown.count("starting over") == 1, shown
    assert "attempt 2 of 3: the server restarted during attempt 1 (at 40 %); starting over" in (
        shown
    )
    assert all(len(line) <= 80 for line in shown.splitlines()), shown


# --- the ending ---------------------------------------------------------------------


def test_the_ending_counts_every_attempt_once_a_job_started_over() -> None:
    assert outcome(job(2, "succeeded", 66)) == "succeeded after 2 attempts in 1 min 6 s"
    assert outcome(job(3, "failed", 30)) == "failed after 3 attempts in 30 s"
    assert outcome(job(1, "succeeded", 12)) == "succeeded in 12 s"
    assert outcome(job(1, "cancelled", 3)) == "cancelled after 3 s"
