"""Who holds the process's connections, and what the guard refused or cut."""

from __future__ import annotations

import logging
import time
from collections import Counter

from genwire.api.guard.limits import ConnectionLimits

log = logging.getLogger("genwire.guard")

#: Refused connections waiting for their head to be answered 503, at most; past it
#: a refused connection is closed at once, unanswered (a flood must not hold them).
MAX_REFUSED_OPEN = 256
#: At most one log line per kind of cut this often: a flood makes thousands a second.
LOG_EVERY_S = 60.0

PROCESS = "process"  #: refused: the process holds `max_connections`
ADDRESS = "address"  #: refused: the address holds `max_connections_per_address`
HEAD_TIMEOUT = "head-timeout"
BODY_TIMEOUT = "body-timeout"
HEAD_TOO_LARGE = "head-too-large"

_WHY = {
    PROCESS: "refused connections: the process holds its cap of %d",
    ADDRESS: "refused connections: one address holds its cap of %d",
    HEAD_TIMEOUT: "closed connections that sent no whole request head in %g s",
    BODY_TIMEOUT: "closed connections that sent no whole body in %g s",
    HEAD_TOO_LARGE: "answered 431 to request heads over %d bytes",
}


class ConnectionCensus:
    """The open connections of one process, by client address; a connection counts
    from being admitted until it is lost."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.total = 0
        self.by_address: Counter[str] = Counter()
        self.refused_open = 0
        #: refusals and cuts since start, by kind (`genwire_connections_cut_total`)
        self.counts: Counter[str] = Counter()
        self._logged_at: dict[str, float] = {}

    def admit(self, address: str) -> str | None:
        """Count a new connection from `address`: None, or why it is refused."""
        if self.total >= self.limits.max_connections:
            return self.note(PROCESS)
        per_address = self.limits.max_connections_per_address
        if per_address and self.by_address[address] >= per_address:
            return self.note(ADDRESS)
        self.total += 1
        self.by_address[address] += 1
        return None

    def release(self, address: str) -> None:
        self.total -= 1
        left = self.by_address[address] - 1
        if left:
            self.by_address[address] = left
        else:
            del self.by_address[address]

    def note(self, kind: str) -> str:
        """Count a refusal or a cut, and say so in the log now and then."""
        self.counts[kind] += 1
        now = time.monotonic()
        if now - self._logged_at.get(kind, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._logged_at[kind] = now
            log.warning(
                _WHY[kind] + " (%d since start; the rest of this minute is counted in "
                "genwire_connections_cut_total)",
                self.limit_of(kind),
                self.counts[kind],
            )
        return kind

    def limit_of(self, kind: str) -> float:
        """The limit a refusal or cut of `kind` met."""
        limits = self.limits
        return {
            PROCESS: limits.max_connections,
            ADDRESS: limits.max_connections_per_address,
            HEAD_TIMEOUT: limits.head_timeout_s,
            BODY_TIMEOUT: limits.body_timeout_s,
            HEAD_TOO_LARGE: limits.max_head_bytes,
        }[kind]
