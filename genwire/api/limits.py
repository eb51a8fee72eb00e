"""The limits of SPEC §3 that this process keeps: open streams and long-polls per
tenant and per client address, and job creations per tenant per second. Past one:
429, `Retry-After` and the code SPEC names (`too-many-streams`, `rate-limited`).
Queued jobs per tenant are counted in the database where a job is created
(`JobService.create_job`), so that one holds across every node.

Both counts here live in the process's memory: behind a balancer spreading a
tenant over N API nodes, the tenant may hold N times as many streams and create
N times as many jobs per second (docs/DEPLOY.md, "Limits").

A stream or long-poll counts from when it is accepted until its connection ends,
wherever that is: in its ASGI app, or held by its feed on the fast path, where the
sink (`StreamSink.end`, `ParkedPoll` once answered or dropped) calls the slot's
`release` from its one end point, however the connection ends. The feed's fan-out
does nothing more per event.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from types import TracebackType

from starlette.requests import Request
from starlette.types import Scope

from genwire.errors import TooManyRequests

#: What a refused stream or long-poll is told to wait: others end at their own pace.
STREAMS_RETRY_AFTER_S = 5


class OpenConnections:
    """Open streams and long-polls of this process, per tenant and per client address;
    a limit of 0 is none."""

    def __init__(self, per_tenant: int, per_address: int) -> None:
        self.per_tenant = per_tenant
        self.per_address = per_address
        self.by_tenant: dict[str, int] = {}
        self.by_address: dict[str, int] = {}
        self.total = 0  #: open now, every tenant's

    def open(self, tenant: str, address: str) -> ConnectionSlot:
        """Count one more connection of `tenant` from `address`, until its slot is
        released; TooManyRequests (and nothing counted) past either limit."""
        of_tenant = self.by_tenant.get(tenant, 0)
        if self.per_tenant and of_tenant >= self.per_tenant:
            raise _too_many_streams(
                f"this tenant (API key) has {of_tenant} streams and long-polls open"
            )
        of_address = self.by_address.get(address, 0)
        if self.per_address and of_address >= self.per_address:
            raise _too_many_streams(f"this address has {of_address} streams and long-polls open")
        self.by_tenant[tenant] = of_tenant + 1
        self.by_address[address] = of_address + 1
        self.total += 1
        return ConnectionSlot(self, tenant, address)

    def _close(self, tenant: str, address: str) -> None:
        self.total -= 1
        _decrement(self.by_tenant, tenant)
        _decrement(self.by_address, address)


def _decrement(counts: dict[str, int], key: str) -> None:
    """One fewer; a key at 0 goes (client addresses come and go without end)."""
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]


def _too_many_streams(why: str) -> TooManyRequests:
    return TooManyRequests(
        f"{why}, the most it may; close one, or try again later",
        code="too-many-streams",
        retry_after_s=STREAMS_RETRY_AFTER_S,
    )


class ConnectionSlot:
    """One counted connection. Used as a context manager (`with` or `async with`) by
    its request, which releases it on leaving unless it handed the connection (and
    `release`) to a sink of the fast path: `handed_off`."""

    __slots__ = ("_connections", "_open", "address", "handed_off", "tenant")

    def __init__(self, connections: OpenConnections, tenant: str, address: str) -> None:
        self._connections = connections
        self.tenant = tenant
        self.address = address
        self._open = True
        self.handed_off = False

    def release(self) -> None:
        """The connection ended: counted out once, however often this is called."""
        if self._open:
            self._open = False
            self._connections._close(self.tenant, self.address)

    def __enter__(self) -> ConnectionSlot:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self.handed_off:
            self.release()

    async def __aenter__(self) -> ConnectionSlot:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Async too, so that `async with slot, hub.follow(...)` holds both at once.
        self.__exit__(kind, error, traceback)


def client_address(scope: Scope) -> str:
    """The client's address as the server saw it (behind a trusted proxy, uvicorn
    puts the `X-Forwarded-For` one there: `FORWARDED_ALLOW_IPS`)."""
    client = scope.get("client")
    return str(client[0]) if client else ""


class CreationBuckets:
    """Job creations per tenant: a token bucket each, `burst` deep, filling at
    `rate_per_s` (0: no limit). In this process's memory, one bucket per tenant
    (tenants are the configured keys')."""

    def __init__(
        self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  #: tenant → (tokens, as of)

    def take(self, tenant: str, count: int = 1) -> None:
        """Spend `count` creations of `tenant` (at most a whole bucket: a request
        bigger than the burst waits for a full one); TooManyRequests, with the
        seconds until there are enough, when there are not."""
        if self.rate_per_s <= 0:
            return
        now = self._clock()
        tokens, since = self._buckets.get(tenant, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - since) * self.rate_per_s)
        needed = min(count, self.burst)
        if tokens < needed:
            self._buckets[tenant] = (tokens, now)
            wait = math.ceil((needed - tokens) / self.rate_per_s)
            raise TooManyRequests(
                f"this tenant (API key) creates jobs faster than {self.rate_per_s:g} per second "
                f"(bursts of {self.burst}); try again in {wait} s",
                code="rate-limited",
                retry_after_s=max(1, wait),
            )
        self._buckets[tenant] = (tokens - needed, now)


def connections_of(request: Request) -> OpenConnections:
    connections: OpenConnections = request.app.state.connections
    return connections


def creations_of(request: Request) -> CreationBuckets:
    creations: CreationBuckets = request.app.state.creations
    return creations
