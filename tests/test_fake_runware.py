"""The Runware fake, driven through the documented REST protocol with plain httpx."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.harness import FakeBase, serving
from tests.fakes.runware import FakeRunware, run_fake_runware
from tests.waiting import wait_until

KEY = "rw-test-key"
VIDEO_MODEL = "klingai:5@3"
WAIT_S = 5.0


@pytest.fixture
def fake() -> Iterator[FakeRunware]:
    with run_fake_runware(key=KEY) as fake:
        yield fake


def post(fake: FakeRunware, tasks: list[dict[str, Any]], key: str | None = KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.post(fake.api_url, json=tasks, headers=headers, timeout=10)


def video_task(model: str = VIDEO_MODEL, **extra: Any) -> dict[str, Any]:
    return {
        "taskType": "videoInference",
        "taskUUID": str(uuid.uuid4()),
        "model": model,
        "positivePrompt": "a cat playing with a ball of yarn",
        "duration": 5,
        "deliveryMethod": "async",
        **extra,
    }


def poll_until_done(fake: FakeRunware, task_uuid: str) -> httpx.Response:
    """getResponse until the answer is no longer `processing`; returns that answer."""

    def done(answer: httpx.Response) -> bool:
        body = answer.json()
        return bool(body.get("errors")) or any(d["status"] != "processing" for d in body["data"])

    return wait_until(
        lambda: post(fake, [{"taskType": "getResponse", "taskUUID": task_uuid}]),
        f"task {task_uuid} to be done",
        until=done,
        timeout=WAIT_S,
    )


def test_submit_poll_succeed_download(fake: FakeRunware) -> None:
    fake.plan(VIDEO_MODEL, run_s=0.3)
    task = video_task(includeCost=True, seed=42)
    ack = post(fake, [task])
    assert ack.status_code == 200
    assert ack.json() == {"data": [{"taskType": "videoInference", "taskUUID": task["taskUUID"]}]}
    assert fake.submissions == [task]

    first = post(fake, [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])
    assert first.json()["data"] == [
        {"taskType": "videoInference", "taskUUID": task["taskUUID"], "status": "processing"}
    ]
    done = poll_until_done(fake, task["taskUUID"])
    assert done.status_code == 200
    [result] = done.json()["data"]
    assert result["status"] == "success"
    assert result["taskUUID"] == task["taskUUID"]
    assert result["seed"] == 42
    assert result["cost"] > 0
    uuid.UUID(result["videoUUID"])
    assert task["taskUUID"] in fake.completed_at

    video = httpx.get(result["videoURL"], timeout=10)
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"
    # getResponse tasks are not submissions
    assert len(fake.submissions) == 1


def test_image_and_audio_outputs(fake: FakeRunware) -> None:
    fake.plan("runware:101@1", run_s=0.0)
    fake.plan("elevenlabs:1@1", run_s=0.0)
    image = {**video_task("runware:101@1"), "taskType": "imageInference"}
    audio = {**video_task("elevenlabs:1@1"), "taskType": "audioInference"}
    assert post(fake, [image, audio]).status_code == 200
    [image_result] = poll_until_done(fake, image["taskUUID"]).json()["data"]
    [audio_result] = poll_until_done(fake, audio["taskUUID"]).json()["data"]
    assert "cost" not in image_result  # only with includeCost
    png = httpx.get(image_result["imageURL"], timeout=10)
    assert png.content.startswith(b"\x89PNG")
    wav = httpx.get(audio_result["audioURL"], timeout=10)
    assert wav.content.startswith(b"RIFF")


def test_auth_header_or_task_and_wrong_keys(fake: FakeRunware) -> None:
    missing = post(fake, [video_task()], key=None)
    assert missing.status_code == 401
    assert missing.json()["errors"][0]["code"] == "missingApiKey"
    wrong = post(fake, [video_task()], key="nope")
    assert wrong.status_code == 401
    [error] = wrong.json()["errors"]
    assert error["code"] == "invalidApiKey"
    assert error["taskType"] == "authentication"
    assert error["parameter"] == "apiKey"

    task = video_task()
    in_payload = post(fake, [{"taskType": "authentication", "apiKey": KEY}, task], key=None)
    assert in_payload.status_code == 200
    assert in_payload.json()["data"] == [
        {"taskType": "videoInference", "taskUUID": task["taskUUID"]}
    ]
    wrong_task = post(
        fake, [{"taskType": "authentication", "apiKey": "nope"}, video_task()], key=None
    )
    assert wrong_task.status_code == 401
    assert fake.submissions == [task]


def test_same_task_uuid_is_refused(fake: FakeRunware) -> None:
    task = video_task()
    assert post(fake, [task]).status_code == 200
    again = post(fake, [task])
    assert again.status_code == 400
    [error] = again.json()["errors"]
    assert error["code"] == "conflictTaskUUID"
    assert error["taskUUID"] == task["taskUUID"]
    assert error["context"]["deliveryMethod"] == "async"
    assert fake.submissions == [task]
    assert fake.submission_attempts == [task, task]
    assert fake.conflicts == [task["taskUUID"]]


def test_failed_task(fake: FakeRunware) -> None:
    fake.plan(VIDEO_MODEL, run_s=0.2, outcome="failed", error="the model ran out of memory")
    task = video_task()
    assert post(fake, [task]).status_code == 200
    done = poll_until_done(fake, task["taskUUID"])
    assert done.status_code == 200
    [error] = done.json()["errors"]
    assert error["status"] == "error"
    assert error["taskUUID"] == task["taskUUID"]
    assert error["message"] == "the model ran out of memory"
    assert error["code"]
    assert task["taskUUID"] in fake.completed_at


def test_rejected_task(fake: FakeRunware) -> None:
    fake.plan(VIDEO_MODEL, outcome="rejected")
    task = video_task()
    answer = post(fake, [task])
    assert answer.status_code == 400
    [error] = answer.json()["errors"]
    assert {"code", "message", "parameter", "taskType", "taskUUID"} <= error.keys()
    assert error["taskUUID"] == task["taskUUID"]
    assert error["taskType"] == "videoInference"
    assert fake.submissions == []
    assert fake.submission_attempts == [task]

    unknown = post(fake, [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])
    assert unknown.status_code == 404
    assert unknown.json()["errors"][0]["taskUUID"] == task["taskUUID"]


def test_never_stays_processing_and_there_is_no_cancel(fake: FakeRunware) -> None:
    fake.plan(VIDEO_MODEL, outcome="never")
    task = video_task()
    assert post(fake, [task]).status_code == 200
    refused = post(fake, [{"taskType": "cancel", "taskUUID": task["taskUUID"]}])
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["code"] == "unsupportedTaskType"
    time.sleep(0.8)
    later = post(fake, [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])
    assert later.json()["data"][0]["status"] == "processing"
    assert fake.cancelled == []
    assert task["taskUUID"] not in fake.completed_at


class Receiver:
    """A webhook endpoint of our own: answers the scripted statuses, then 200."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.times: list[float] = []

    async def hook(self, request: Request) -> Response:
        self.times.append(time.monotonic())
        self.bodies.append(await request.body())
        self.headers.append(dict(request.headers))
        status = self.statuses.pop(0) if self.statuses else 200
        return JSONResponse({}, status_code=status)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    hooks = Receiver([])
    app = Starlette(routes=[Route("/hook", hooks.hook, methods=["POST"])])
    with serving(FakeBase(), app) as root:
        yield hooks, f"{root}/hook?token=abc"


