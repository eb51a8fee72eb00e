"""The options `serve` and `worker` share, and `serve`'s limits: flags and their
environment variables, read into `Settings` fields."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from genwire.config import (
    DEFAULT_DATA_DIR,
    DEFAULT_LEASE_TTL_S,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_SHUTDOWN_GRACE_S,
    DEFAULT_WEBHOOK_TIMEOUT_S,
    Settings,
    check_bus_url,
    check_storage_url,
    parse_modules,
)
from genwire.providers.settings import ProviderSettings

Command = Callable[..., None]
Decorator = Callable[[Command], Command]


def _setting_option(*decls: str, help: str, **options: Any) -> Decorator:
    """`click.option(*decls, …)` for a setting: read from GENWIRE_<FLAG> unless
    `envvar` names another variable (None: none), its default shown in the help
    unless `show_default=False`. Other keywords go to click as written: an unsaid
    `default` stays unset, which for a flag means False, not None."""
    options.setdefault("envvar", "GENWIRE_" + decls[0].removeprefix("--").replace("-", "_").upper())
    if options.get("default") is not None:
        options.setdefault("show_default", True)
    return click.option(*decls, help=help, **options)


def _with_options(command: Command, options: Sequence[Decorator]) -> Command:
    """`command` with `options` in their order in its help."""
    for option in reversed(options):
        command = option(command)
    return command


def worker_options(command: Command) -> Command:
    """Options of whatever runs workers: `serve` and `worker`."""
    options = [
        _setting_option(
            "--data-dir",
            default=DEFAULT_DATA_DIR,
            # Said in the help, not shown as the default: a worker on sqlite:///PATH
            # defaults to the database's folder instead (`genwire.cli.server.worker`).
            show_default=False,
            type=click.Path(file_okay=False, path_type=Path),
            help="This process's own folder (env GENWIRE_DATA_DIR): running jobs' "
            "working folders, the artifacts unless --storage, and with serve's embedded "
            "default the SQLite database. Default ./genwire-data; a worker on "
            "sqlite:///PATH: that file's folder.",
        ),
        _setting_option(
            "--bus",
            "bus_url",
            envvar="GENWIRE_BUS_URL",
            default=None,
            help="redis://… : wake-ups shared by every node and worker (env GENWIRE_BUS_URL); "
            "default: in-process only.",
        ),
        _setting_option(
            "--storage",
            "storage_url",
            envvar="GENWIRE_STORAGE_URL",
            default=None,
            help="Where artifacts live (env GENWIRE_STORAGE_URL): file://PATH, or "
            "s3://BUCKET/PREFIX with endpoint and credentials from AWS_*; default: the data dir.",
        ),
        _setting_option(
            "--job-timeout",
            envvar=None,
            type=click.FloatRange(min=0.1),
            default=None,
            help="Cap, in seconds, on every pipeline's time limit.",
        ),
        _setting_option(
            "--lease-ttl",
            envvar=None,
            type=click.FloatRange(min=0.5),
            default=DEFAULT_LEASE_TTL_S,
            help="Seconds after which a silent worker's job is taken back.",
        ),
        _setting_option(
            "--max-attempts",
            envvar=None,
            type=click.IntRange(1, 100),
            default=DEFAULT_MAX_ATTEMPTS,
            help="Runs of a job before a lost worker fails it.",
        ),
        _setting_option(
            "--max-running-per-tenant",
            type=click.IntRange(min=1),
            default=None,
            help="Jobs of one tenant that may run at once across every worker "
            "(env GENWIRE_MAX_RUNNING_PER_TENANT); its other jobs wait even while slots "
            "are free, so a tenant's endless jobs cannot take them all. Default: no cap; "
            "`serve` with keys of two or more tenants and 2+ --workers: --workers minus 1.",
        ),
        _setting_option(
            "--shutdown-grace",
            envvar=None,
            type=click.FloatRange(min=0),
            default=DEFAULT_SHUTDOWN_GRACE_S,
            help="On SIGTERM, seconds running jobs get to finish before going back to the queue.",
        ),
        _setting_option(
            "--allow-private-webhooks",
            is_flag=True,
            help="Allow webhook targets in private address ranges "
            "(env GENWIRE_ALLOW_PRIVATE_WEBHOOKS=1).",
        ),
        _setting_option(
            "--webhook-timeout",
            envvar=None,
            type=click.FloatRange(min=0.1),
            default=DEFAULT_WEBHOOK_TIMEOUT_S,
            help="Seconds one webhook request may take. Webhooks are signed with "
            "GENWIRE_WEBHOOK_SECRET (whsec_…), else a secret kept in the data dir.",
        ),
        _setting_option(
            "--public-url",
            default=None,
            help="Where providers reach this deployment (env GENWIRE_PUBLIC_URL); with it, "
            "Replicate, fal and Runware call its webhook instead of being polled alone.",
        ),
        _setting_option(
            "--pipelines",
            "pipeline_modules",
            default="",
            show_default=False,
            help="Modules of your own pipelines, comma-separated (env GENWIRE_PIPELINES); "
            "installed packages' `genwire.pipelines` entry points load too.",
        ),
    ]
    return _with_options(command, options)


def worker_settings(options: dict[str, Any]) -> dict[str, Any]:
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


def limit_options(command: Command) -> Command:
    """The limits of `serve`: SPEC §3's, past which 429 with Retry-After (0 is none),
    and the connection guard's (`genwire.api.guard`), past which 408, 431 or 503."""
    options = [
        _setting_option(
            "--max-streams-per-tenant",
            type=click.IntRange(min=0),
            default=Settings.max_streams_per_tenant,
            help="Open streams and long-polls of one API key, per API node "
            "(env GENWIRE_MAX_STREAMS_PER_TENANT; 0: no limit).",
        ),
        _setting_option(
            "--max-streams-per-address",
            type=click.IntRange(min=0),
            default=Settings.max_streams_per_address,
            help="Open streams and long-polls from one client address, per API node "
            "(env GENWIRE_MAX_STREAMS_PER_ADDRESS; 0: no limit).",
        ),
        _setting_option(
            "--create-rate",
            type=click.FloatRange(min=0),
            default=Settings.create_rate_per_s,
            help="Jobs one API key may create per second, per API node "
            "(env GENWIRE_CREATE_RATE; 0: no limit).",
        ),
        _setting_option(
            "--create-burst",
            type=click.IntRange(min=1),
            default=Settings.create_burst,
            help="Jobs one API key may create at once, before --create-rate holds it "
            "back (env GENWIRE_CREATE_BURST).",
        ),
        _setting_option(
            "--max-queued-per-tenant",
            type=click.IntRange(min=0),
            default=Settings.max_queued_per_tenant,
            help="Queued jobs of one API key, counted in the database "
            "(env GENWIRE_MAX_QUEUED_PER_TENANT; 0: no limit).",
        ),
        _setting_option(
            "--max-connections",
            type=click.IntRange(min=1),
            default=None,
            help="Connections this process holds; past it a new one is answered 503 "
            "(env GENWIRE_MAX_CONNECTIONS). Default: the open-files limit, raised to "
            "its hard limit, less a twentieth kept for the database and files.",
        ),
        _setting_option(
            "--max-connections-per-address",
            type=click.IntRange(min=0),
            default=None,
            help="Connections from one client address; past it 503 (env "
            "GENWIRE_MAX_CONNECTIONS_PER_ADDRESS). Default: three quarters of "
            "--max-connections; 0: no cap, for use behind a proxy.",
        ),
        _setting_option(
            "--head-timeout",
            type=click.FloatRange(min=0.1),
            default=Settings.head_timeout_s,
            help="Seconds a request's head may take to arrive whole; then 408 and the "
            "connection is closed (env GENWIRE_HEAD_TIMEOUT).",
        ),
        _setting_option(
            "--body-timeout",
            type=click.FloatRange(min=0.1),
            default=Settings.body_timeout_s,
            help="Seconds a request's body may take to arrive whole after its head; "
            "then 408 (env GENWIRE_BODY_TIMEOUT).",
        ),
        _setting_option(
            "--max-head-size",
            type=click.IntRange(min=1024),
            default=Settings.max_head_bytes,
            help="Bytes of a request's line and headers; past it 431 (env GENWIRE_MAX_HEAD_SIZE).",
        ),
    ]
    return _with_options(command, options)


def limit_settings(options: dict[str, Any]) -> dict[str, Any]:
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


def check_shared_secret(settings: Settings) -> None:
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
