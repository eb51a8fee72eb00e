"""Server settings, from flags and `GENWIRE_*` environment variables (SPEC §1)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from genwire.providers.settings import ProviderSettings

DEFAULT_DATA_DIR = Path("./genwire-data")
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_WORKERS = 2  #: in-process worker slots
DEFAULT_MAX_ATTEMPTS = 3  #: runs of a job before a lost worker fails it
DEFAULT_LEASE_TTL_S = 30.0  #: a silent worker's job is taken back after this
DEFAULT_SHUTDOWN_GRACE_S = 10.0  #: running jobs get this long to finish on SIGTERM
DEFAULT_WEBHOOK_TIMEOUT_S = 10.0  #: one webhook request, connect to answer
MAX_POLL_GATHER_S = 5.0  #: longer would make a long-poll feel like plain polling
#: Pauses before the 2nd…8th attempt of a webhook: the Standard Webhooks schedule,
#: over 27 h in all, so a receiver down for a day still gets its events (SPEC §5).
WEBHOOK_RETRY_SCHEDULE_S = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


def parse_api_keys(text: str | None) -> dict[str, str]:
    """`key1:tenant1,key2:tenant2` (a key without a tenant maps to tenant "default")."""
    keys: dict[str, str] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, _, tenant = item.partition(":")
        keys[key.strip()] = tenant.strip() or "default"
    return keys


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Settings:
    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str | None = None  #: None: SQLite under data_dir
    #: `redis://…`: wake-ups shared by every process; None: in-process only
    bus_url: str | None = None
    #: how often feeds check that the bus announced every event (None: the
    #: backstop's own default; see `genwire.delivery.backstop`)
    bus_backstop_s: float | None = None
    #: `file://PATH` or `s3://BUCKET/PREFIX`; None: `files/` under data_dir
    storage_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = DEFAULT_WORKERS
    api_keys: dict[str, str] = field(default_factory=dict)
    #: hashed keys and their tenants, read again when it changes (`genwire.apikeys`)
    keys_file: Path | None = None
    insecure: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    #: running jobs of one tenant, across every worker, past which its queued jobs
    #: wait while slots stay free (None: no cap, as a single-tenant deployment wants)
    max_running_per_tenant: int | None = None
    lease_ttl_s: float = DEFAULT_LEASE_TTL_S
    job_timeout_s: float | None = None
    shutdown_grace_s: float = DEFAULT_SHUTDOWN_GRACE_S
    keepalive_s: float = 10.0  #: a comment on every idle stream this often (SPEC §4.5)
    stream_lifetime_s: float = 3600.0  #: a stream then ends; its client resumes
    #: a stream whose client has not taken a write for this long is dropped (it
    #: resumes from its cursor); a slow reader never holds anyone else back
    stream_send_timeout_s: float = 15.0
    #: the kernel frees a connection whose peer acknowledged nothing for this long
    #: (a paused <video> stops reading too: this must outlast a pause, not a stream)
    peer_timeout_s: float = 120.0
    # The connection guard (`genwire.api.guard`): what a client may hold before it
    # has said what it wants. Past one, 408, 431 or 503 and the connection is closed.
    #: a request's head must arrive whole this long after the connection, or after
    #: its first bytes on a kept-alive one
    head_timeout_s: float = 10.0
    #: a request's body must arrive whole this long after its head
    body_timeout_s: float = 30.0
    #: a request's head (request line and headers) may be this long, in bytes
    max_head_bytes: int = 64 * 1024
    #: connections of this process; None: its descriptor limit less a reserve
    max_connections: int | None = None
    #: connections from one client address; None: three quarters of max_connections;
    #: 0: no cap (behind a proxy, every connection comes from the proxy)
    max_connections_per_address: int | None = None
    retry_ms: int = 2000  #: the `retry:` an EventSource waits before reconnecting
    #: a long-poll that waited for news answers this long after the first event, with
    #: what came meanwhile (the end of a job at once; docs/ARCHITECTURE.md)
    poll_gather_s: float = 0.1
    # Limits (SPEC §3): past one, 429 + Retry-After; 0 is none. Generous defaults:
    # a benchmark of 10 000 streams on loopback with one key meets none of them.
    #: open streams and long-polls of one tenant, in this process
    max_streams_per_tenant: int = 50_000
    #: open streams and long-polls from one client address, in this process
    max_streams_per_address: int = 20_000
    #: job creations of one tenant per second, in this process (a token bucket) …
    create_rate_per_s: float = 200.0
    #: … of which this many at once (clips of a project count one each)
    create_burst: int = 20_000
    #: queued jobs of one tenant, counted in the database: the same on every node
    max_queued_per_tenant: int = 100_000
    webhook_secret: str | None = None  #: `whsec_…`; None: generated once in the data dir
    allow_private_webhooks: bool = False  #: allow targets in private address ranges
    webhook_timeout_s: float = DEFAULT_WEBHOOK_TIMEOUT_S
    webhook_retry_schedule_s: tuple[float, ...] = WEBHOOK_RETRY_SCHEDULE_S
    #: origins whose pages may call the API and read its streams (CORS); none by default
    cors_origins: tuple[str, ...] = ()
    #: where providers and browsers reach this deployment; provider webhooks go there
    public_url: str | None = None
    providers: ProviderSettings = field(default_factory=ProviderSettings)
    #: modules of the user's own pipelines, loaded beside the built-in ones
    pipeline_modules: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            data_dir=Path(os.environ.get("GENWIRE_DATA_DIR", str(DEFAULT_DATA_DIR))),
            database_url=os.environ.get("GENWIRE_DATABASE_URL") or None,
            bus_url=check_bus_url(os.environ.get("GENWIRE_BUS_URL") or None),
            storage_url=check_storage_url(os.environ.get("GENWIRE_STORAGE_URL") or None),
            api_keys=parse_api_keys(os.environ.get("GENWIRE_API_KEYS")),
            keys_file=optional_path(os.environ.get("GENWIRE_KEYS_FILE")),
            webhook_secret=os.environ.get("GENWIRE_WEBHOOK_SECRET") or None,
            allow_private_webhooks=os.environ.get("GENWIRE_ALLOW_PRIVATE_WEBHOOKS") == "1",
            cors_origins=parse_origins(os.environ.get("GENWIRE_CORS_ORIGINS")),
            public_url=os.environ.get("GENWIRE_PUBLIC_URL") or None,
            providers=ProviderSettings.from_env(),
            pipeline_modules=parse_modules(os.environ.get("GENWIRE_PIPELINES")),
        )

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'genwire.db'}"

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url is None or self.database_url.startswith("sqlite")

    @property
    def open_to_anyone(self) -> bool:
        """Whether it listens beyond loopback with no API key: anyone who reaches it
        reads and creates every job."""
        return not self.api_keys and self.keys_file is None and not is_loopback(self.host)

    def check_exposure(self) -> None:
        """Refuse to listen beyond loopback with no API key, unless told --insecure (SPEC §8)."""
        if self.open_to_anyone and not self.insecure:
            raise ValueError(
                f"refusing to listen on {self.host} with no API key configured: "
                "set GENWIRE_API_KEYS or --keys-file, bind 127.0.0.1, or pass --insecure"
            )


def check_bus_url(url: str | None) -> str | None:
    """`redis://…` or `rediss://…` (SPEC §1), or None for the in-process bus."""
    if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"the bus must be a redis:// URL, not {url!r}")
    return url


def check_storage_url(url: str | None) -> str | None:
    """`file://PATH` or `s3://BUCKET/PREFIX` (SPEC §1), or None for the data dir's."""
    if url is None:
        return None
    if url.startswith("file://") and len(url) > len("file://"):
        return url
    if url.startswith("s3://") and url.removeprefix("s3://").split("/", 1)[0]:
        return url
    raise ValueError(f"the storage must be file://PATH or s3://BUCKET/PREFIX, not {url!r}")


def parse_origins(raw: str | None) -> tuple[str, ...]:
    """`https://app.example,https://other.example` → the origins, without a final slash."""
    return tuple(origin.strip().rstrip("/") for origin in (raw or "").split(",") if origin.strip())


def optional_path(raw: str | None) -> Path | None:
    """A path from the environment; None when unset or empty."""
    return Path(raw) if raw else None


def parse_modules(raw: str | None) -> tuple[str, ...]:
    """`pkg.mod,other.mod` (`--pipelines`, GENWIRE_PIPELINES) → the module names."""
    return tuple(name.strip() for name in (raw or "").split(",") if name.strip())
