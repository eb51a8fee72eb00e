"""The `genwire` command: serve, worker, submit, watch, status, cancel, jobs, doctor (SPEC §1)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
import uvicorn
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from genwire import __version__
from genwire.api.sockets import listening_socket
from genwire.client import ApiError, Client, GenwireError, Job, TransportFailed
from genwire.client.sync import DEFAULT_URL
from genwire.config import (
    DEFAULT_DATA_DIR,
    DEFAULT_LEASE_TTL_S,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_SHUTDOWN_GRACE_S,
    DEFAULT_WEBHOOK_TIMEOUT_S,
    DEFAULT_WORKERS,
    MAX_POLL_GATHER_S,
    Settings,
    parse_origins,
)
from genwire.delivery.feeds import FeedHub
from genwire.locks import DataDirInUse, acquire_server_lock
from genwire.pipelines.loading import PipelineLoadError, parse_modules
from genwire.providers.settings import ProviderSettings

T = TypeVar("T")
console = Console(stderr=True)
out = Console()

#: Exit codes of `submit --wait` and `watch`: one per terminal status.
EXIT_CODES = {"succeeded": 0, "failed": 1, "cancelled": 2}

server_option = click.option(
    "--server",
    envvar="GENWIRE_URL",
    default=DEFAULT_URL,
    show_default=True,
    help="The genwire server (env GENWIRE_URL).",
)


def worker_options(command: Callable[..., None]) -> Callable[..., None]:
    """Options of whatever runs workers: `serve` and `worker`."""
    options = [
        click.option(
            "--data-dir",
            envvar="GENWIRE_DATA_DIR",
            default=DEFAULT_DATA_DIR,
            show_default=True,
            type=click.Path(file_okay=False, path_type=Path),
            help="Database (embedded default) and artifacts.",
        ),
        click.option(
            "--job-timeout",
            type=click.FloatRange(min=0.1),
            default=None,
            help="Cap, in seconds, on every pipeline's time limit.",
        ),
        click.option(
            "--lease-ttl",
            type=click.FloatRange(min=0.5),
            default=DEFAULT_LEASE_TTL_S,
            show_default=True,
            help="Seconds after which a silent worker's job is taken back.",
        ),
        click.option(
            "--max-attempts",
            type=click.IntRange(1, 100),
            default=DEFAULT_MAX_ATTEMPTS,
            show_default=True,
            help="Runs of a job before a lost worker fails it.",
        ),
        click.option(
            "--shutdown-grace",
            type=click.FloatRange(min=0),
            default=DEFAULT_SHUTDOWN_GRACE_S,
            show_default=True,
            help="On SIGTERM, seconds running jobs get to finish before going back to the queue.",
        ),
        click.option(
            "--allow-private-webhooks",
            is_flag=True,
            envvar="GENWIRE_ALLOW_PRIVATE_WEBHOOKS",
            help="Allow webhook targets in private address ranges "
            "(env GENWIRE_ALLOW_PRIVATE_WEBHOOKS=1).",
        ),
        click.option(
            "--webhook-timeout",
            type=click.FloatRange(min=0.1),
            default=DEFAULT_WEBHOOK_TIMEOUT_S,
            show_default=True,
            help="Seconds one webhook request may take. Webhooks are signed with "
            "GENWIRE_WEBHOOK_SECRET (whsec_…), else a secret kept in the data dir.",
        ),
        click.option(
            "--public-url",
            envvar="GENWIRE_PUBLIC_URL",
            default=None,
            help="Where providers reach this deployment (env GENWIRE_PUBLIC_URL); with it, "
            "Replicate, fal and Runware call its webhook instead of being polled alone.",
        ),
        click.option(
            "--pipelines",
            "pipeline_modules",
            envvar="GENWIRE_PIPELINES",
            default="",
            help="Modules of your own pipelines, comma-separated (env GENWIRE_PIPELINES); "
            "installed packages' `genwire.pipelines` entry points load too.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _worker_settings(options: dict[str, Any]) -> dict[str, Any]:
    return {
        "data_dir": options["data_dir"],
        "job_timeout_s": options["job_timeout"],
        "lease_ttl_s": options["lease_ttl"],
        "max_attempts": options["max_attempts"],
        "shutdown_grace_s": options["shutdown_grace"],
        "allow_private_webhooks": options["allow_private_webhooks"],
        "webhook_timeout_s": options["webhook_timeout"],
        "webhook_secret": _webhook_secret(),
        "public_url": _public_url(options["public_url"]),
        "pipeline_modules": parse_modules(options["pipeline_modules"]),
        "providers": _provider_settings(),
    }


def _public_url(raw: str | None) -> str | None:
    if not raw:
        return None
    if not raw.startswith(("http://", "https://")):
        raise click.UsageError(f"--public-url must be an http(s) URL, not {raw!r}")
    return raw.rstrip("/")


def _provider_settings() -> ProviderSettings:
    try:
        return ProviderSettings.from_env()
    except ValueError as error:
        raise click.UsageError(f"provider settings: {error}") from None


def _webhook_secret() -> str | None:
    """GENWIRE_WEBHOOK_SECRET, checked; None when unset (the data dir's own is used)."""
    from genwire.webhooks.signing import secret_key

    secret = os.environ.get("GENWIRE_WEBHOOK_SECRET") or None
    if secret is not None:
        try:
            secret_key(secret)
        except ValueError as error:
            raise click.UsageError(f"GENWIRE_WEBHOOK_SECRET: {error}") from None
    return secret


@click.group()
@click.version_option(__version__, prog_name="genwire")
def main() -> None:
    """genwire: long generative-media jobs whose every update reaches you."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--database",
    envvar="GENWIRE_DATABASE_URL",
    default=None,
    help="postgresql://… (default: SQLite under the data dir).",
)
@click.option(
    "--workers",
    default=DEFAULT_WORKERS,
    show_default=True,
    type=click.IntRange(0, 256),
    help="In-process worker slots (0: API only).",
)
@click.option(
    "--keepalive",
    type=click.FloatRange(min=0.1),
    default=Settings.keepalive_s,
    show_default=True,
    help="Seconds between keepalive comments on an idle stream.",
)
@click.option(
    "--poll-gather",
    type=click.FloatRange(min=0, max=MAX_POLL_GATHER_S),
    default=Settings.poll_gather_s,
    show_default=True,
    help="Seconds a long-poll that waited gathers events after the first (0: none).",
)
@click.option("--insecure", is_flag=True, help="Allow listening beyond loopback with no API key.")
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    help="An origin whose pages may call the API (repeat; env GENWIRE_CORS_ORIGINS, comma-separated).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@worker_options
def serve(
    host: str,
    port: int,
    database: str | None,
    workers: int,
    keepalive: float,
    poll_gather: float,
    insecure: bool,
    cors_origins: tuple[str, ...],
    log_level: str,
    **options: Any,
) -> None:
    """Run the API, the web page and in-process workers."""
    from genwire.api import create_app

    settings = Settings(
        database_url=database,
        host=host,
        port=port,
        workers=workers,
        keepalive_s=keepalive,
        poll_gather_s=poll_gather,
        api_keys=Settings.from_env().api_keys,
        insecure=insecure,
        cors_origins=parse_origins(",".join(cors_origins)) or Settings.from_env().cors_origins,
        **_worker_settings(options),
    )
    try:
        settings.check_exposure()
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    _configure_logging(log_level)
    try:
        sock = listening_socket(host, port, settings.peer_timeout_s)
    except OSError as error:
        raise click.ClickException(f"cannot listen on {host}:{port}: {error.strerror}") from None
    server_lock = None
    if settings.uses_embedded_database:
        try:
            server_lock = acquire_server_lock(settings.data_dir)
        except DataDirInUse as error:
            raise click.ClickException(str(error)) from None
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{sock.getsockname()[1]}"
    try:
        app = create_app(settings, server_lock=server_lock)
    except PipelineLoadError as error:
        raise click.ClickException(str(error)) from None
    server = _AnnouncingServer(
        uvicorn.Config(
            app,
            log_level=log_level,
            # Off unless shown: uvicorn formats each line's fields before the level check.
            access_log=log_level in ("debug", "info"),
            lifespan="on",
            timeout_graceful_shutdown=5,
        ),
        f"genwire {__version__} serving on [bold]{url}[/] "
        f"(data: {settings.data_dir}, workers: {workers})",
        app.state.hub,
    )
    server.run(sockets=[sock])
    if not server.started and not server.should_exit:
        sys.exit(1)


class _AnnouncingServer(uvicorn.Server):
    """Says where it serves once the app has started, not before it may fail; ends
    its streams first when it stops."""

    def __init__(self, config: uvicorn.Config, announcement: str, hub: FeedHub) -> None:
        super().__init__(config)
        self.announcement = announcement
        self.hub = hub

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            # What start-up built (modules, SQLAlchemy, pydantic: ~200k objects) lives
            # as long as the process: out of the collector's way, a full collection
            # under load takes 16 ms instead of 89 (docs/PERFORMANCE.md).
            gc.collect()
            gc.freeze()
            console.print(self.announcement)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # End every stream now, so uvicorn's wait for open connections is short and
        # clients resume at once instead of being cut off after the grace.
        self.hub.begin_shutdown()
        await super().shutdown(sockets)


@main.command()
@click.option(
    "--database",
    envvar="GENWIRE_DATABASE_URL",
    required=True,
    help="The database the API nodes use (sqlite:///… or postgresql://…).",
)
@click.option(
    "--concurrency", default=DEFAULT_WORKERS, show_default=True, type=click.IntRange(1, 256)
)
@worker_options
def worker(database: str, concurrency: int, **options: Any) -> None:
    """Run workers only, beside API nodes that share the database.

    Artifacts go under the data dir, which the API nodes must share to serve them:
    by default, beside a SQLite database (where `genwire serve` keeps them).
    """
    from genwire.runtime import Runtime

    source = click.get_current_context().get_parameter_source("data_dir")
    if source is click.ParameterSource.DEFAULT and database.startswith("sqlite:///"):
        options["data_dir"] = Path(database.removeprefix("sqlite:///")).parent
    _configure_logging("info")
    settings = Settings(database_url=database, workers=concurrency, **_worker_settings(options))

    async def run() -> None:
        try:
            runtime = Runtime.build(settings, own_data_dir=False)
        except PipelineLoadError as error:
            raise click.ClickException(str(error)) from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await runtime.start()
        console.print(
            f"genwire worker {runtime.pool.worker_id if runtime.pool else ''} "
            f"running {concurrency} slot(s)"
        )
        await stop.wait()
        console.print("stopping: running jobs get a grace period, then go back to the queue")
        await runtime.stop()

    asyncio.run(run())


def parse_input(pairs: tuple[str, ...], raw_json: str | None) -> tuple[dict[str, Any], set[str]]:
    """`key=value` (a string) and `key:=json` pairs, over an optional JSON object.

    Returns the values and the keys given as plain strings (`key=value`)."""
    values: dict[str, Any] = {}
    plain_keys: set[str] = set()
    if raw_json:
        try:
            parsed = json.loads(raw_json)
        except json.JSONDecodeError as error:
            raise click.BadParameter(f"not JSON: {error}", param_hint="--input") from None
        if not isinstance(parsed, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--input")
        values.update(parsed)
    for pair in pairs:
        if ":=" in pair and pair.index(":=") < pair.find("=") + 1:
            key, _, text = pair.partition(":=")
            plain_keys.discard(key)
            try:
                values[key] = json.loads(text)
            except json.JSONDecodeError as error:
                raise click.BadParameter(f"{pair!r}: not JSON: {error}") from None
        elif "=" in pair:
            key, _, text = pair.partition("=")
            values[key] = text
            plain_keys.add(key)
        else:
            raise click.BadParameter(f"{pair!r}: expected key=value or key:=json")
    return values, plain_keys


def coerce_to_schema(
    values: dict[str, Any], plain_keys: set[str], schema: dict[str, Any]
) -> dict[str, Any]:
    """Read `key=8` as the number 8 where the pipeline's schema wants no string."""
    properties = schema.get("properties", {})
    coerced = dict(values)
    for key in plain_keys & set(values):
        spec = properties.get(key, {})
        types = {spec.get("type")} | {option.get("type") for option in spec.get("anyOf", [])}
        if "string" in types or types <= {None}:
            continue
        with contextlib.suppress(json.JSONDecodeError):
            coerced[key] = json.loads(values[key])
    return coerced


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
    with _client(server) as client:
        if plain:
            schemas = {item.name: item.input_schema for item in _api(client.pipelines)}
            values = coerce_to_schema(values, plain, schemas.get(pipeline, {}))
        job = _api(lambda: client.submit(pipeline, values, idempotency_key=idempotency_key))
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
        with _api_errors():
            for event in client.events(job.id):
                _show(progress, bar, event)
    return _api(lambda: client.get(job.id))


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
    with _client(server) as client:
        job = _api(lambda: client.get(job_id))
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
    with _client(server) as client:
        job = _api(lambda: client.get(job_id))
        final = _follow(client, job)
        _print_result(client, final, as_json)
        sys.exit(EXIT_CODES.get(final.status, 1))


@main.command()
@click.argument("job_id")
@server_option
def cancel(job_id: str, server: str) -> None:
    """Cancel a job (queued: at once; running: its worker stops it)."""
    with _client(server) as client:
        job = _api(lambda: client.cancel(job_id))
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
    with _client(server) as client:
        page = _api(lambda: client.list(status=status_filter, pipeline=pipeline, limit=limit))
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


@main.command()
@click.argument("url", required=False)
@click.option(
    "--keepalive-wait",
    type=click.FloatRange(min=0.5, max=600),
    default=25.0,
    show_default=True,
    help="Seconds to wait for a keepalive comment on an idle stream.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as JSON.")
@server_option
def doctor(url: str | None, keepalive_wait: float, as_json: bool, server: str) -> None:
    """Check that results reach clients live: health, a job end to end over SSE, a
    buffering proxy, long-poll, file download, keepalive spacing.

    Exits 1 when a check fails, 0 otherwise (warnings allowed)."""
    from genwire.doctor import Check, run_checks

    target = url or server
    marks = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]fail[/]"}

    def progress(check: Check) -> None:
        if not as_json:
            console.print(f"{marks[check.verdict]}  {check.name}")

    console.print(f"genwire doctor: {target}")
    checks = run_checks(
        target, keepalive_wait_s=keepalive_wait, on_check=progress, running=_spinner()
    )
    failed = any(check.verdict == "fail" for check in checks)
    if as_json:
        out.print_json(
            data={
                "server": target,
                "ok": not failed,
                "checks": [check.as_json() for check in checks],
            }
        )
    else:
        table = Table("check", "verdict", "detail", "fix", show_lines=True)
        for check in checks:
            table.add_row(check.name, marks[check.verdict], check.detail, check.fix)
        out.print(table)
    sys.exit(1 if failed else 0)


def _spinner() -> Callable[[str], contextlib.AbstractContextManager[object]] | None:
    """A spinner on stderr saying what runs now (a doctor check can take tens of
    seconds), for a person at a terminal only: pipes, files and tests get plain lines."""
    if out.is_terminal and console.is_terminal:
        return console.status
    return None


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # One line per webhook sent would drown the log; failures are logged by genwire.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _client(server: str) -> Client:
    return Client(server)


@contextlib.contextmanager
def _api_errors() -> Iterator[None]:
    """Turn a client call's failures into one clear line and exit code 3."""
    try:
        yield
    except ApiError as error:
        console.print(f"[red]error[/] ({error.status} {error.code}): {error}")
        sys.exit(3)
    except TransportFailed as error:
        console.print(f"[red]error[/]: cannot reach the server: {error}")
        sys.exit(3)
    except GenwireError as error:
        console.print(f"[red]error[/]: {error}")
        sys.exit(3)


def _api(call: Callable[[], T]) -> T:
    with _api_errors():
        return call()
    raise AssertionError("unreachable: _api_errors exits on failure")
