"""The constructor that `Client` and `AsyncClient` share, and what `events()` starts from.

It lives beside `_protocol` rather than in it because it needs `_transports`, which
itself imports `_protocol`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypedDict, TypeVar

from genwire.client import _protocol as protocol
from genwire.client._transports import EventFeed, StreamPolicy

TransportT = TypeVar("TransportT")
HttpT = TypeVar("HttpT")


class HttpOptions(TypedDict):
    """The options of the `httpx.Client` or `httpx.AsyncClient` under a client."""

    base_url: str
    headers: dict[str, str]
    timeout: float
    event_hooks: Mapping[str, list[Any]] | None


class ClientBase(ABC, Generic[TransportT, HttpT]):
    """Settings and state common to both clients; each opens its own kind of
    `httpx` client (`HttpT`) over its own kind of transport (`TransportT`)."""

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
    ) -> None:
        """`keepalive_s` is the server's keepalive (a stream silent twice as long is
        dead); the other keywords tune `events()`'s backoff and fallback (see
        `genwire.client._transports.StreamPolicy`)."""
        self.server = protocol.server_url(server)
        self.stream_policy = StreamPolicy(
            keepalive_s=keepalive_s,
            backoff_base_s=backoff_base_s,
            failures_before_fallback=sse_failures_before_fallback,
            sse_retry_s=sse_retry_s,
            long_poll_wait_s=long_poll_wait_s,
            poll_interval_s=poll_interval_s,
        )
        self.create_retry_delays = tuple(create_retry_delays)
        self._auth_headers = protocol.auth_headers(api_key)
        options = HttpOptions(
            base_url=self.server,
            headers=dict(self._auth_headers),
            timeout=timeout,
            event_hooks=event_hooks,
        )
        self._http: HttpT = self._open_http(transport, options)

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
