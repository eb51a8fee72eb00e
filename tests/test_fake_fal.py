"""The fal fake speaks fal's documented queue protocol: driven here with plain httpx,
as any client of `queue.fal.run` would, and its webhooks checked with a verifier written
from the Webhooks page (not the fake's signing code)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.fal import FakeFal, run_fake_fal
from tests.fakes.harness import FakeBase, sample_mp4, serving
from tests.waiting import wait_until

VIDEO = "fal-ai/kling-video/v2/master/text-to-video"
APP = "fal-ai/kling-video"
WAIT_S = 5.0


@pytest.fixture
def fal() -> Iterator[FakeFal]:
    with run_fake_fal(key="kid:secret") as fake:
        yield fake


@pytest.fixture
def client(fal: FakeFal) -> Iterator[httpx.Client]:
    with httpx.Client(headers={"Authorization": "Key kid:secret"}, timeout=10) as http:
        yield http


def poll(client: httpx.Client, status_url: str, wanted: str, *, logs: bool = False) -> Any:
    """Poll the status URL until `status == wanted`; returns that answer."""

    def status() -> httpx.Response:
        answer = client.get(status_url, params={"logs": "1" if logs else "0"})
        assert answer.status_code in (200, 202), answer.text
        return answer

    return wait_until(
        status,
        f"status {wanted}",
        until=lambda answer: answer.json()["status"] == wanted,
        timeout=WAIT_S,
    )


def test_submit_poll_result(fal: FakeFal, client: httpx.Client) -> None:
    fal.plan(VIDEO, queue_s=0.2, run_s=0.3)
    submitted = client.post(f"{fal.api_url}/{VIDEO}", json={"prompt": "a red fox"})
    assert submitted.status_code == 200
    job = submitted.json()
    rid = job["request_id"]
    base = f"{fal.api_url}/{APP}/requests/{rid}"
    assert job["response_url"] == base
    assert job["status_url"] == f"{base}/status"
    assert job["cancel_url"] == f"{base}/cancel"
    assert job["status"] == "IN_QUEUE"
    assert fal.submissions == [{"prompt": "a red fox"}]

    queued = client.get(job["status_url"])
    assert queued.status_code == 202
    assert queued.json()["status"] == "IN_QUEUE"
    assert queued.json()["queue_position"] == 0
    early = client.get(job["response_url"])
    assert early.status_code == 400

    running = poll(client, job["status_url"], "IN_PROGRESS", logs=True)
    assert running.status_code == 202
    assert all(
        set(line) == {"message", "level", "source", "timestamp"} for line in running.json()["logs"]
    )

    done = poll(client, job["status_url"], "COMPLETED", logs=True)
    assert done.status_code == 200
    body = done.json()
    assert "error" not in body
    assert body["metrics"]["inference_time"] > 0
    assert any("10/10" in line["message"] for line in body["logs"])
    assert client.get(job["status_url"]).json()["logs"] is None  # not asked for
    assert rid in fal.completed_at

    result = client.get(job["response_url"])
    assert result.status_code == 200
    video = result.json()["video"]
    assert video["content_type"] == "video/mp4"
    assert video["file_size"] == len(sample_mp4())
    download = httpx.get(video["url"])
    assert download.status_code == 200
    assert download.content == sample_mp4()

    fal.missing_files.add(video["url"].rsplit("/", 1)[1])
    assert httpx.get(video["url"]).status_code == 404


def test_status_needs_the_app_id_not_the_endpoint_path(fal: FakeFal, client: httpx.Client) -> None:
    rid = client.post(f"{fal.api_url}/{VIDEO}", json={"prompt": "x"}).json()["request_id"]
    assert client.get(f"{fal.api_url}/{VIDEO}/requests/{rid}/status").status_code == 404
    assert client.get(f"{fal.api_url}/{APP}/requests/{rid}/status/").status_code in (200, 202)


def test_image_model_output(fal: FakeFal, client: httpx.Client) -> None:
    fal.plan("fal-ai/flux/dev", run_s=0.05)
    job = client.post(f"{fal.api_url}/fal-ai/flux/dev", json={"prompt": "a cat"}).json()
    assert job["status_url"].startswith(f"{fal.api_url}/fal-ai/flux/requests/")
    poll(client, job["status_url"], "COMPLETED")
    image = client.get(job["response_url"]).json()["images"][0]
    assert (image["width"], image["height"], image["content_type"]) == (64, 64, "image/png")
    assert httpx.get(image["url"]).content.startswith(b"\x89PNG")


def test_failed(fal: FakeFal, client: httpx.Client) -> None:
    fal.plan(VIDEO, run_s=0.1, outcome="failed", error="CUDA out of memory")
    job = client.post(f"{fal.api_url}/{VIDEO}", json={"prompt": "x"}).json()
    done = poll(client, job["status_url"], "COMPLETED").json()
    assert done["error"] == "CUDA out of memory"
    assert done["error_type"] == "runner_server_error"
    result = client.get(job["response_url"])
    assert result.status_code == 500
    assert result.json() == {"detail": "CUDA out of memory", "error_type": "runner_server_error"}
    assert result.headers["x-fal-error-type"] == "runner_server_error"


def test_rejected_comes_back_from_the_result(fal: FakeFal, client: httpx.Client) -> None:
    fal.plan(VIDEO, run_s=0.05, outcome="rejected", error="Prompt is too long")
    job = client.post(f"{fal.api_url}/{VIDEO}", json={"prompt": "x" * 3000})
    assert job.status_code == 200
    poll(client, job.json()["status_url"], "COMPLETED")
    result = client.get(job.json()["response_url"])
    assert result.status_code == 422
    (detail,) = result.json()["detail"]
    assert detail["loc"] == ["body", "prompt"]
    assert detail["msg"] == "Prompt is too long"


def test_rejected_at_submit(fal: FakeFal, client: httpx.Client) -> None:
    fal.plan(VIDEO, outcome="rejected", reject_at="submit")
    answer = client.post(f"{fal.api_url}/{VIDEO}", json={})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["type"] == "missing"
    assert fal.submissions == []


def test_auth(fal: FakeFal) -> None:
    url = f"{fal.api_url}/{VIDEO}"
    assert httpx.post(url, json={}).status_code == 401
    wrong = httpx.post(url, json={}, headers={"Authorization": "Key kid:nope"})
    assert wrong.status_code == 401
    assert wrong.json() == {"detail": "No user found for Key ID and Secret"}
    assert fal.submissions == []


def test_scripted_429_then_503(fal: FakeFal, client: httpx.Client) -> None:
    fal.fail_next(1, 429, retry_after=1)
    fal.fail_next(1, 503)
    first = client.post(f"{fal.api_url}/{VIDEO}", json={"prompt": "x"})
    assert first.status_code == 429
    assert first.headers["retry-after"] == "1"
    assert client.post(f"{fal.api_url}/{VIDEO}", json={"prompt": "x"}).status_code == 503
    assert client.post(f"{fal.api_url}/{VIDEO}", json={"prompt": "x"}).status_code == 200
    assert len(fal.submissions) == 1


def test_cancel(fal: FakeFal, client: httpx.Client) -> None:
    fal.plan(VIDEO, queue_s=30)
    job = client.post(f"{fal.api_url}/{VIDEO}", json={"prompt": "x"}).json()
    cancelled = client.put(job["cancel_url"])
    assert cancelled.status_code == 202
    assert cancelled.json() == {"status": "CANCELLATION_REQUESTED"}
    assert fal.cancelled == [job["request_id"]]
    done = client.get(job["status_url"])
    assert done.status_code == 200
    assert done.json()["status"] == "COMPLETED"
    assert done.json()["error_type"] == "client_cancelled"
    again = client.put(job["cancel_url"])
    assert (again.status_code, again.json()) == (400, {"status": "ALREADY_COMPLETED"})
    missing = client.put(f"{fal.api_url}/{APP}/requests/nope/cancel")
    assert missing.status_code == 404


@dataclass
class Receiver(FakeBase):
    """A webhook endpoint that keeps what it was sent."""

    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            self.received.append((await request.body(), dict(request.headers)))
            return Response(status_code=200)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


def verify(jwks: dict[str, Any], body: bytes, headers: dict[str, str]) -> bool:
    """The Webhooks page's check: Ed25519 over request id, user id, timestamp and the
    SHA-256 hex of the raw body, newline-joined, against any key of the JWKS."""
    assert abs(time.time() - int(headers["x-fal-webhook-timestamp"])) < 300
    message = "\n".join(
        [
            headers["x-fal-webhook-request-id"],
            headers["x-fal-webhook-user-id"],
            headers["x-fal-webhook-timestamp"],
            hashlib.sha256(body).hexdigest(),
        ]
    ).encode()
    signature = bytes.fromhex(headers["x-fal-webhook-signature"])
    for key in jwks["keys"]:
        raw = base64.urlsafe_b64decode(key["x"] + "=" * (-len(key["x"]) % 4))
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(signature, message)
            return True
        except InvalidSignature:
            continue
    return False


def test_webhooks_are_signed(fal: FakeFal, client: httpx.Client) -> None:
    receiver = Receiver()
    with serving(receiver, receiver.app()) as hook_root:
        fal.plan(VIDEO, run_s=0.1)
        fal.plan("fal-ai/veo3", run_s=0.1, outcome="rejected")
        ok = client.post(
            f"{fal.api_url}/{VIDEO}",
            params={"fal_webhook": f"{hook_root}/hook"},
            json={"prompt": "x"},
        ).json()
        wait_until(lambda: len(receiver.received) >= 1, "a webhook", timeout=WAIT_S)
        jwks = httpx.get(fal.jwks_url).json()
        assert (jwks["keys"][0]["kty"], jwks["keys"][0]["crv"]) == ("OKP", "Ed25519")

        body, headers = receiver.received[0]
        assert verify(jwks, body, headers)
        assert headers["x-fal-webhook-request-id"] == ok["request_id"]
        payload = json.loads(body)
        assert payload["status"] == "OK"
        assert payload["request_id"] == payload["gateway_request_id"] == ok["request_id"]
        assert payload["payload"]["video"]["content_type"] == "video/mp4"
        assert verify(jwks, body + b" ", headers) is False  # body tampered with

        client.post(
            f"{fal.api_url}/fal-ai/veo3", params={"fal_webhook": f"{hook_root}/hook"}, json={}
        )
        wait_until(lambda: len(receiver.received) >= 2, "a second webhook", timeout=WAIT_S)
        error = json.loads(receiver.received[1][0])
        assert error["status"] == "ERROR"
        assert error["error"] == "Invalid status code: 422"
        assert error["payload"]["detail"][0]["loc"] == ["body", "prompt"]

        fal.bad_signatures = True
        client.post(
            f"{fal.api_url}/{VIDEO}",
            params={"fal_webhook": f"{hook_root}/hook"},
            json={"prompt": "y"},
        )
        wait_until(lambda: len(receiver.received) >= 3, "a third webhook", timeout=WAIT_S)
        assert not verify(jwks, *receiver.received[2])
        # noted once the receiver has answered
        wait_until(lambda: len(fal.webhook_calls) >= 3, "3 webhook calls noted", timeout=WAIT_S)
        assert [call.status_code for call in fal.webhook_calls] == [200, 200, 200]
