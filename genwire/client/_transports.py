"""The transport-independent state of `events()`, shared by the sync and async clients.

A job's events come over SSE while SSE works. When SSE keeps failing (connections
refused, 5xx or 502 from a gateway, a stream that delivers nothing before it goes
silent or ends: the signature of a proxy that blocks, strips or buffers streams), the
feed falls back to long-poll, and when long-poll fails too, to plain polling of the
job's snapshot; after a while of working fallback it tries SSE again. When a plain
request of the fallback finds no server either (a refused connection, a gateway's 502
or 504), the failures were the server's absence, not blocked streams: as soon as the
server answers again, SSE is tried at once, not after the fallback window. Whatever the
transports do, `accept` passes each event once, in order: an event at or before the
cursor (by numeric id) is dropped, so the cursor never goes backwards (SPEC §4, §6).

This module does no I/O: the clients ask it which request to make next, tell it what
came back, and sleep the pause it answers.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import httpx
import orjson
from httpx_sse import ServerSentEvent, SSEError

from genwire.client._protocol import RETRY_AFTER_CAP_S, api_error, job_path, retry_after
from genwire.client.errors import Timeout

#: The event types that end a job's stream: `events()` stops after one (SPEC §4).
TERMINAL_EVENT_TYPES = frozenset({"job-completed", "job-failed", "job-cancelled"})
#: Extra read time on a long-poll beyond the wait the server was asked for.
LONG_POLL_MARGIN_S = 10.0
#: Connect (and write) timeout of every request of the feed.
CONNECT_TIMEOUT_S = 30.0


class Transport(Enum):
    SSE = "sse"
    LONG_POLL = "long-poll"
    POLL = "poll"


@dataclass(frozen=True)
class StreamPolicy:
    """How `events()` connects, notices a dead connection and falls back."""

    #: The server's keepalive interval; a stream silent for twice this long is dead.
    keepalive_s: float = 10.0
    #: The first pause after a failure; the pauses are base × 1, 2, 4, 8, 16 (capped).
    backoff_base_s: float = 1.0
    #: Consecutive failures of a transport after which the next one is tried.
    failures_before_fallback: int = 3
    #: Seconds of working fallback after which SSE is tried again.
    sse_retry_s: float = 60.0
    #: The `wait` of a long-poll request.
    long_poll_wait_s: float = 25.0
    #: The pause between two requests of plain polling.
    poll_interval_s: float = 2.0
    #: The longest pause taken on a 429 or 503 answer's `Retry-After` (SPEC §3).
    retry_after_cap_s: float = RETRY_AFTER_CAP_S

    @property
    def silence_s(self) -> float:
        return 2.0 * self.keepalive_s


def backoff(failures: int, base_s: float = 1.0) -> float:
    """base × 1, 2, 4, 8, 16 (capped), each with ±20 % jitter so that clients do not
    reconnect in step; 0 before any failure."""
    if failures <= 0:
        return 0.0
    return base_s * min(2.0 ** (failures - 1), 16.0) * random.uniform(0.8, 1.2)


def retryable_status(status_code: int) -> bool:
    """An answer after which another try (or another transport) may do better."""
    return status_code >= 500 or status_code in (408, 429)


class Glitch(Exception):
    """An answer that counts as a failed attempt of the transport (a 5xx, a 502 from a
    gateway, a 429), not as an error for the caller; `retry_after` is the seconds its
    `Retry-After` asks to wait, if it said."""

    def __init__(
        self, message: str, retry_after: float | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status_code = status_code


#: What makes an attempt fail (and the feed try again, or fall back) rather than
#: reach the caller: a broken or silent connection, a stream that is not SSE (a proxy's
#: page), a body cut mid-JSON, a 5xx.
RETRYABLE: tuple[type[Exception], ...] = (
    httpx.TransportError,
    SSEError,
    json.JSONDecodeError,  # orjson's is a subclass
    Glitch,
)


def failure(response: httpx.Response) -> Exception:
    """The exception of an answer of 400 and above (its body read): a `Glitch` to try
    again for a 5xx/408/429, the caller's `ApiError` for the others (404, 401 …)."""
    if retryable_status(response.status_code):
        return Glitch(
            f"{response.request.method} {response.request.url.path}: {response.status_code}",
            retry_after(response),
            response.status_code,
        )
    return api_error(response)