def test_webhook_is_the_bare_task_object(fake: FakeRunware, receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    fake.plan(VIDEO_MODEL, run_s=0.2)
    task = video_task(webhookURL=url)
    assert post(fake, [task]).status_code == 200
    wait_until(lambda: len(hooks.bodies) == 1, "the webhook", timeout=WAIT_S)
    delivered = json.loads(hooks.bodies[0])
    assert "data" not in delivered
    [polled] = post(fake, [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}]).json()[
        "data"
    ]
    assert delivered == polled
    assert delivered["status"] == "success"
    # Runware signs nothing: no signature header of any kind.
    assert not any("signature" in name for name in hooks.headers[0])
    assert fake.webhook_calls[0].status_code == 200


def test_webhook_retried_after_a_failure(fake: FakeRunware, receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    hooks.statuses = [500]
    fake.plan(VIDEO_MODEL, run_s=0.0)
    assert post(fake, [video_task(webhookURL=url)]).status_code == 200
    wait_until(lambda: len(fake.webhook_calls) == 2, "the retried webhook", timeout=WAIT_S)
    assert [call.status_code for call in fake.webhook_calls] == [500, 200]
    assert hooks.bodies[0] == hooks.bodies[1]
    # Not at once: Runware's backoff starts at ~250 ms (with jitter). A lower bound
    # only, which no slow machine can break.
    assert hooks.times[1] - hooks.times[0] > 0.15


def test_sync_delivery_answers_when_done(fake: FakeRunware) -> None:
    fake.plan(VIDEO_MODEL, run_s=0.2)
    task = video_task(deliveryMethod="sync")
    answer = post(fake, [task])
    [result] = answer.json()["data"]
    assert result["status"] == "success"
    assert result["videoURL"].startswith(fake.files_url)


def test_lost_webhooks(fake: FakeRunware, receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    fake.send_webhooks = False
    fake.plan(VIDEO_MODEL, run_s=0.0)
    task = video_task(webhookURL=url)
    assert post(fake, [task]).status_code == 200
    poll_until_done(fake, task["taskUUID"])
    time.sleep(0.2)
    assert hooks.bodies == []


def test_scripted_429_and_503(fake: FakeRunware) -> None:
    fake.fail_next(1, 429, retry_after=1)
    fake.fail_next(1, 503)
    limited = post(fake, [video_task()])
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"
    assert limited.json()["errors"][0]["code"]
    assert post(fake, [video_task()]).status_code == 503
    assert post(fake, [video_task()]).status_code == 200
    assert len(fake.submissions) == 1


def test_missing_file_404s(fake: FakeRunware) -> None:
    fake.plan(VIDEO_MODEL, run_s=0.0)
    task = video_task()
    post(fake, [task])
    [result] = poll_until_done(fake, task["taskUUID"]).json()["data"]
    name = result["videoURL"].rsplit("/", 1)[1]
    fake.missing_files.add(name)
    assert httpx.get(result["videoURL"], timeout=10).status_code == 404


def test_invalid_input_and_trailing_slash(fake: FakeRunware) -> None:
    not_array = httpx.post(
        fake.api_url, json=video_task(), headers={"Authorization": f"Bearer {KEY}"}, timeout=10
    )
    assert not_array.status_code == 400
    bad_uuid = post(fake, [video_task(taskUUID="not-a-uuid")])
    assert bad_uuid.status_code == 400
    assert bad_uuid.json()["errors"][0]["parameter"] == "taskUUID"
    slash = httpx.post(
        fake.api_url + "/",
        json=[{"taskType": "ping", "ping": True}],
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=10,
    )
    assert slash.json() == {"data": [{"taskType": "ping", "pong": True}]}
