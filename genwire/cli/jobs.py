"""The client commands about jobs: submit, status, watch, cancel, jobs; a live
progress bar through a job's phases, and a listing that reads in 80 columns."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from genwire.cli.attempts import outcome, starting_over
from genwire.cli.inputs import coerce_to_schema, parse_input
from genwire.cli.main import main
from genwire.cli.short_ids import matching_ids, short_ids
from genwire.cli.terminal import (
    EXIT_CODES,
    api,
    api_errors,
    client_of,
    console,
    fail,
    out,
    server_option,
)
from genwire.cli.times import ago
from genwire.client import Client, Conflict, Job, JobStatusEvent

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the job's snapshot as JSON instead."
)


@main.command()
@click.argument("pipeline")
@click.argument("pairs", nargs=-1, metavar="[KEY=VALUE | KEY:=JSON]...")
@click.option(
    "--input",
    "raw_json",
    metavar="JSON",
    help="The input as a JSON object; the pairs go over it.",
)
@click.option("--wait", "--watch", "wait", is_flag=True, help="Follow the job live to its end.")
@click.option(
    "--idempotency-key",
    metavar="KEY",
    help="Sending again with the same key (and input) returns the same job, never a second.",
)
@json_option
@server_option
def submit(
    pipeline: str,
    pairs: tuple[str, ...],
    raw_json: str | None,
    wait: bool,
    idempotency_key: str | None,
    as_json: bool,
    server: str,
) -> None:
    """Start a job of PIPELINE on an input given as pairs.

    \b
      KEY=VALUE  text, or a number or true/false where the pipeline wants one
      KEY:=JSON  any JSON value: 8, true, null, [1, 2], {"prompt": "a fox"}
      --input    a whole JSON object, under the pairs

    \b
    Examples:
      genwire submit demo.video prompt="A lighthouse at dawn" --wait
      genwire submit demo.video prompt=Waves duration_s=4 scenes:=2
      genwire submit fal model=fal-ai/flux/schnell input:='{"prompt": "a fox"}'

    Each pipeline's fields are in its input schema: GET /api/pipelines. With --wait,
    exits 0 when the job succeeded, 1 when it failed, 2 when it was cancelled; 3 when
    the call failed (the message names the failing fields).
    """
    values, plain = parse_input(pairs, raw_json)
    with client_of(server) as client:
        if plain:
            schemas = {item.name: item.input_schema for item in api(client, client.pipelines)}
            values = coerce_to_schema(values, plain, schemas.get(pipeline, {}))
        job = api(client, lambda: client.submit(pipeline, values, idempotency_key=idempotency_key))
        if not wait:
            if as_json:
                out.print_json(data=job.raw)
            else:
                out.print(f"{job.id}  {job.status}")
                console.print(f"follow it: genwire watch {job.id}", soft_wrap=True)
            return
        console.print(f"job [bold]{job.id}[/] queued")
        final = _follow(client, job)
        _print_result(client, final, as_json)
        sys.exit(EXIT_CODES.get(final.status, 1))


def _follow(client: Client, job: Job) -> Job:
    """Follow the job's event stream to its end, drawing phases, progress, messages,
    warnings and ETA; returns the final snapshot."""
    with JobBar(job) as bar, api_errors(client.server):
        for event in client.events(job.id):
            bar.show(event)
    return api(client, lambda: client.get(job.id))


#: The terminal events, and the word the bar's phase column shows after each.
_ENDINGS = {"job-completed": "succeeded", "job-failed": "failed", "job-cancelled": "cancelled"}


class JobBar:
    """The live bar of one job on stderr, fed its events in order from the first: the
    lines above it say what happened (a phase done, a warning, a file, a start over).

    When the job starts over (a job-status event of a later attempt: the server
    restarted, its worker was lost), a line says why and where the last attempt got
    to, and the bar starts again from 0, its elapsed time too: the run does not
    seem to carry on from where the last attempt stopped."""

    def __init__(self, job: Job, terminal: Console = console) -> None:
        self.progress = Progress(
            TextColumn("{task.fields[phase]:<10}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[eta]:>9}"),
            TextColumn("{task.fields[message]}"),
            console=terminal,
            transient=False,
        )
        self.task = self.progress.add_task(
            job.id, total=100, phase=job.phase or job.status, message="", eta=""
        )
        self.attempt = 1  # the attempt of the events shown so far (a log starts at 1)
        self.reached = 0.0  # the overall progress of that attempt

    def __enter__(self) -> JobBar:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    def show(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "job-status" and (event.get("attempt") or 1) > self.attempt:
            self._start_over(JobStatusEvent.from_json(event))
        fields: dict[str, Any] = {}
        if "progress" in event:
            fields["completed"] = self.reached = event["progress"]
        if kind == "job-status":
            fields["phase"] = event.get("phase") or event["status"]
            fields["message"] = escape((event.get("message") or "")[:60])
            # An ETA holds while steps run; a change of status (a cancel asked) ends it.
            fields["eta"] = ""
        elif kind == "step-status":
            fields["phase"] = event["phase"]
            if event["state"] in ("completed", "skipped"):
                mark = "[green]✓[/]" if event["state"] == "completed" else "[dim]–[/]"
                self.progress.console.print(f"{mark} {escape(event['phase'])} {event['state']}")
        elif kind == "step-progress":
            fields["phase"] = event["phase"]
            fields["message"] = escape((event.get("message") or "")[:60])
            eta = event.get("eta_s")
            fields["eta"] = f"ETA {eta:.0f}s" if isinstance(eta, int | float) else ""
        elif kind == "warning":
            self.progress.console.print(f"[yellow]warning[/] {escape(event['message'])}")
        elif kind == "artifact":
            artifact = event["artifact"]
            self.progress.console.print(
                f"[cyan]artifact[/] {escape(artifact['name'])} ({escape(artifact['type'])})"
            )
        elif kind in _ENDINGS:
            fields.update(phase=_ENDINGS[kind], eta="", message="")
            if kind == "job-completed":
                fields["completed"] = 100
        self.progress.update(self.task, **fields)
        if kind in _ENDINGS:
            self.progress.stop_task(self.task)  # the elapsed time stops where the job did

    def _start_over(self, requeue: JobStatusEvent) -> None:
        self.progress.console.print(f"[yellow]{escape(starting_over(requeue, self.reached))}[/]")
        self.attempt = requeue.attempt
        self.reached = 0.0
        # reset() replaces the task's fields: all of them, then the event's own.
        self.progress.reset(self.task, completed=0, phase=requeue.status, message="", eta="")


def _print_result(client: Client, job: Job, as_json: bool) -> None:
    if as_json:
        out.print_json(data=job.raw)
        return
    color = {"succeeded": "green", "failed": "red"}.get(job.status, "yellow")
    out.print(f"[{color}]{outcome(job)}[/]  {job.id}")
    if job.error:
        out.print(f"  error {escape(job.error.code)}: {escape(job.error.message)}")
    for artifact in job.artifacts:
        out.print(f"  {escape(artifact.name)}  ({artifact.type}, {_size(artifact.size_bytes)})")
        out.print(f"    {client.absolute(artifact.url)}", soft_wrap=True)


def _size(size_bytes: int) -> str:
    size = float(size_bytes)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _job_id(client: Client, text: str) -> str:
    """The id of the one job `text` names (see `short_ids`); else the command ends
    on a line saying why."""
    found = api(client, lambda: matching_ids(client, text))
    if not found:
        fail(
            f"no job at {client.server} has an id that starts with {text} — "
            "`genwire jobs` lists the jobs you can see"
        )
    if len(found) > 1:
        fail(
            f"more than one job has an id that starts with {text} "
            f"({', '.join(found)}, …): give more of it"
        )
    return found[0]


@main.command()
@click.argument("job_text", metavar="JOB")
@json_option
@server_option
def status(job_text: str, as_json: bool, server: str) -> None:
    """Show one job: status, progress, phase, message, error, artifacts.

    JOB is a job's id, or the short id `genwire jobs` shows: any start of an id that
    only one of your jobs has."""
    with client_of(server) as client:
        job_id = _job_id(client, job_text)
        job = api(client, lambda: client.get(job_id))
        if as_json:
            out.print_json(data=job.raw)
            return
        attempt = f" (attempt {job.attempt})" if job.attempt > 1 else ""
        out.print(
            f"{job.id}  {escape(job.pipeline)}  [bold]{job.status}[/]{attempt}  "
            f"{job.progress:.0f}%  {escape(job.phase or '')}  {escape(job.message or '')}"
        )
        if job.status == "queued" and job.queue_position is not None:
            out.print(f"  {job.queue_position} job(s) ahead in the queue")
        _print_result(client, job, as_json=False)


@main.command()
@click.argument("job_text", metavar="JOB")
@click.option("--json", "as_json", is_flag=True, help="Print the final snapshot as JSON.")
@server_option
def watch(job_text: str, as_json: bool, server: str) -> None:
    """Follow a job live to its end, then show its result.

    Phases, progress, messages, warnings and ETA as they come. JOB is a job's id, or
    the short id `genwire jobs` shows: any start of an id that only one of your jobs
    has. Exits 0 when the job succeeded, 1 when it failed, 2 when it was cancelled; 3
    when a call failed."""
    with client_of(server) as client:
        job_id = _job_id(client, job_text)
        job = api(client, lambda: client.get(job_id))
        final = _follow(client, job)
        _print_result(client, final, as_json)
        sys.exit(EXIT_CODES.get(final.status, 1))


@main.command()
@click.argument("job_text", metavar="JOB")
@server_option
def cancel(job_text: str, server: str) -> None:
    """Cancel a job: a queued one at once, a running one by its worker.

    JOB is a job's id, or the short id `genwire jobs` shows: any start of an id that
    only one of your jobs has. Exits 0 when the job is cancelled or being cancelled
    (it had already been, too), 1 when it had already ended otherwise, 3 when a call
    failed."""
    with client_of(server) as client:
        job_id = _job_id(client, job_text)
        with api_errors(client.server):
            try:
                job: Job | None = client.cancel(job_id)
            except Conflict:  # 409: the job had ended before the cancel came (SPEC §3)
                job = None
        if job is None:
            ended = api(client, lambda: client.get(job_id))
            out.print(f"job {ended.id} had already ended: {outcome(ended)}")
            sys.exit(0 if ended.status == "cancelled" else 1)
        if job.status == "running":
            out.print(f"cancelling job {job.id}: its worker stops it")
        else:
            out.print(f"job {job.id} {job.status}")


#: The colour of each status in the listing (none: the terminal's own).
_STATUS_STYLES = {"running": "cyan", "succeeded": "green", "failed": "red", "cancelled": "yellow"}


@main.command()
@click.option(
    "--status",
    "status_filter",
    type=click.Choice(["queued", "running", "succeeded", "failed", "cancelled"]),
    help="Only the jobs of this status.",
)
@click.option("--pipeline", help="Only the jobs of this pipeline.")
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(1, 100),
    help="How many of the newest jobs to list.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the API's page as JSON: whole ids, every field."
)
@server_option
def jobs(
    status_filter: str | None, pipeline: str | None, limit: int, as_json: bool, server: str
) -> None:
    """List your jobs, newest first.

    Each job shows as a short id, its id up to the millisecond it was made (longer
    where two jobs share that millisecond): `genwire status`, `watch` and `cancel`
    take it as they take a whole id."""
    with client_of(server) as client:
        page = api(
            client, lambda: client.list(status=status_filter, pipeline=pipeline, limit=limit)
        )
        url = client.server
    if as_json:
        out.print_json(data=page.raw)
        return
    if not page.items:
        out.print(_no_jobs(url, status_filter, pipeline), soft_wrap=True)
        return
    now = datetime.now(UTC)
    shown = short_ids([job.id for job in page])
    # No borders, and progress and phase in one column: at 80 columns id, status,
    # progress and time stay whole on one line; a long pipeline name folds onto a
    # second line rather than losing letters.
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    table.add_column("id", no_wrap=True)
    table.add_column("pipeline", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("progress", overflow="fold")
    table.add_column("created", no_wrap=True)
    for job in page:
        attempt = f", attempt {job.attempt}" if job.attempt > 1 else ""
        table.add_row(
            shown[job.id],
            escape(job.pipeline),
            f"[{_STATUS_STYLES.get(job.status, 'default')}]{job.status}[/]",
            escape(f"{job.progress:.0f}% {job.phase or ''}".strip() + attempt),
            ago(job.created_at, now),
        )
    out.print(table)
    if page.next_cursor is not None:
        more = "--limit 100 lists more" if limit < 100 else "--status and --pipeline narrow it"
        console.print(f"the newest {len(page)} of more; {more}")


def _no_jobs(server: str, status_filter: str | None, pipeline: str | None) -> str:
    """What `jobs` says instead of an empty table, and what to do next."""
    if status_filter is None and pipeline is None:
        return (
            f"No jobs yet at {server}. Start one:\n"
            '  genwire submit demo.video prompt="A lighthouse at dawn" --wait'
        )
    kind = f"{status_filter} jobs" if status_filter else "jobs"
    of = f" of {escape(pipeline)}" if pipeline else ""
    return f"No {kind}{of} at {server}; `genwire jobs` lists them all."
