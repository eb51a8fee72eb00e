"""Webhooks (SPEC §5, §8): signed by the Standard Webhooks scheme, retried, durable.

Over the wire: a real genwire server delivers to a real receiver on a free port,
and the signatures are checked by the `standardwebhooks` package, not by our own
code. In-process, over SQLite and PostgreSQL: the outbox, the lease, the address
checks at send time and the end of the retry schedule.
"""

from __future__ import annotations

import ipaddress
import os
import random
import socket
import stat
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from genwire.api import create_app
from genwire.bus import LocalBus
from genwire.config import WEBHOOK_RETRY_SCHEDULE_S, Settings
from genwire.models import JsonObject, utc_now
from genwire.service import CreateJob, JobService
from genwire.store import SqlStore
from genwire.store.deliveries import DeliveryRecord, DeliveryStatus, claim_due
from genwire.webhooks.sender import JITTER, SenderSettings, WebhookSender, retry_delay
from genwire.webhooks.signing import generate_secret, load_or_create_secret, secret_key, sign
from genwire.webhooks.targets import IpAddress, is_public, literal_address
from tests import pipelines as test_pipelines
from tests.conftest import ThreadedServer
from tests.http_calls import wait_for_status
from tests.waiting import eventually, wait_until

LiveServer = Callable[..., ThreadedServer]

SECRET = generate_secret()
WAIT_S = 20.0
#: Loopback receivers allowed; retries in a fifth of a second instead of 5 s.
FAST: dict[str, Any] = {
    "allow_private_webhooks": True,
    "webhook_secret": SECRET,
    "webhook_retry_schedule_s": (0.2,) * 7,
    "webhook_timeout_s": 5.0,
}


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A webhook target on a free port: records every request, answers `answers`
    in turn and then `then` (a 3xx points elsewhere, which must never be asked)."""

    def __init__(self, answers: Sequence[int] = (), then: int = 200) -> None:
        self._answers = list(answers)
        self.then = then
        self._lock = threading.Lock()
        self.requests: list[Received] = []
        app = Starlette(
            routes=[
                Route("/hook", self._answer, methods=["POST"]),
                Route("/elsewhere", self._answer, methods=["GET", "POST"]),
            ]
        )
        self.server = ThreadedServer(app)
        self.url = f"{self.server.url}/hook"

    async def _answer(self, request: Request) -> Response:
        received = Received(request.url.path, dict(request.headers), await request.body())
        with self._lock:
            self.requests.append(received)
            status = self._answers.pop(0) if self._answers else self.then
        headers = {"location": "/elsewhere"} if 300 <= status < 400 else None
        return Response(status_code=status, headers=headers)

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(answers: Sequence[int] = (), then: int = 200) -> Receiver:
        target = Receiver(answers, then)
        target.server.__enter__()
        started.append(target)
        return target

    yield start
    for target in started:
        target.server.__exit__()


def create_job(http: httpx.Client, url: str, steps: int = 2, **webhook: Any) -> str:
    response = http.post(
        "/api/jobs",
        json={
            "pipeline": "demo.synthetic",
            "input": {"steps": steps, "step_ms": 1},
            "webhook": {"url": url, **webhook},
        },
    )
    assert response.status_code == 201, response.text
    job_id: str = response.json()["id"]
    return job_id


def deliveries(http: httpx.Client, job_id: str) -> list[JsonObject]:
    response = http.get(f"/api/jobs/{job_id}/webhooks")
    assert response.status_code == 200, response.text
    items: list[JsonObject] = response.json()["items"]
    return items


def settled(http: httpx.Client, job_id: str, count: int) -> list[JsonObject] | None:
    """The job's deliveries once there are `count` and none is pending any more."""
    items = deliveries(http, job_id)
    if len(items) == count and all(item["status"] != "pending" for item in items):
        return items
    return None


# -- over the wire -------------------------------------------------------------------


