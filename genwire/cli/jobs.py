"""The client commands about jobs: submit, status, watch, cancel, jobs; a live
progress bar through a job's phases."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from genwire.cli.inputs import coerce_to_schema, parse_input
from genwire.cli.main import main
from genwire.cli.terminal import EXIT_CODES, api, api_errors, client_of, console, out, server_option
from genwire.client import Client, Job


@main.command()
@click.argument("pipeline")
@click.argument("pairs", nargs=-1)
@click.option("--input", "raw_json", help="The input as a JSON object (pairs override it).")
@click.option("--wait", "--watch", "wait", is_flag=True, help="Follow the job live to its end.")
@click.option("--idempotency-key", help="Resending with the same key returns the same job.")
@click.option("--json", "as_json", is_flag=True, help="Print the job snapshot as JSON.")
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
    """Start a job: genwire submit demo.video prompt="A lighthouse at dawn" --wait"""
    values, plain = parse_input(pairs, raw_json)
    with client_of(server) as client:
        if plain:
            schemas = {item.name: item.input_schema for item in api(client.pipelines)}
            values = coerce_to_schema(values, plain, schemas.get(pipeline, {}))
        job = api(lambda: client.submit(pipeline, values, idempotency_key=idempotency_key))
        if not wait:
            if as_json:
                out.print_json(data=job.raw)
            else:
                out.print(f"{job.id}  {job.status}  (genwire status {job.id})")
            return
        console.print(f"job [bold]{job.id}[/] queued")
        final = _follow(client, job)
        _print_result(client, final, as_json)
        sys.exit(EXIT_CODES.get(final.status, 1))


def _follow(client: Client, job: Job) -> Job:
    """Follow the job's event stream to its end, drawing phases, progress, messages,
    warnings and ETA; returns the final snapshot."""
    columns = (
        TextColumn("{task.fields[phase]:<10}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[eta]:>9}"),
        TextColumn("{task.fields[message]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task(
            job.id, total=100, phase=job.phase or job.status, message="", eta=""
        )
        with api_errors():
            for event in client.events(job.id):
                _show(progress, bar, event)
    return api(lambda: client.get(job.id))


def _show(progress: Progress, bar: TaskID, event: dict[str, Any]) -> None:
    kind = event.get("type")
    fields: dict[str, Any] = {}
    if "progress" in event:
        fields["completed"] = event["progress"]
    if kind == "job-status":
        fields["phase"] = event.get("phase") or event["status"]
        fields["message"] = (event.get("message") or "")[:60]
    elif kind == "step-status":
        fields["phase"] = event["phase"]
        if event["state"] in ("completed", "skipped"):
            mark = "[green]✓[/]" if event["state"] == "completed" else "[dim]–[/]"
            progress.console.print(f"{mark} {event['phase']} {event['state']}")
    elif kind == "step-progress":
        fields["phase"] = event["phase"]
        fields["message"] = (event.get("message") or "")[:60]
        eta = event.get("eta_s")
        fields["eta"] = f"ETA {eta:.0f}s" if isinstance(eta, int | float) else ""
    elif kind == "warning":
        progress.console.print(f"[yellow]warning[/] {event['message']}")
    elif kind == "artifact":
        artifact = event["artifact"]
        progress.console.print(f"[cyan]artifact[/] {artifact['name']} ({artifact['type']})")
    elif kind == "job-completed":
        fields.update(completed=100, phase="done", eta="", message="")
    progress.update(bar, **fields)


def _print_result(client: Client, job: Job, as_json: bool) -> None:
    if as_json:
        out.print_json(data=job.raw)
        return
    color = {"succeeded": "green", "failed": "red"}.get(job.status, "yellow")
    out.print(f"[{color}]{job.status}[/]  {job.id}")
    if job.error:
        out.print(f"  error {job.error.code}: {job.error.message}")
    for artifact in job.artifacts:
        out.print(f"  {artifact.name}  ({artifact.type}, {_size(artifact.size_bytes)})")
        out.print(f"    {client.absolute(artifact.url)}", soft_wrap=True)


def _size(size_bytes: int) -> str:
    size = float(size_bytes)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


@main.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@server_option
def status(job_id: str, as_json: bool, server: str) -> None:
    """Show one job."""
    with client_of(server) as client:
        job = api(lambda: client.get(job_id))
        if as_json:
            out.print_json(data=job.raw)
            return
        out.print(
            f"{job.id}  {job.pipeline}  [bold]{job.status}[/]  "
            f"{job.progress:.0f}%  {job.phase or ''}  {job.message or ''}"
        )
        if job.status == "queued" and job.queue_position is not None:
            out.print(f"  {job.queue_position} job(s) ahead in the queue")
        _print_result(client, job, as_json=False)


@main.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the final snapshot as JSON.")
@server_option
def watch(job_id: str, as_json: bool, server: str) -> None:
    """Follow a job live: phases, progress, messages, warnings, ETA, then its result.

    Exits 0 when it succeeded, 1 when it failed, 2 when it was cancelled."""
    with client_of(server) as client:
        job = api(lambda: client.get(job_id))
        final = _follow(client, job)
        _print_result(client, final, as_json)
        sys.exit(EXIT_CODES.get(final.status, 1))


@main.command()
@click.argument("job_id")
@server_option
def cancel(job_id: str, server: str) -> None:
    """Cancel a job (queued: at once; running: its worker stops it)."""
    with client_of(server) as client:
        job = api(lambda: client.cancel(job_id))
        state = "cancelling" if job.status == "running" else job.status
        out.print(f"{job.id}  {state}")


@main.command()
@click.option(
    "--status",
    "status_filter",
    type=click.Choice(["queued", "running", "succeeded", "failed", "cancelled"]),
)
@click.option("--pipeline")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100))
@click.option("--json", "as_json", is_flag=True)
@server_option
def jobs(
    status_filter: str | None, pipeline: str | None, limit: int, as_json: bool, server: str
) -> None:
    """List jobs, newest first."""
    with client_of(server) as client:
        page = api(lambda: client.list(status=status_filter, pipeline=pipeline, limit=limit))
    if as_json:
        out.print_json(data=page.raw)
        return
    table = Table("id", "pipeline", "status", "progress", "phase", "created")
    table.columns[0].no_wrap = True
    for job in page:
        table.add_row(
            job.id,
            job.pipeline,
            job.status,
            f"{job.progress:.0f}%",
            job.phase or "",
            f"{job.created_at:%Y-%m-%dT%H:%M:%S}",
        )
    out.print(table)