def retry_after_of(error: Exception) -> float | None:
    """The seconds a failed attempt's answer asked to wait before the next one, if it said."""
    return error.retry_after if isinstance(error, Glitch) else None


def server_answered(error: Exception) -> bool:
    """Whether a failed attempt reached the server: not when the connection was refused
    or timed out, nor when a gateway answered 502 or 504 for it. (A stream that a proxy
    holds back did reach something; only a plain request can tell more.)"""
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        return False
    return not (isinstance(error, Glitch) and error.status_code in (502, 504))


class EventFeed:
    """The cursor, the dedupe, the failure counts and the choice of transport of one
    `events(job_id, after, timeout)` call."""

    def __init__(
        self,
        job_id: str,
        after: str | None,
        policy: StreamPolicy,
        timeout: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job_id = job_id
        self.policy = policy
        self.timeout = timeout
        self.clock = clock
        self.deadline = None if timeout is None else clock() + timeout
        self.base_path = job_path(job_id)
        self.last_id = after
        self.last_seq = _seq(after) if after else None
        self.done = False
        self.transport = Transport.SSE
        self.failures = 0
        #: The fallback transport in use when SSE was last given up, and since when.
        self.fallback = Transport.LONG_POLL
        self.fallback_since: float | None = None
        #: Whether a plain request (long-poll, poll) got no answer from the server since
        #: the last one that did: then the server is unreachable, not only its streams.
        self.server_lost = False
        self.delivered = 0  # new events of the current attempt

    # -- what to do next ----------------------------------------------------------------
    def begin(self) -> Transport:
        """Start an attempt; the transport to use for it."""
        now = self.clock()
        if (
            self.transport is not Transport.SSE
            and self.fallback_since is not None
            and now - self.fallback_since >= self.policy.sse_retry_s
        ):
            # Try SSE again; one more failure sends the feed back to its fallback.
            self.fallback = self.transport
            self.transport = Transport.SSE
            self.failures = self.policy.failures_before_fallback - 1
        self.delivered = 0
        return self.transport

    def sse_path(self) -> str:
        return f"{self.base_path}/events"

    def sse_headers(self) -> dict[str, str]:
        return {"Last-Event-ID": self.last_id} if self.last_id else {}

    def sse_read_timeout(self) -> float:
        return self._bounded(self.policy.silence_s)

    def poll_path(self) -> str:
        return f"{self.base_path}/poll"

    def poll_params(self, wait: float) -> dict[str, str]:
        params = {"wait": f"{wait:g}"}
        if self.last_id:
            params["after"] = self.last_id
        return params

    def long_poll_wait(self) -> float:
        left = self._left()
        wait = (
            self.policy.long_poll_wait_s
            if left is None
            else min(left, self.policy.long_poll_wait_s)
        )
        return max(0.0, round(wait, 3))

    def long_poll_read_timeout(self, wait: float) -> float:
        return self._bounded(wait + LONG_POLL_MARGIN_S)

    def snapshot_path(self) -> str:
        return self.base_path

    def request_timeout(self) -> float:
        return self._bounded(CONNECT_TIMEOUT_S)

    def snapshot_has_news(self, snapshot: Mapping[str, Any]) -> bool:
        """Whether a snapshot of the job shows events after the cursor."""
        last = snapshot.get("last_event_id")
        if not last:
            return False
        return self.last_seq is None or _seq(str(last)) > self.last_seq

    # -- what came back -----------------------------------------------------------------
    def accept(self, event: dict[str, Any]) -> bool:
        """Whether the event is new (then it is the caller's, and the cursor moves)."""
        raw_id = event.get("id")
        if raw_id is None:
            return False
        seq = _seq(str(raw_id))
        if self.last_seq is not None and seq <= self.last_seq:
            return False
        self.last_seq = seq
        self.last_id = str(raw_id)
        self.delivered += 1
        if event.get("type") in TERMINAL_EVENT_TYPES:
            self.done = True
        return True

    def sse_event(self, message: ServerSentEvent) -> dict[str, Any] | None:
        """The event of an SSE message when it is new; None for a keepalive or a repeat."""
        if not message.data:
            return None
        event: dict[str, Any] = orjson.loads(message.data)
        if message.id and "id" not in event:
            event["id"] = message.id
        return event if self.accept(event) else None

    def poll_events(self, answer: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The new events of a `/poll` answer, in order; marks the feed done when the
        server says nothing more will come."""
        events = sorted(answer.get("events") or [], key=lambda event: _seq(str(event["id"])))
        fresh = [event for event in events if self.accept(event)]
        if answer.get("done"):
            self.done = True
        return fresh

    def finished(self) -> None:
        """The server says the stream is over (204: the cursor is at the terminal event)."""
        self.done = True

    def succeeded(self) -> float:
        """The attempt ended without an error; the pause before the next one."""
        if self.transport is Transport.SSE:
            if self.delivered:
                self.failures = 0
                self.fallback_since = None
                return 0.0
            # A stream that ends without delivering anything is what a proxy that
            # holds streams back looks like.
            return self.failed()
        self.failures = 0
        if self.server_lost:
            # The server answers again after an outage: SSE now, not after the fallback
            # window; if streams are blocked as well, one failure sends the feed back.
            self.server_lost = False
            self.fallback = self.transport
            self.transport = Transport.SSE
            self.fallback_since = None
            self.failures = self.policy.failures_before_fallback - 1
            return 0.0
        if self.transport is Transport.POLL:
            return self._pause(self.policy.poll_interval_s)
        return 0.0

    def failed(self, retry_after: float | None = None, *, answered: bool = True) -> float:
        """The attempt failed (connection error, dead silence, 5xx, 429); the pause
        before the next one: what the answer's `Retry-After` said (capped), else the
        backoff. `answered`: whether the server itself answered (`server_answered`).
        Raises `Timeout` when the deadline comes first."""
        if self.transport is not Transport.SSE:
            self.server_lost = not answered
        if self.transport is Transport.SSE and self.delivered:
            # It worked for a while: the backoff starts over.
            self.failures = 0
            self.fallback_since = None
        self.failures += 1
        if (
            self.transport is not Transport.POLL
            and self.failures >= self.policy.failures_before_fallback
        ):
            self._fall_back()
            pause = 0.0
        else:
            pause = backoff(self.failures, self.policy.backoff_base_s)
        if retry_after is not None:
            # The server said when to come back (SPEC §3), whichever transport is next.
            pause = min(retry_after, self.policy.retry_after_cap_s)
        return self._pause(pause)

    # -- inside -------------------------------------------------------------------------
    def _fall_back(self) -> None:
        if self.transport is Transport.SSE:
            self.transport = self.fallback
        else:
            self.transport = Transport.POLL
        self.fallback_since = self.clock()
        self.failures = 0

    def _left(self) -> float | None:
        return None if self.deadline is None else self.deadline - self.clock()

    def _bounded(self, seconds: float) -> float:
        left = self._left()
        return seconds if left is None else max(0.001, min(seconds, left))

    def _pause(self, pause: float) -> float:
        left = self._left()
        if left is not None and left <= pause:
            raise Timeout(f"job {self.job_id}: no terminal event within {self.timeout} s")
        return pause

    def check_deadline(self) -> None:
        left = self._left()
        if left is not None and left <= 0:
            raise Timeout(f"job {self.job_id}: no terminal event within {self.timeout} s")


def _seq(event_id: str) -> int:
    try:
        return int(event_id)
    except ValueError:
        # Not a number: order by the digits it carries (ids are zero-padded decimals).
        digits = "".join(char for char in event_id if char.isdigit())
        return int(digits) if digits else 0