def test_a_finished_job_is_delivered_once_and_signed_by_the_standard(
    live_server: LiveServer, receiver: Callable[..., Receiver]
) -> None:
    target = receiver()
    server = live_server(**FAST)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        job_id = create_job(http, target.url)
        [item] = wait_until(lambda: settled(http, job_id, 1), "the delivery", timeout=WAIT_S)
    [request] = target.received()
    payload = Webhook(SECRET).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(request.body, request.headers)
    # No `events` given: the terminal event only, as the Standard Webhooks body.
    assert payload["type"] == "job-completed"
    assert payload["timestamp"] == payload["data"]["ts"]
    assert payload["data"]["job_id"] == job_id
    assert payload["data"]["id"] == item["event_id"]
    assert request.headers["webhook-id"] == item["id"]
    assert item["id"].startswith("msg_")
    assert request.headers["content-type"] == "application/json"
    assert item["status"] == "delivered"
    assert item["event_type"] == "job-completed"
    assert item["url"] == target.url
    assert item["attempts"] == 1
    assert item["next_attempt_at"] is None
    assert item["finished_at"] is not None
    [attempt] = item["attempts_log"]
    assert attempt["status_code"] == 200
    assert attempt["error"] is None
    assert attempt["duration_ms"] >= 0


def test_a_failed_answer_is_retried_with_the_same_webhook_id(
    live_server: LiveServer, receiver: Callable[..., Receiver]
) -> None:
    target = receiver(answers=[500])
    server = live_server(**FAST)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        job_id = create_job(http, target.url)
        [item] = wait_until(lambda: settled(http, job_id, 1), "the delivery", timeout=WAIT_S)
    first, second = target.received()
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == item["id"]
    assert first.body == second.body
    for request in (first, second):
        Webhook(SECRET).verify(request.body, request.headers)
    assert item["status"] == "delivered"
    assert item["attempts"] == 2
    assert [attempt["status_code"] for attempt in item["attempts_log"]] == [500, 200]


def test_a_redirect_is_not_followed_and_counts_as_a_failure(
    live_server: LiveServer, receiver: Callable[..., Receiver]
) -> None:
    target = receiver(then=302)
    server = live_server(**FAST)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        job_id = create_job(http, target.url)
        [item] = wait_until(
            lambda: [item for item in deliveries(http, job_id) if item["attempts"] >= 2],
            "two attempts",
            timeout=WAIT_S,
        )
    assert item["status"] == "pending"
    for attempt in item["attempts_log"]:
        assert attempt["status_code"] == 302
        assert "redirect not followed" in attempt["error"]
    assert {request.path for request in target.received()} == {"/hook"}


PRIVATE_TARGETS = [
    "http://127.0.0.1:9/hook",
    "http://localhost:9/hook",
    "http://app.localhost/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://10.1.2.3/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://2130706433/hook",
    "http://0.0.0.0/hook",
]


