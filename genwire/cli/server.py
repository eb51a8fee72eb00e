"""`genwire serve` and `genwire worker`: settings from flags and the environment,
the listening socket, uvicorn, and the worker process's own loop."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import signal
import socket
import sys
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
from genwire.cli.options import (
    check_shared_secret,
    limit_options,
    limit_settings,
    worker_options,
    worker_settings,
)
from genwire.cli.terminal import console
from genwire.config import (
    DEFAULT_WORKERS,
    MAX_POLL_GATHER_S,
    Settings,
    parse_api_keys,
    parse_origins,
)
from genwire.delivery import FeedHub
from genwire.locks import DataDirInUse, acquire_server_lock
from genwire.pipelines.loading import PipelineLoadError
from genwire.storage import StorageNotInstalled

log = logging.getLogger("genwire.serve")


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; beyond loopback only with API keys or --insecure.",
)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free one, announced at start).",
)
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
    help="Least severe log lines shown; info includes one line per request.",
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
        **worker_settings(options),
        **limit_settings(options),
    )
    try:
        settings.check_exposure()
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    try:
        api_keys = ApiKeys(settings.api_keys, settings.keys_file)
    except KeysFileError as error:
        raise click.UsageError(str(error)) from None
    check_shared_secret(settings)
    configure_logging(log_level)
    settings = _fair_default(settings, api_keys)
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


def _fair_default(settings: Settings, api_keys: ApiKeys) -> Settings:
    """With keys of several tenants and in-process slots, a tenant's jobs leave one
    slot for the others' unless told otherwise: else one tenant's endless jobs hold
    every slot and another's never starts (a worker process has no keys: there the
    cap is the operator's to set)."""
    if settings.max_running_per_tenant is not None or settings.workers < 2:
        return settings
    if api_keys.tenant_count < 2:
        return settings
    log.info(
        "--max-running-per-tenant %d: with %d tenants, no tenant's jobs take all %d "
        "worker slots (set the flag to change it)",
        settings.workers - 1,
        api_keys.tenant_count,
        settings.workers,
    )
    return dataclasses.replace(settings, max_running_per_tenant=settings.workers - 1)


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
    "--concurrency",
    default=DEFAULT_WORKERS,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Jobs this process runs at once.",
)
@worker_options
def worker(database: str, concurrency: int, **options: Any) -> None:
    """Run workers only, beside API nodes that share the database.

    Artifacts go to --storage (an S3 bucket every API node reads), or else under
    --data-dir, which the API nodes must then share to serve them.
    """
    from genwire.runtime import Runtime

    source = click.get_current_context().get_parameter_source("data_dir")
    if source is click.ParameterSource.DEFAULT and database.startswith("sqlite:///"):
        options["data_dir"] = Path(database.removeprefix("sqlite:///")).parent
    configure_logging("info")
    settings = Settings(database_url=database, workers=concurrency, **worker_settings(options))
    check_shared_secret(settings)

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
