"""`genwire serve` and `genwire worker`: settings from flags and the environment,
the listening socket, uvicorn, and the worker process's own loop."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from uvicorn import Config, Server

from genwire import __version__
from genwire.api.fastpath import listening_socket
from genwire.api.guard import raise_open_files_limit
from genwire.api.log_redaction import redact_logs, secrets_from_env
from genwire.api.serving import server_config
from genwire.apikeys import ApiKeys, KeysFileError
from genwire.cli.main import main
from genwire.cli.terminal import console
from genwire.config import (
    DEFAULT_DATA_DIR,
    DEFAULT_LEASE_TTL_S,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_SHUTDOWN_GRACE_S,
    DEFAULT_WEBHOOK_TIMEOUT_S,
    DEFAULT_WORKERS,
    MAX_POLL_GATHER_S,
    Settings,
    check_bus_url,
    check_storage_url,
    parse_api_keys,
    parse_modules,
    parse_origins,
)
from genwire.delivery import FeedHub
from genwire.locks import DataDirInUse, acquire_server_lock
from genwire.pipelines.loading import PipelineLoadError
from genwire.providers.settings import ProviderSettings
from genwire.storage import StorageNotInstalled

log = logging.getLogger("genwire.serve")


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
            "--bus",
            "bus_url",
            envvar="GENWIRE_BUS_URL",
            default=None,
            help="redis://… : wake-ups shared by every node and worker (env GENWIRE_BUS_URL); "
            "default: in-process only.",
        ),
        click.option(
            "--storage",
            "storage_url",
            envvar="GENWIRE_STORAGE_URL",
            default=None,
            help="Where artifacts live (env GENWIRE_STORAGE_URL): file://PATH, or "
            "s3://BUCKET/PREFIX with endpoint and credentials from AWS_*; default: the data dir.",
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
            "--max-running-per-tenant",
            envvar="GENWIRE_MAX_RUNNING_PER_TENANT",
            type=click.IntRange(min=1),
            default=None,
            help="Jobs of one tenant that may run at once across every worker "
            "(env GENWIRE_MAX_RUNNING_PER_TENANT); its other jobs wait even while slots "
            "are free, so a tenant's endless jobs cannot take them all. Default: no cap.",
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
        "bus_url": _checked(check_bus_url, options["bus_url"], "--bus"),
        "storage_url": _checked(check_storage_url, options["storage_url"], "--storage"),
        "job_timeout_s": options["job_timeout"],
        "lease_ttl_s": options["lease_ttl"],
        "max_attempts": options["max_attempts"],
        "max_running_per_tenant": options["max_running_per_tenant"],
        "shutdown_grace_s": options["shutdown_grace"],
        "allow_private_webhooks": options["allow_private_webhooks"],
        "webhook_timeout_s": options["webhook_timeout"],
        "webhook_secret": _webhook_secret(),
        "public_url": _public_url(options["public_url"]),
        "pipeline_modules": parse_modules(options["pipeline_modules"]),
        "providers": _provider_settings(),
    }


def limit_options(command: Callable[..., None]) -> Callable[..., None]:
    """The limits of `serve`: SPEC §3's, past which 429 with Retry-After (0 is none),
    and the connection guard's (`genwire.api.guard`), past which 408, 431 or 503."""
    options = [
        click.option(
            "--max-streams-per-tenant",
            envvar="GENWIRE_MAX_STREAMS_PER_TENANT",
            type=click.IntRange(min=0),
            default=Settings.max_streams_per_tenant,
            show_default=True,
            help="Open streams and long-polls of one API key, per API node "
            "(env GENWIRE_MAX_STREAMS_PER_TENANT; 0: no limit).",
        ),
        click.option(
            "--max-streams-per-address",
            envvar="GENWIRE_MAX_STREAMS_PER_ADDRESS",
            type=click.IntRange(min=0),
            default=Settings.max_streams_per_address,
            show_default=True,
            help="Open streams and long-polls from one client address, per API node "
            "(env GENWIRE_MAX_STREAMS_PER_ADDRESS; 0: no limit).",
        ),
        click.option(
            "--create-rate",
            envvar="GENWIRE_CREATE_RATE",
            type=click.FloatRange(min=0),
            default=Settings.create_rate_per_s,
            show_default=True,
            help="Jobs one API key may create per second, per API node "
            "(env GENWIRE_CREATE_RATE; 0: no limit).",
        ),
        click.option(
            "--create-burst",
            envvar="GENWIRE_CREATE_BURST",
            type=click.IntRange(min=1),
            default=Settings.create_burst,
            show_default=True,
            help="Jobs one API key may create at once, before --create-rate holds it "
            "back (env GENWIRE_CREATE_BURST).",
        ),
        click.option(
            "--max-queued-per-tenant",
            envvar="GENWIRE_MAX_QUEUED_PER_TENANT",
            type=click.IntRange(min=0),
            default=Settings.max_queued_per_tenant,
            show_default=True,
            help="Queued jobs of one API key, counted in the database "
            "(env GENWIRE_MAX_QUEUED_PER_TENANT; 0: no limit).",
        ),
        click.option(
            "--max-connections",
            envvar="GENWIRE_MAX_CONNECTIONS",
            type=click.IntRange(min=1),
            default=None,
            help="Connections this process holds; past it a new one is answered 503 "
            "(env GENWIRE_MAX_CONNECTIONS). Default: the open-files limit, raised to "
            "its hard limit, less a twentieth kept for the database and files.",
        ),
        click.option(
            "--max-connections-per-address",
            envvar="GENWIRE_MAX_CONNECTIONS_PER_ADDRESS",
            type=click.IntRange(min=0),
            default=None,
            help="Connections from one client address; past it 503 (env "
            "GENWIRE_MAX_CONNECTIONS_PER_ADDRESS). Default: three quarters of "
            "--max-connections; 0: no cap, for use behind a proxy.",
        ),
        click.option(
            "--head-timeout",
            envvar="GENWIRE_HEAD_TIMEOUT",
            type=click.FloatRange(min=0.1),
            default=Settings.head_timeout_s,
            show_default=True,
            help="Seconds a request's head may take to arrive whole; then 408 and the "
            "connection is closed (env GENWIRE_HEAD_TIMEOUT).",
        ),
        click.option(
            "--body-timeout",
            envvar="GENWIRE_BODY_TIMEOUT",
            type=click.FloatRange(min=0.1),
            default=Settings.body_timeout_s,
            show_default=True,
            help="Seconds a request's body may take to arrive whole after its head; "
            "then 408 (env GENWIRE_BODY_TIMEOUT).",
        ),
        click.option(
            "--max-head-size",
            envvar="GENWIRE_MAX_HEAD_SIZE",
            type=click.IntRange(min=1024),
            default=Settings.max_head_bytes,
            show_default=True,
            help="Bytes of a request's line and headers; past it 431 (env GENWIRE_MAX_HEAD_SIZE).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _limit_settings(options: dict[str, Any]) -> dict[str, Any]:
    return {
        "max_connections": options["max_connections"],
        "max_connections_per_address": options["max_connections_per_address"],
        "head_timeout_s": options["head_timeout"],
        "body_timeout_s": options["body_timeout"],
        "max_head_bytes": options["max_head_size"],
        "max_streams_per_tenant": options["max_streams_per_tenant"],
        "max_streams_per_address": options["max_streams_per_address"],
        "create_rate_per_s": options["create_rate"],
        "create_burst": options["create_burst"],
        "max_queued_per_tenant": options["max_queued_per_tenant"],
    }


def _checked(check: Callable[[str | None], str | None], raw: str | None, flag: str) -> str | None:
    try:
        return check(raw or None)
    except ValueError as error:
        raise click.UsageError(f"{flag}: {error}") from None


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


def _check_shared_secret(settings: Settings) -> None:
    """Refused before anything starts: nodes on one database must sign alike."""
    from genwire.webhooks.sender import SHARED_SECRET_NEEDED

    if settings.webhook_secret is None and not settings.uses_embedded_database:
        raise click.UsageError(SHARED_SECRET_NEEDED)


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
@click.option(
    "--keys-file",
    envvar="GENWIRE_KEYS_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="API keys as `sha256:<hex> TENANT` lines, read again when it changes "
    "(env GENWIRE_KEYS_FILE; beside GENWIRE_API_KEYS). `genwire keys hash TENANT` makes a line.",
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
@limit_options
@worker_options
def serve(
    host: str,
    port: int,
    database: str | None,
    workers: int,
    keepalive: float,
    poll_gather: float,
    keys_file: Path | None,
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
        api_keys=parse_api_keys(os.environ.get("GENWIRE_API_KEYS")),
        keys_file=keys_file,
        insecure=insecure,
        cors_origins=parse_origins(
            ",".join(cors_origins) or os.environ.get("GENWIRE_CORS_ORIGINS")
        ),
        **_worker_settings(options),
        **_limit_settings(options),
    )
    try:
        settings.check_exposure()
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    try:
        api_keys = ApiKeys(settings.api_keys, settings.keys_file)
    except KeysFileError as error:
        raise click.UsageError(str(error)) from None
    _check_shared_secret(settings)
    configure_logging(log_level)
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
    if settings.open_to_anyone:
        log.warning(
            "--insecure: serving %s with no API key: anyone who can reach it can read "
            "and create every job",
            url,
        )
    raise_open_files_limit()  # before the app derives its connection cap from it
    try:
        app = create_app(settings, server_lock=server_lock, api_keys=api_keys)
    except (PipelineLoadError, StorageNotInstalled) as error:
        raise click.ClickException(str(error)) from None
    server = _AnnouncingServer(
        server_config(
            app,
            log_level=log_level,
            # Off unless shown: uvicorn formats each line's fields before the level check.
            access_log=log_level in ("debug", "info"),
            timeout_graceful_shutdown=5,
        ),
        f"genwire {__version__} serving on [bold]{url}[/] "
        f"(data: {settings.data_dir}, workers: {workers})",
        app.state.hub,
    )
    server.run(sockets=[sock])
    if not server.started and not server.should_exit:
        sys.exit(1)


class _AnnouncingServer(Server):
    """Says where it serves once the app has started, not before it may fail; ends
    its streams first when it stops."""

    def __init__(self, config: Config, announcement: str, hub: FeedHub) -> None:
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

    Artifacts go to `--storage` (an S3 bucket every API node reads), or else under
    the data dir, which the API nodes must share to serve them: by default, beside a
    SQLite database (where `genwire serve` keeps them).
    """
    from genwire.runtime import Runtime

    source = click.get_current_context().get_parameter_source("data_dir")
    if source is click.ParameterSource.DEFAULT and database.startswith("sqlite:///"):
        options["data_dir"] = Path(database.removeprefix("sqlite:///")).parent
    configure_logging("info")
    settings = Settings(database_url=database, workers=concurrency, **_worker_settings(options))
    _check_shared_secret(settings)

    async def run() -> None:
        try:
            runtime = Runtime.build(settings, own_data_dir=False)
        except (PipelineLoadError, StorageNotInstalled) as error:
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


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # One line per webhook sent would drown the log; failures are logged by genwire.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Every line, uvicorn's too (its Config() keeps loggers' filters), with the keys
    # this process was given masked by value, and tokens and credentials by shape.
    redact_logs(secrets_from_env(os.environ))