def test_a_private_target_is_refused_at_create_unless_allowed(live_server: LiveServer) -> None:
    refusing = live_server(webhook_secret=SECRET)
    allowing = live_server(webhook_secret=SECRET, allow_private_webhooks=True)
    for url in PRIVATE_TARGETS:
        # `warning` events only: nothing is ever sent to these made-up targets.
        webhook = {"url": url, "events": ["warning"]}
        body = {"pipeline": "demo.synthetic", "input": {"steps": 1}, "webhook": webhook}
        refused = httpx.post(f"{refusing.url}/api/jobs", json=body, timeout=30)
        assert refused.status_code == 422, (url, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert [error["field"] for error in refused.json()["errors"]] == ["webhook.url"]
        accepted = httpx.post(f"{allowing.url}/api/jobs", json=body, timeout=30)
        assert accepted.status_code == 201, (url, accepted.text)


def test_a_public_address_is_accepted_at_create(live_server: LiveServer) -> None:
    server = live_server(webhook_secret=SECRET)
    body = {
        "pipeline": "demo.synthetic",
        "input": {"steps": 1},
        "webhook": {"url": "https://93.184.216.34/hook", "events": ["warning"]},
    }
    response = httpx.post(f"{server.url}/api/jobs", json=body, timeout=30)
    assert response.status_code == 201, response.text


def test_a_pending_delivery_survives_a_restart(
    tmp_path: Path, receiver: Callable[..., Receiver]
) -> None:
    target = receiver(then=500)
    settings = Settings(
        data_dir=tmp_path / "data", **{**FAST, "webhook_retry_schedule_s": (1.0,) * 7}
    )
    with (
        ThreadedServer(create_app(settings, test_pipelines.test_registry())) as first,
        httpx.Client(base_url=first.url, timeout=30) as http,
    ):
        job_id = create_job(http, target.url)
        wait_until(
            lambda: [item for item in deliveries(http, job_id) if item["attempts"] >= 1],
            "a first, failed attempt",
            timeout=WAIT_S,
        )
    target.then = 200
    with (
        ThreadedServer(create_app(settings, test_pipelines.test_registry())) as second,
        httpx.Client(base_url=second.url, timeout=30) as http,
    ):
        [item] = wait_until(
            lambda: settled(http, job_id, 1), "the delivery after a restart", timeout=WAIT_S
        )
    assert item["status"] == "delivered"
    codes = [attempt["status_code"] for attempt in item["attempts_log"]]
    assert codes[-1] == 200
    assert set(codes[:-1]) == {500}
    assert {request.headers["webhook-id"] for request in target.received()} == {item["id"]}


def test_a_dead_target_is_retried_and_the_job_is_unaffected(live_server: LiveServer) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = live_server(**FAST)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        job_id = create_job(http, f"http://127.0.0.1:{port}/hook")
        job = wait_for_status(http, job_id, {"succeeded", "failed", "cancelled"})
        [item] = wait_until(
            lambda: [item for item in deliveries(http, job_id) if item["attempts"] >= 2],
            "two attempts",
            timeout=WAIT_S,
        )
    assert job["status"] == "succeeded"
    assert job["error"] is None
    assert item["status"] == "pending"
    assert item["next_attempt_at"] is not None
    for attempt in item["attempts_log"]:
        assert attempt["status_code"] is None
        assert "ConnectError" in attempt["error"]


def test_only_the_requested_event_types_are_delivered(
    live_server: LiveServer, receiver: Callable[..., Receiver]
) -> None:
    target = receiver()
    server = live_server(**FAST)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        job_id = create_job(http, target.url, steps=3, events=["job-completed", "step-progress"])
        items = wait_until(lambda: settled(http, job_id, 4), "four deliveries", timeout=WAIT_S)
    assert [item["event_type"] for item in items] == ["step-progress"] * 3 + ["job-completed"]
    assert all(item["status"] == "delivered" for item in items)
    event_ids = [item["event_id"] for item in items]
    assert event_ids == sorted(event_ids)
    received = target.received()
    payloads = [Webhook(SECRET).verify(request.body, request.headers) for request in received]
    assert (
        sorted(payload["type"] for payload in payloads) == ["job-completed"] + ["step-progress"] * 3
    )
    assert len({request.headers["webhook-id"] for request in received}) == 4


def test_webhooks_of_another_tenants_job_are_not_found(live_server: LiveServer) -> None:
    server = live_server(webhook_secret=SECRET, api_keys={"key-a": "a", "key-b": "b"})
    body = {"pipeline": "demo.synthetic", "input": {"steps": 1}}
    created = httpx.post(
        f"{server.url}/api/jobs", json=body, headers={"authorization": "Bearer key-a"}
    )
    assert created.status_code == 201, created.text
    path = f"{server.url}/api/jobs/{created.json()['id']}/webhooks"
    own = httpx.get(path, headers={"authorization": "Bearer key-a"})
    assert own.status_code == 200
    assert own.json() == {"items": []}
    other = httpx.get(path, headers={"authorization": "Bearer key-b"})
    assert other.status_code == 404
    assert other.headers["content-type"] == "application/problem+json"


# -- in-process, on SQLite and PostgreSQL --------------------------------------------


async def records_of(service: JobService, job_id: str) -> list[DeliveryRecord]:
    return await service.store.outbox.of_job(job_id)


async def cancelled_job(service: JobService, url: str, **webhook: Any) -> str:
    """A job that ends at once (cancelled while queued), with a webhook to `url`."""
    job, _ = await service.create_job(
        "default",
        CreateJob("demo.synthetic", {"steps": 1}, webhook={"url": url, **webhook}),
    )
    await service.request_cancel(job.id)
    return job.id


def fake_dns(*addresses: str) -> Callable[[str, int], Awaitable[list[IpAddress]]]:
    async def lookup(host: str, port: int) -> list[IpAddress]:
        return [ipaddress.ip_address(address) for address in addresses]

    return lookup


class Recorder:
    """An httpx transport that answers `status` and keeps what it was sent."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self._answer)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status)


async def settled_records(service: JobService, job_id: str) -> list[DeliveryRecord] | None:
    records = await records_of(service, job_id)
    if records and all(record.status is not DeliveryStatus.PENDING for record in records):
        return records
    return None


async def test_only_events_a_webhook_asks_for_are_queued(service: JobService) -> None:
    without = await service.create_job("default", CreateJob("demo.synthetic", {"steps": 1}))
    await service.request_cancel(without[0].id)
    default = await cancelled_job(service, "https://hooks.example.com/a")
    chosen = await cancelled_job(service, "https://hooks.example.com/b", events=["job-status"])
    assert await records_of(service, without[0].id) == []
    assert [record.event_type for record in await records_of(service, default)] == ["job-cancelled"]
    # its one job-status (queued), and not its terminal event
    assert [record.event_type for record in await records_of(service, chosen)] == ["job-status"]


async def test_a_name_is_sent_to_the_public_address_it_was_checked_at(
    service: JobService,
) -> None:
    job_id = await cancelled_job(service, "https://hooks.example.com:8443/in?x=1")
    recorder = Recorder()
    sender = WebhookSender(
        service.store,
        service.bus,
        SenderSettings(key=secret_key(SECRET)),
        transport=recorder.transport,
        lookup=fake_dns("93.184.216.34"),
    )
    sender.start()
    try:
        [record] = await eventually(
            lambda: settled_records(service, job_id), "the delivery", timeout=WAIT_S
        )
    finally:
        await sender.stop()
    assert record.status is DeliveryStatus.DELIVERED
    [request] = recorder.requests
    assert request.url.host == "93.184.216.34"
    assert request.url.port == 8443
    assert request.url.raw_path == b"/in?x=1"
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    Webhook(SECRET).verify(request.content, dict(request.headers))


async def test_a_name_resolving_to_a_private_address_is_refused_for_good(
    service: JobService,
) -> None:
    job_id = await cancelled_job(service, "https://rebinding.example.com/hook")
    recorder = Recorder()
    sender = WebhookSender(
        service.store,
        service.bus,
        SenderSettings(key=secret_key(SECRET)),
        transport=recorder.transport,
        lookup=fake_dns("93.184.216.34", "10.0.0.7"),
    )
    sender.start()
    try:
        [record] = await eventually(
            lambda: settled_records(service, job_id), "the refusal", timeout=WAIT_S
        )
    finally:
        await sender.stop()
    assert record.status is DeliveryStatus.FAILED
    assert record.attempts == 1
    [attempt] = record.attempts_log
    assert attempt.status_code is None
    assert attempt.error == "refused: private address"
    assert recorder.requests == []


async def test_a_delivery_fails_when_the_schedule_is_spent(service: JobService) -> None:
    job_id = await cancelled_job(service, "https://hooks.example.com/down")
    recorder = Recorder(status=503)
    sender = WebhookSender(
        service.store,
        service.bus,
        SenderSettings(key=secret_key(SECRET), retry_schedule_s=(0.01, 0.01)),
        transport=recorder.transport,
        lookup=fake_dns("93.184.216.34"),
    )
    sender.start()
    try:
        [record] = await eventually(
            lambda: settled_records(service, job_id), "the failure", timeout=WAIT_S
        )
    finally:
        await sender.stop()
    assert record.status is DeliveryStatus.FAILED
    assert record.attempts == 3
    assert [attempt.status_code for attempt in record.attempts_log] == [503, 503, 503]
    assert record.next_attempt_at is None
    assert record.finished_at is not None
    assert len(recorder.requests) == 3


async def test_a_claimed_delivery_is_due_again_when_its_lease_ends(service: JobService) -> None:
    await cancelled_job(service, "https://hooks.example.com/a")
    now = utc_now()
    lease = timedelta(seconds=15)

    async def claim(at: datetime) -> list[str]:
        claimed, _ = await service.store.write(lambda tx: claim_due(tx, at, at + lease, 16))
        return [delivery.id for delivery in claimed]

    first = await claim(now)
    assert len(first) == 1
    assert await claim(now + timedelta(seconds=1)) == []  # another sender finds it leased
    assert await claim(now + lease + timedelta(seconds=1)) == first  # its sender died


# -- pure logic ----------------------------------------------------------------------


def test_the_default_schedule_spans_a_day_even_with_jitter() -> None:
    assert sum(WEBHOOK_RETRY_SCHEDULE_S) * (1 - JITTER) >= 24 * 3600
    rng = random.Random(7)
    assert 4.5 <= (retry_delay(1, WEBHOOK_RETRY_SCHEDULE_S, rng) or 0) <= 5.5
    assert retry_delay(len(WEBHOOK_RETRY_SCHEDULE_S), WEBHOOK_RETRY_SCHEDULE_S, rng)
    assert retry_delay(len(WEBHOOK_RETRY_SCHEDULE_S) + 1, WEBHOOK_RETRY_SCHEDULE_S, rng) is None


def test_our_signature_is_the_standard_one() -> None:
    timestamp = int(time.time())
    body = b'{"type":"job-completed","data":{"id":"0001"}}'
    expected = Webhook(SECRET).sign("msg_1", datetime.fromtimestamp(timestamp, UTC), body.decode())
    assert sign(secret_key(SECRET), "msg_1", timestamp, body) == expected


def test_a_generated_secret_is_kept_private_and_reused(tmp_path: Path) -> None:
    secret = load_or_create_secret(tmp_path / "data")
    assert secret.startswith("whsec_")
    assert len(secret_key(secret)) == 32
    path = tmp_path / "data" / "webhook-secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_secret(tmp_path / "data") == secret
    assert os.listdir(tmp_path / "data") == ["webhook-secret"]


@pytest.mark.parametrize("secret", ["", "plain", "whsec_not*base64", "whsec_c2hvcnQ="])
def test_a_malformed_secret_is_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="webhook secret"):
        secret_key(secret)


@pytest.mark.parametrize(
    ("host", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("127.1", False),
        ("0x7f.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),
        ("169.254.169.254", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:10.0.0.1", False),
    ],
)
def test_private_ranges_are_told_from_public_ones(host: str, public: bool) -> None:
    address = literal_address(host)
    assert address is not None
    assert is_public(address) is public


@pytest.mark.parametrize(
    "address",
    ["64:ff9b::a00:1", "64:ff9b:1::a00:1", "2002:a00:1::", "::a00:1", "::ffff:0:a00:1"],
)
def test_ipv6_forms_that_carry_a_private_ipv4_address_are_not_public(address: str) -> None:
    """Regression: only ::ffff:a.b.c.d was unwrapped, so NAT64, 6to4 and
    IPv4-compatible forms of 10.0.0.1 passed as public."""
    assert not is_public(ipaddress.ip_address(address))


def test_a_node_of_a_shared_database_refuses_to_sign_with_a_secret_of_its_own(
    tmp_path: Path,
) -> None:
    """Regression: each node generated its own secret, so receivers rejected the
    deliveries of all but one node until they failed for good."""
    settings = Settings(data_dir=tmp_path, database_url="postgresql://postgres@127.0.0.1/none")

    with pytest.raises(ValueError, match="GENWIRE_WEBHOOK_SECRET"):
        WebhookSender.from_settings(SqlStore(settings.resolved_database_url), LocalBus(), settings)
