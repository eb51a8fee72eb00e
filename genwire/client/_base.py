"""The constructor that `Client` and `AsyncClient` share, and what `events()` starts from.

It lives beside `_protocol` rather than in it because it needs `_transports`, which
itself imports `_protocol`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypedDict, TypeVar

import httpx

from genwire.client import _protocol as protocol
from genwire.client._transports import EventFeed, StreamPolicy

TransportT = TypeVar("TransportT")
HttpT = TypeVar("HttpT")

#: The pool of the calls (create, get, cancel …): httpx's default of 100 connections.
CALL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
#: The pool of `events()`: each followed job holds a connection for as long as it
#: runs, so it has no bound (a cap would leave the followers past it waiting for a
#: free connection), and it is apart from the calls' pool, which streams never fill.
STREAM_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=20)


class HttpOptions(TypedDict):
    """The options of the `httpx.Client` or `httpx.AsyncClient` under a client."""

    base_url: str
    headers: dict[str, str]
    timeout: float
    event_hooks: Mapping[str, list[Any]] | None
    limits: httpx.Limits


class ClientBase(ABC, Generic[TransportT, HttpT]):
    """Settings and state common to both clients; each opens its own kind of
    `httpx` client (`HttpT`) over its own kind of transport (`TransportT`).

    A client follows any number of jobs at once: `events()` connects through a pool
    of its own, without a bound, and the calls through another (100 connections), so
    that open streams never keep a create, a get or a cancel waiting. A `transport`
    passed in carries both, with whatever limits it has.
    """

    def __init__(
        self,
        server: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: TransportT | None = None,
        create_retry_delays: Sequence[float] = protocol.CREATE_RETRY_DELAYS_S,
        event_hooks: Mapping[str, list[Any]] | None = None,
        keepalive_s: float = 10.0,
        backoff_base_s: float = 1.0,
        sse_failures_before_fallback: int = 3,
        sse_retry_s: float = 60.0,
        long_poll_wait_s: float = 25.0,
        poll_interval_s: float = 2.0,
        retry_after_cap_s: float = protocol.RETRY_AFTER_CAP_S,
    ) -> None:
        """`keepalive_s` is the server's keepalive (a stream silent twice as long is
        dead); the other keywords tune `events()`'s backoff and fallback (see
        `genwire.client._transports.StreamPolicy`). A 429 or 503 answer's `Retry-After`
        is waited out, then the call is sent again (creates under their Idempotency-Key)
        or the stream resumed; a call told to wait longer than `retry_after_cap_s`
        raises at once instead, and `events()` waits that cap at most."""
        self.server = protocol.server_url(server)
        self.stream_policy = StreamPolicy(
            keepalive_s=keepalive_s,
            backoff_base_s=backoff_base_s,
            failures_before_fallback=sse_failures_before_fallback,
            sse_retry_s=sse_retry_s,
            long_poll_wait_s=long_poll_wait_s,
            poll_interval_s=poll_interval_s,
            retry_after_cap_s=retry_after_cap_s,
        )
        self.create_retry_delays = tuple(create_retry_delays)
        self.retry_after_cap_s = retry_after_cap_s
        self._auth_headers = protocol.auth_headers(api_key)
        options = HttpOptions(
            base_url=self.server,
            headers=dict(self._auth_headers),
            timeout=timeout,
            event_hooks=event_hooks,
            limits=CALL_LIMITS,
        )
        self._http: HttpT = self._open_http(transport, options)
        #: What `events()` connects through (the calls' own when a transport is given).
        self._streams: HttpT = (
            self._http
            if transport is not None
            else self._open_http(None, HttpOptions(**{**options, "limits": STREAM_LIMITS}))
        )

    @abstractmethod
    def _open_http(self, transport: TransportT | None, options: HttpOptions) -> HttpT: ...

    @property
    def auth_headers(self) -> dict[str, str]:
        """The `Authorization` header every call carries (none without an API key),
        for a request the client does not make itself."""
        return dict(self._auth_headers)

    def absolute(self, url: str) -> str:
        return url if "://" in url else f"{self.server}{url}"

    def job_path(self, job_id: str) -> str:
        """The path of a job's routes (`/api/jobs/{id}`, the id quoted as one segment);
        `/events`, `/poll` and `/cancel` sit below it."""
        return protocol.job_path(job_id)

    def _feed(self, job_id: str, after: str | None, timeout: float | None) -> EventFeed:
        return EventFeed(job_id, after, self.stream_policy, timeout)

    def _resends(self, call: protocol.Call) -> protocol.Resends:
        return protocol.Resends(call, self.retry_after_cap_s)

    def _create_resends(self, call: protocol.Call) -> protocol.Resends:
        return protocol.Resends(call, self.retry_after_cap_s, self.create_retry_delays)
