"""The webhook sender: one per node, API or worker. It claims due deliveries from
the outbox, signs and POSTs them, and logs every attempt (SPEC §5).

At least once: a delivery is claimed under a lease (its next attempt pushed past
the longest a send may take), so one whose sender dies mid-send is due again when
the lease ends; the receiver deduplicates by `webhook-id`. A sender wakes on the
`webhooks` topic, at its next due retry, and at least every IDLE_POLL_S (for
deliveries queued on another node).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import httpx

from genwire import __version__
from genwire.bus import Bus, Subscription, topics
from genwire.config import DEFAULT_WEBHOOK_TIMEOUT_S, WEBHOOK_RETRY_SCHEDULE_S, Settings
from genwire.models import format_time, utc_now
from genwire.store import Store
from genwire.store.deliveries import Attempt, Delivery, DeliveryStatus
from genwire.webhooks.signing import load_or_create_secret, secret_key, signature_headers
from genwire.webhooks.targets import AddressLookup, RefusedTarget, pinned_target, resolve_addresses

log = logging.getLogger("genwire.webhooks")

DEFAULT_CONCURRENCY = 16  #: sends in flight per node
LEASE_MARGIN_S = 5.0  #: a claim outlives the request time-out by this much
IDLE_POLL_S = 30.0  #: the longest a sender sleeps between looks at the outbox
ERROR_PAUSE_S = 5.0  #: after the store failed a claim
JITTER = 0.1  #: each pause is the schedule's ±10% (27.6 h × 0.9 still spans a day)
MAX_ERROR_LENGTH = 500
SHARED_SECRET_NEEDED = (
    "with a shared database every node must sign webhooks alike: "
    "set GENWIRE_WEBHOOK_SECRET (the same whsec_… secret) on each node"
)


@dataclass(frozen=True)
class SenderSettings:
    key: bytes  #: the HMAC key of the server's `whsec_…` secret
    allow_private: bool = False
    timeout_s: float = DEFAULT_WEBHOOK_TIMEOUT_S  #: one attempt, resolving the host included
    retry_schedule_s: tuple[float, ...] = WEBHOOK_RETRY_SCHEDULE_S
    concurrency: int = DEFAULT_CONCURRENCY


def retry_delay(attempts_made: int, schedule: Sequence[float], rng: random.Random) -> float | None:
    """Seconds before the next attempt after `attempts_made` failed ones; None when
    the schedule is spent and the delivery has failed for good."""
    if attempts_made > len(schedule):
        return None
    return schedule[attempts_made - 1] * rng.uniform(1 - JITTER, 1 + JITTER)


@dataclass(frozen=True)
class _Outcome:
    status_code: int | None = None
    error: str | None = None
    final: bool = False  #: never worth retrying (a refused target)

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookSender:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        settings: SenderSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        lookup: AddressLookup = resolve_addresses,
    ) -> None:
        self._outbox = store.outbox
        self._bus = bus
        self.settings = settings
        self._lookup = lookup
        self._client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,  # SPEC §5: a redirect is an answer, not a delivery
            timeout=settings.timeout_s,
            # A proxy from the environment would connect on our behalf, to an
            # address nobody checked.
            trust_env=False,
            # A connection pinned to one host's address and TLS name must not carry
            # a request for another host that resolves to the same address.
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"user-agent": f"genwire/{__version__}"},
        )
        self._rng = random.Random()
        self._task: asyncio.Task[None] | None = None
        self._wake: Subscription | None = None
        self._in_flight: dict[str, asyncio.Task[None]] = {}

    @classmethod
    def from_settings(cls, store: Store, bus: Bus, settings: Settings) -> WebhookSender:
        """A sender signing with the configured secret, else the data dir's own."""
        secret = settings.webhook_secret
        if secret is None:
            if not settings.uses_embedded_database:
                # Nodes with secrets of their own would sign alike only by chance:
                # receivers would reject some deliveries until they failed for good.
                raise ValueError(SHARED_SECRET_NEEDED)
            secret = load_or_create_secret(settings.data_dir)
            log.info(
                "webhooks are signed with the secret in %s (or set GENWIRE_WEBHOOK_SECRET)",
                (settings.data_dir / "webhook-secret").resolve(),
            )
        return cls(
            store,
            bus,
            SenderSettings(
                key=secret_key(secret),
                allow_private=settings.allow_private_webhooks,
                timeout_s=settings.webhook_timeout_s,
                retry_schedule_s=settings.webhook_retry_schedule_s,
            ),
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="genwire-webhooks")

    async def stop(self) -> None:
        """Stop sending; deliveries cut off mid-send are due again at once (at least once)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        cut_off = [delivery_id for delivery_id, task in self._in_flight.items() if not task.done()]
        sending = list(self._in_flight.values())
        for task in sending:
            task.cancel()
        await asyncio.gather(*sending, return_exceptions=True)
        if cut_off:
            try:
                await self._outbox.release(cut_off, utc_now())
            except Exception:
                log.exception("giving back %d webhook delivery(ies) failed", len(cut_off))
        await self._client.aclose()

    async def _run(self) -> None:
        with self._bus.subscribe(topics.WEBHOOKS) as wake:
            self._wake = wake
            while True:
                try:
                    pause = await self._dispatch()
                except Exception:
                    log.exception("claiming webhook deliveries failed; retrying")
                    pause = ERROR_PAUSE_S
                await wake.wait(pause)

    async def _dispatch(self) -> float:
        """Launch what is due, as slots allow; returns how long to sleep unless woken."""
        free = self.settings.concurrency - len(self._in_flight)
        if free <= 0:
            return IDLE_POLL_S  # a finished send wakes the loop
        now = utc_now()
        lease_until = now + timedelta(seconds=self.settings.timeout_s + LEASE_MARGIN_S)

        in_flight = set(self._in_flight)

        claimed = await self._outbox.claim_due(now, lease_until, free, in_flight)
        for delivery in claimed:
            self._launch(delivery)
        if len(claimed) == free:
            return IDLE_POLL_S
        due = await self._outbox.next_due_at()
        if due is None:
            return IDLE_POLL_S
        return min(IDLE_POLL_S, max(0.0, (due - utc_now()).total_seconds()))

    def _launch(self, delivery: Delivery) -> None:
        task = asyncio.create_task(self._deliver(delivery), name=f"genwire-webhook-{delivery.id}")
        self._in_flight[delivery.id] = task
        task.add_done_callback(partial(self._sent, delivery.id))

    def _sent(self, delivery_id: str, task: asyncio.Task[None]) -> None:
        if self._in_flight.get(delivery_id) is task:
            del self._in_flight[delivery_id]
        if self._wake is not None:
            self._wake.notify()

    async def _deliver(self, delivery: Delivery) -> None:
        attempted_at = utc_now()
        started = time.perf_counter()
        outcome = await self._attempt(delivery)
        attempt = Attempt(
            attempted_at,
            outcome.status_code,
            outcome.error,
            round((time.perf_counter() - started) * 1000, 3),
        )
        status, next_attempt_at = self._next_state(delivery, outcome)
        try:
            await self._outbox.record_attempt(delivery.id, attempt, status, next_attempt_at)
        except Exception:
            log.exception("recording an attempt of %s failed; it is sent again later", delivery.id)
            return
        reason = outcome.error or f"HTTP {outcome.status_code}"
        if status is DeliveryStatus.FAILED:
            log.warning("webhook %s to %s failed for good: %s", delivery.id, delivery.url, reason)
        elif status is DeliveryStatus.PENDING:
            log.info(
                "webhook %s to %s: %s; retrying at %s",
                delivery.id,
                delivery.url,
                reason,
                format_time(next_attempt_at),
            )

    def _next_state(
        self, delivery: Delivery, outcome: _Outcome
    ) -> tuple[DeliveryStatus, datetime | None]:
        if outcome.delivered:
            return DeliveryStatus.DELIVERED, None
        delay = None
        if not outcome.final:
            delay = retry_delay(delivery.attempts + 1, self.settings.retry_schedule_s, self._rng)
        if delay is None:
            return DeliveryStatus.FAILED, None
        return DeliveryStatus.PENDING, utc_now() + timedelta(seconds=delay)

    async def _attempt(self, delivery: Delivery) -> _Outcome:
        body = delivery.payload.encode()
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                target = await pinned_target(
                    delivery.url, self.settings.allow_private, self._lookup
                )
                headers = {
                    **signature_headers(self.settings.key, delivery.id, int(time.time()), body),
                    "content-type": "application/json",
                    **target.headers,
                }
                # Streamed and never read: the answer's status is all that counts.
                async with self._client.stream(
                    "POST", target.url, content=body, headers=headers, extensions=target.extensions
                ) as response:
                    code = response.status_code
                    location = response.headers.get("location")
        except RefusedTarget as refusal:
            return _Outcome(error=f"refused: {refusal}", final=True)
        except TimeoutError:
            return _Outcome(error=f"timed out after {self.settings.timeout_s:g} s")
        except (httpx.HTTPError, OSError) as error:
            return _Outcome(error=_describe(error))
        except Exception as error:
            log.exception("sending webhook %s failed unexpectedly", delivery.id)
            return _Outcome(error=_describe(error))
        if 300 <= code < 400:
            redirect = f"redirect not followed (Location: {location})"
            return _Outcome(code, redirect[:MAX_ERROR_LENGTH])
        return _Outcome(code)


def _describe(error: Exception) -> str:
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return text[:MAX_ERROR_LENGTH]
