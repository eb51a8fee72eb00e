"""Drive the Replicate fake through the documented protocol with plain httpx: what the
fake says must match Replicate's HTTP API docs and the official client, or the adapter
tests built on it prove nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.harness import FakeBase, sample_mp4, serving
from tests.fakes.replicate import FakeReplicate, run_fake_replicate
from tests.waiting import wait_until

MODEL = "acme/text-to-video"
WAIT_S = 5.0
#: The progress pattern of replicate-python's `Prediction.Progress`.
PROGRESS = re.compile(r"^\s*(?P<percentage>\d+)%\s*\|.+?\|\s*(?P<current>\d+)\/(?P<total>\d+)")


@pytest.fixture
def fake() -> Iterator[FakeReplicate]:
    with run_fake_replicate() as fake:
        yield fake


@pytest.fixture
def api(fake: FakeReplicate) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {fake.key}"}
    with httpx.Client(base_url=fake.api_url, headers=headers, timeout=10) as client:
        yield client


def create(api: httpx.Client, model: str = MODEL, **body: Any) -> httpx.Response:
    return api.post(f"/models/{model}/predictions", json={"input": {"prompt": "a fox"}, **body})


def poll(api: httpx.Client, prediction_id: str) -> list[dict[str, Any]]:
    """Every state seen until a terminal one."""
    seen: list[dict[str, Any]] = []

    def state() -> dict[str, Any]:
        answer = api.get(f"/predictions/{prediction_id}")
        assert answer.status_code == 200, answer.text
        seen.append(answer.json())
        return seen[-1]

    wait_until(
        state,
        f"prediction {prediction_id} to end",
        until=lambda prediction: prediction["status"] in ("succeeded", "failed", "canceled"),
        timeout=WAIT_S,
    )
    return seen


def test_succeeded_by_model(fake: FakeReplicate, api: httpx.Client) -> None:
    fake.plan(MODEL, queue_s=0.2, run_s=0.5)
    answer = create(api)
    assert answer.status_code == 201
    created = answer.json()
    assert created["status"] == "starting"
    assert created["model"] == MODEL
    assert created["output"] is None
    assert created["error"] is None
    assert created["urls"]["get"] == f"{fake.api_url}/predictions/{created['id']}"
    assert re.fullmatch(r"[0-9a-z]{26}", created["id"])
    assert fake.submissions == [{"input": {"prompt": "a fox"}}]

    seen = poll(api, created["id"])
    statuses = [state["status"] for state in seen]
    assert "processing" in statuses
    assert statuses[-1] == "succeeded"
    processing = [state for state in seen if state["status"] == "processing"]
    assert any(PROGRESS.match(line) for line in processing[-1]["logs"].splitlines())
    final = seen[-1]
    progress = [PROGRESS.match(line) for line in final["logs"].splitlines()]
    last = [match for match in progress if match][-1]
    assert (last["percentage"], last["current"], last["total"]) == ("100", "50", "50")
    assert final["started_at"]
    assert final["completed_at"]
    assert final["metrics"]["predict_time"] == pytest.approx(0.5, abs=0.01)
    assert isinstance(final["output"], str)
    assert final["output"].startswith(f"{fake.root_url}/files/")
    assert fake.completed_at[created["id"]] == pytest.approx(time.time(), abs=5)

    video = httpx.get(final["output"], timeout=10)
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert video.content == sample_mp4()


def test_version_forms(fake: FakeReplicate, api: httpx.Client) -> None:
    version = fake.version_id(MODEL)
    for reference in (version, f"{MODEL}:{version}"):
        answer = api.post("/predictions", json={"version": reference, "input": {}})
        assert answer.status_code == 201, answer.text
        assert answer.json()["model"] == MODEL
        assert answer.json()["version"] == version
    assert api.get(f"/models/{MODEL}").json()["latest_version"]["id"] == version
    assert api.get(f"/models/{MODEL}/versions/{version}").status_code == 200
    unknown = api.post("/predictions", json={"version": "0" * 64, "input": {}})
    assert unknown.status_code == 422
    assert unknown.json()["title"] == "Invalid version or not permitted"


def test_failed(fake: FakeReplicate, api: httpx.Client) -> None:
    fake.plan(MODEL, run_s=0.2, outcome="failed", error="boom: out of memory")
    created = create(api).json()
    final = poll(api, created["id"])[-1]
    assert final["status"] == "failed"
    assert final["error"] == "boom: out of memory"
    assert final["output"] is None
    assert "Traceback" in final["logs"]
    assert created["id"] in fake.completed_at


def test_rejected_and_invalid_bodies(fake: FakeReplicate, api: httpx.Client) -> None:
    fake.plan(MODEL, outcome="rejected")
    answer = create(api)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == 422
    assert problem["title"] == "Input validation failed"
    assert problem["invalid_fields"][0]["field"] == "input"
    assert problem["detail"].startswith("- input: ")
    assert fake.submissions == []

    typo = api.post("/models/acme/other/predictions", json={"inptu": {}})
    assert typo.status_code == 422
    assert {item["type"] for item in typo.json()["invalid_fields"]} == {
        "required",
        "additional_property_not_allowed",
    }
    fake.unknown_models.add("acme/gone")
    missing = create(api, "acme/gone")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "The requested resource could not be found.", "status": 404}


def test_auth(fake: FakeReplicate) -> None:
    with httpx.Client(base_url=fake.api_url, timeout=10) as client:
        bare = client.get("/account")
        assert bare.status_code == 401
        assert bare.json()["title"] == "Unauthenticated"
        wrong = client.get("/account", headers={"Authorization": "Bearer r8_wrong"})
        assert wrong.status_code == 401
        assert wrong.json()["detail"] == "You did not pass a valid authentication token"
        for scheme in ("Bearer", "Token"):
            account = client.get("/account", headers={"Authorization": f"{scheme} {fake.key}"})
            assert account.status_code == 200
            assert account.json()["username"] == fake.username


@contextmanager
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A tiny webhook receiver: records each POST's headers and raw body."""
    calls: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: Request) -> Response:
        calls.append((dict(request.headers), await request.body()))
        return Response(status_code=204)

    with serving(FakeBase(), Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as root:
        yield f"{root}/hook", calls


def test_webhooks_signed(fake: FakeReplicate, api: httpx.Client) -> None:
    fake.plan(MODEL, run_s=0.3)
    secret = api.get("/webhooks/default/secret").json()["key"]
    assert secret.startswith("whsec_")
    with receiver() as (url, calls):
        created = create(api, webhook=url, webhook_events_filter=["completed"]).json()
        bodies: list[dict[str, Any]] = []

        def completed() -> bool:
            bodies[:] = [Webhook(secret).verify(body, headers) for headers, body in calls]
            return any(body["status"] == "succeeded" for body in bodies)

        wait_until(completed, "the succeeded webhook", timeout=WAIT_S)
        assert {body["id"] for body in bodies} == {created["id"]}
        assert {body["status"] for body in bodies} == {"starting", "succeeded"}
        headers, raw = next((headers, raw) for headers, raw in calls if b'"succeeded"' in raw)
        # The same check by hand, as the verify-webhook page spells it.
        key = base64.b64decode(secret.removeprefix("whsec_"))
        signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + raw
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        assert f"v1,{expected}" in headers["webhook-signature"].split()

        fake.bad_signatures = True
        calls.clear()
        create(api, webhook=url, webhook_events_filter=["completed"])
        wait_until(lambda: len(calls) >= 2, "two webhooks", timeout=WAIT_S)
        for headers, raw in calls:
            with pytest.raises(WebhookVerificationError):
                Webhook(secret).verify(raw, headers)


def test_rate_limited(fake: FakeReplicate, api: httpx.Client) -> None:
    fake.fail_next(1, 429, retry_after=1)
    throttled = create(api)
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "1"
    assert throttled.json()["detail"].startswith("Request was throttled.")
    assert create(api).status_code == 201


def test_missing_file_and_list_output(fake: FakeReplicate, api: httpx.Client) -> None:
    fake.plan(MODEL, run_s=0.1, files=3)
    created = create(api).json()
    final = poll(api, created["id"])[-1]
    assert isinstance(final["output"], list)
    assert len(final["output"]) == 3
    name = final["output"][0].rsplit("/", 1)[1]
    fake.missing_files.add(name)
    assert httpx.get(final["output"][0], timeout=10).status_code == 404
    assert httpx.get(final["output"][1], timeout=10).status_code == 200
    assert api.get(f"/predictions/{created['id']}").json()["data_removed"] is True


def test_cancel(fake: FakeReplicate, api: httpx.Client) -> None:
    fake.plan(MODEL, run_s=0.2, outcome="never")
    created = create(api).json()
    wait_until(
        lambda: api.get(f"/predictions/{created['id']}").json()["status"] == "processing",
        "the prediction to be processing",
        timeout=WAIT_S,
    )
    canceled = api.post(f"/predictions/{created['id']}/cancel")
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    assert canceled.json()["completed_at"]
    assert fake.cancelled == [created["id"]]
    assert created["id"] in fake.completed_at
    assert api.get(f"/predictions/{created['id']}").json()["status"] == "canceled"
    assert api.post("/predictions/nope/cancel").status_code == 404


def test_prefer_wait(fake: FakeReplicate, api: httpx.Client) -> None:
    fake.plan(MODEL, run_s=0.2)
    answer = api.post(
        f"/models/{MODEL}/predictions", json={"input": {}}, headers={"Prefer": "wait=5"}
    )
    assert answer.status_code == 201
    assert answer.json()["status"] == "succeeded"
    assert answer.headers["preference-applied"] == "wait=5"


def test_webhook_events(fake: FakeReplicate, api: httpx.Client) -> None:
    fake.plan(MODEL, run_s=1.2)
    with receiver() as (url, calls):
        create(api, webhook=url, webhook_events_filter=["logs", "completed"])
        wait_until(
            lambda: any(b'"succeeded"' in raw for _, raw in calls),
            "the succeeded webhook",
            timeout=WAIT_S,
        )
        bodies = [Webhook(fake.webhook_secret).verify(raw, headers) for headers, raw in calls]
        logs = [body for body in bodies if body["status"] == "processing"]
        assert logs, "no logs event while processing"
        assert any(PROGRESS.match(line) for line in logs[0]["logs"].splitlines())
        assert "output" not in {body["status"] for body in bodies}

        fake.strict_events_filter = True
        fake.plan(MODEL, run_s=0.1)
        calls.clear()
        create(api, webhook=url, webhook_events_filter=["completed"])
        wait_until(
            lambda: any(b'"succeeded"' in raw for _, raw in calls),
            "the succeeded webhook",
            timeout=WAIT_S,
        )
        time.sleep(0.2)
        statuses = [Webhook(fake.webhook_secret).verify(raw, h)["status"] for h, raw in calls]
        assert statuses == ["succeeded"]
