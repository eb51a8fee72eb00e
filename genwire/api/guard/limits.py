"""The guard's limits, resolved from the settings and the process's descriptors."""

from __future__ import annotations

from dataclasses import dataclass

from genwire.config import Settings

try:
    import resource
except ImportError:  # Windows: no descriptor limit to read
    resource = None  # type: ignore[assignment]

#: Descriptors kept back from connections for the database, files, the bus,
#: webhooks and providers: a twentieth of the limit, and never fewer than this.
MIN_RESERVED_FILES = 100
#: One address may hold at most this share of the process's connections, so that
#: whoever floods from one address leaves room for every other (and for /healthz).
ADDRESS_SHARE = 0.75
#: Assumed where the descriptor limit cannot be read.
FALLBACK_FILES = 1024


@dataclass(frozen=True)
class ConnectionLimits:
    head_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_head_bytes: int = 64 * 1024
    max_connections: int = 10_000
    max_connections_per_address: int = 7_500  #: 0: no cap (behind a proxy)


def raise_open_files_limit() -> int:
    """Raise the soft limit on open descriptors to the hard one, as servers do (every
    connection is one); return the soft limit now."""
    if resource is None:
        return FALLBACK_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # an infinite hard limit some systems refuse
            pass
    return soft if soft != resource.RLIM_INFINITY else 1_048_576


def open_files_limit() -> int:
    if resource is None:
        return FALLBACK_FILES
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if soft != resource.RLIM_INFINITY else 1_048_576


def connection_limits(settings: Settings) -> ConnectionLimits:
    """The settings' limits, where None means derived: the process's cap from its
    descriptor limit less a reserve, an address's as a share of the process's."""
    max_connections = settings.max_connections
    if max_connections is None:
        files = open_files_limit()
        max_connections = max(1, files - max(MIN_RESERVED_FILES, files // 20))
    per_address = settings.max_connections_per_address
    if per_address is None:
        per_address = max(1, int(max_connections * ADDRESS_SHARE))
    return ConnectionLimits(
        head_timeout_s=settings.head_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        max_head_bytes=settings.max_head_bytes,
        max_connections=max_connections,
        max_connections_per_address=per_address,
    )
