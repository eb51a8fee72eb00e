"""A fake of Runware's HTTP REST API (https://api.runware.ai/v1) with async delivery.

Written from Runware's published docs and official clients, not from genwire's adapter:

- docs "Connection & Authentication" (platform/authentication, formerly
  getting-started/how-to-connect): one URL, `POST` only, JSON body that is always an
  **array of task objects**; the key goes in `Authorization: Bearer <key>` or in an
  `{"taskType": "authentication", "apiKey": ...}` task placed first in the array.
- docs "Errors" (platform/errors): every failure is `{"errors": [{code, message,
  parameter?, taskType?, taskUUID?, documentation?}]}` plus an HTTP status (400 bad
  request, 401 no valid key, 404 not found, 429, 5xx…).
- docs "Video inference API" / "Image inference API" / "Audio inference API", section
  Response: an async submission is acknowledged with `{"data": [{taskType, taskUUID}]}`;
  `getResponse` answers `status: "processing"`, then `status: "success"` with
  `videoUUID`/`videoURL` (`imageUUID`/`imageURL`, `audioUUID`/`audioURL`), `seed`, and
  `cost` only when the task asked `includeCost`; a failed task comes back in `errors`
  with `status: "error"`.
- docs "Task Polling" / "Task Responses" (utilities/task-responses): the `getResponse`
  task and its per-generation statuses `processing` | `success` | `error`.
- docs "Webhooks" and the `webhookURL` parameter: one POST per completed item whose body
  is the bare task object (no `data` wrapper, per Runware/runware-skills
  `migrate/integrate-with-runware/SKILL.md`), no signature (auth is only whatever the
  caller put in the URL's query), retried on a non-2xx answer with exponential backoff
  from 250 ms, doubling, capped at 8 s, with jitter.
- Runware/sdk-python `runware/base.py`: a second submission with a taskUUID already in
  use is refused with code `conflictTaskUUID` (its error carries `taskUUID` and a
  `context` with `taskType`, `taskUUID`, `deliveryMethod`).
- Runware/runware-python `README.md` (Cancellation): cancel is client-side only, the
  server keeps processing; so there is no cancel task and `cancelled` stays empty.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import struct
import time
import uuid
import wave
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.harness import FakeBase, ScriptedFailure, WebhookCall, sample_mp4, serving

Outcome = Literal["succeeded", "failed", "rejected", "never"]

#: taskType → (output kind used in field names, file suffix), per the inference API pages
_INFERENCE: dict[str, tuple[str, str]] = {
    "videoInference": ("video", ".mp4"),
    "imageInference": ("image", ".png"),
    "audioInference": ("audio", ".wav"),
}
_DOCS = "https://runware.ai/docs/en"
_DOC_PAGE = {
    "videoInference": f"{_DOCS}/video-inference/api-reference",
    "imageInference": f"{_DOCS}/image-inference/api-reference",
    "audioInference": f"{_DOCS}/audio-inference/api-reference",
    "getResponse": f"{_DOCS}/utilities/task-responses",
}
#: error codes the fake gives scripted failures (fail_next), by HTTP status
_FAILURE_CODES = {
    429: ("rateLimitExceeded", "Too many requests. Slow down and try again later."),
    500: ("internalServerError", "An internal error occurred. Try again later."),
    502: ("providerBadGateway", "The upstream provider answered with an invalid response."),
    503: ("serviceUnavailable", "The service is temporarily unavailable. Try again later."),
    504: ("timeoutProvider", "The request timed out. Try again later."),
}


@dataclass
class Plan:
    """How the tasks of one model behave (`fake.plan(model, ...)`)."""

    queue_s: float = 0.0
    run_s: float = 0.6
    outcome: Outcome = "succeeded"
    #: message of the error (failed / rejected)
    error: str | None = None
    #: `code` of the error; defaults follow the docs' own examples
    error_code: str | None = None
    #: `parameter` of a rejection
    parameter: str | None = None


@dataclass
class _Task:
    body: dict[str, Any]
    task_type: str
    task_uuid: str
    plan: Plan
    started: float  #: time.monotonic() at acceptance
    results: list[dict[str, Any]]

    @property
    def due(self) -> float:
        return self.started + self.plan.queue_s + self.plan.run_s


class _Refusal(Exception):
    """One task of the array is refused: an item of `errors` and the HTTP status."""

    def __init__(self, status: int, item: dict[str, Any]) -> None:
        super().__init__(item.get("message"))
        self.status = status
        self.item = item


@dataclass
class FakeRunware(FakeBase):
    """Runware's REST API: `POST /v1` with an array of tasks; see the module docstring."""

    #: the one valid API key
    key: str = "rw-test-key"
    #: each inference task accepted, as received (the task object, not the whole array)
    submissions: list[dict[str, Any]] = field(default_factory=list)
    #: every inference task received past authentication: accepted, rejected or refused
    #: as a duplicate taskUUID, so tests can assert that nothing was submitted twice
    submission_attempts: list[dict[str, Any]] = field(default_factory=list)
    #: taskUUIDs refused with `conflictTaskUUID` (a second submission of the same UUID)
    conflicts: list[str] = field(default_factory=list)
    #: always empty: Runware has no cancel (client-side only, runware-python README)
    cancelled: list[str] = field(default_factory=list)
    #: taskUUID → time.time() when the task reached success / error at the provider
    completed_at: dict[str, float] = field(default_factory=dict)
    plans: dict[str, Plan] = field(default_factory=dict)
    tasks: dict[str, _Task] = field(default_factory=dict)
    #: webhook delivery tries per item (first try + retries); 1 disables retries
    webhook_attempts: int = 5
    #: per-try timeout of a webhook POST ("respond within ~5 s", runware-skills)
    webhook_timeout_s: float = 5.0
    #: HTTP status of a getResponse whose task failed (undocumented; see the report)
    failed_poll_status: int = 200
    #: how long a `deliveryMethod: "sync"` submission is held open before answering
    sync_timeout_s: float = 30.0
    _background: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    # ------------------------------------------------------------------ set-up

    @property
    def api_url(self) -> str:
        """What genwire's `GENWIRE_RUNWARE_API_URL` should be set to."""
        return f"{self.root_url}/v1"

    def plan(
        self,
        model: str,
        queue_s: float = 0.0,
        run_s: float = 0.6,
        outcome: Outcome = "succeeded",
        error: str | None = None,
        error_code: str | None = None,
        parameter: str | None = None,
    ) -> None:
        """Script the tasks whose `model` (an AIR id such as "klingai:5@3") is `model`."""
        self.plans[model] = Plan(queue_s, run_s, outcome, error, error_code, parameter)

    def fail_next(self, count: int, status: int, retry_after: float | None = None) -> None:
        """As the harness's, with the answer in Runware's `errors` shape (docs "Errors")."""
        code, message = _FAILURE_CODES.get(status, ("httpError", f"HTTP {status}"))
        body = {"errors": [{"code": code, "message": message}]}
        self.failures.extend(ScriptedFailure(status, retry_after, body) for _ in range(count))

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1", self.handle, methods=["POST"]),
                Route("/v1/", self.handle, methods=["POST"]),
                Route("/files/{name}", self.serve_file, methods=["GET"]),
            ]
        )

    # ------------------------------------------------------------------ the API

    async def handle(self, request: Request) -> Response:
        """`POST /v1`: authenticate, then run each task of the array (docs "Authentication")."""
        failure = self.take_failure()
        if failure is not None:
            return failure
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _errors(400, [_error("invalidPayload", "The body is not valid JSON.")])
        if not isinstance(body, list) or not all(isinstance(t, dict) for t in body):
            return _errors(
                400,
                [_error("invalidPayload", "The body must be a JSON array of task objects.")],
            )
        tasks: list[dict[str, Any]] = body
        if tasks and tasks[0].get("taskType") == "authentication":
            given: str | None = tasks[0].get("apiKey") or None
            tasks = tasks[1:]
        else:
            header = request.headers.get("authorization", "")
            given = None
            if header.startswith("Bearer "):
                given = header[len("Bearer ") :].strip() or None
        if given is None:
            return _errors(401, [_auth_error("missingApiKey", "Missing API key.")])
        if given != self.key:
            return _errors(
                401,
                [
                    _auth_error(
                        "invalidApiKey", "Invalid API key: create one at https://my.runware.ai"
                    )
                ],
            )

        data: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        statuses: list[int] = []
        for task in tasks:
            try:
                data.extend(await self._run_task(task))
            except _Refusal as refusal:
                errors.append(refusal.item)
                statuses.append(refusal.status)
        if errors and not data:
            return _errors(statuses[0], errors)
        answer: dict[str, Any] = {"data": data}
        if errors:
            answer["errors"] = errors
        return JSONResponse(answer)

    async def _run_task(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        task_type = task.get("taskType")
        if task_type in _INFERENCE:
            return await self._submit(task)
        if task_type == "getResponse":
            return self._get_response(task)
        if task_type == "ping":
            return [{"taskType": "ping", "pong": True}]
        raise _Refusal(
            400,
            _error(
                "unsupportedTaskType",
                f"The taskType {task_type!r} is not supported.",
                parameter="taskType",
                task_type=task_type,
                task_uuid=task.get("taskUUID"),
            ),
        )

    async def _submit(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        """An inference task: acknowledged at once with `{taskType, taskUUID}` (async)."""
        self.submission_attempts.append(task)
        task_type: str = task["taskType"]
        task_uuid = _task_uuid(task, task_type)
        if task_uuid in self.tasks:
            # Runware/sdk-python base.py handles this code from the server.
            self.conflicts.append(task_uuid)
            refused = _error(
                "conflictTaskUUID",
                f"The taskUUID {task_uuid} was already used by another task. "
                "Send a new UUID for each task.",
                parameter="taskUUID",
                task_type=task_type,
                task_uuid=task_uuid,
            )
            refused["context"] = {
                "taskType": self.tasks[task_uuid].task_type,
                "taskUUID": task_uuid,
                "deliveryMethod": self.tasks[task_uuid].body.get("deliveryMethod", "async"),
            }
            raise _Refusal(400, refused)
        model = task.get("model")
        if not isinstance(model, str) or not model:
            raise _Refusal(
                400,
                _error(
                    "missingModel",
                    "Missing the model parameter: give the AIR identifier of a model.",
                    parameter="model",
                    task_type=task_type,
                    task_uuid=task_uuid,
                ),
            )
        delivery = task.get("deliveryMethod", "async")
        if delivery not in ("async", "sync"):
            raise _Refusal(
                400,
                _error(
                    "invalidDeliveryMethod",
                    "Invalid value for deliveryMethod: use 'async' or 'sync'.",
                    parameter="deliveryMethod",
                    task_type=task_type,
                    task_uuid=task_uuid,
                ),
            )
        webhook_url = task.get("webhookURL")
        if webhook_url is not None and not (
            isinstance(webhook_url, str) and webhook_url.startswith(("http://", "https://"))
        ):
            raise _Refusal(
                400,
                _error(
                    "invalidWebhookURL",
                    "Invalid value for webhookURL: it must be an http(s) URL.",
                    parameter="webhookURL",
                    task_type=task_type,
                    task_uuid=task_uuid,
                ),
            )
        plan = self.plans.get(model, Plan())
        if plan.outcome == "rejected":
            # The docs' own example of a refused video task (video inference, Response).
            parameter = plan.parameter or "duration"
            refused = _error(
                plan.error_code or "unsupportedDuration",
                plan.error
                or "Invalid value for duration parameter. The model does not support it.",
                parameter=parameter,
                task_type=task_type,
                task_uuid=task_uuid,
            )
            refused["documentation"] = f"{_DOC_PAGE[task_type]}#request-{parameter.lower()}"
            raise _Refusal(400, refused)

        accepted = _Task(
            body=task,
            task_type=task_type,
            task_uuid=task_uuid,
            plan=plan,
            started=time.monotonic(),
            results=self._make_results(task, task_type, task_uuid),
        )
        self.tasks[task_uuid] = accepted
        self.submissions.append(task)
        if plan.outcome != "never":
            self.schedule(plan.queue_s + plan.run_s, lambda: self._finish(accepted))
        if delivery == "sync":
            # Held open until done; past the timeout, answered with the running state.
            left = accepted.due - time.monotonic() if plan.outcome != "never" else float("inf")
            await asyncio.sleep(max(min(left, self.sync_timeout_s), 0.0) + 0.001)
            return self._poll_items(accepted)
        return [{"taskType": task_type, "taskUUID": task_uuid}]

    def _get_response(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        """`getResponse`: the current state of each generation (docs "Task Responses")."""
        task_uuid = _task_uuid(task, "getResponse")
        known = self.tasks.get(task_uuid)
        if known is None:
            # Undocumented; the code is the one runware-python's errors.py files as "notFound".
            raise _Refusal(
                404,
                _error(
                    "taskFailedOrNotFound",
                    f"No task found with taskUUID {task_uuid}.",
                    parameter="taskUUID",
                    task_type="getResponse",
                    task_uuid=task_uuid,
                ),
            )
        return self._poll_items(known)

    # ------------------------------------------------------------------ task state

    def _state(self, task: _Task) -> Literal["processing", "success", "error"]:
        """Computed from the clock on every look, so no request can see a stale state."""
        if task.plan.outcome == "never" or time.monotonic() < task.due:
            return "processing"
        # When it was due, in wall time: a poll may look long after the task ended.
        self.completed_at.setdefault(task.task_uuid, time.time() - (time.monotonic() - task.due))
        return "success" if task.plan.outcome == "succeeded" else "error"

    def _poll_items(self, task: _Task) -> list[dict[str, Any]]:
        state = self._state(task)
        if state == "success":
            return [dict(result) for result in task.results]
        if state == "error":
            raise _Refusal(self.failed_poll_status, self._error_item(task))
        return [
            {"taskType": task.task_type, "taskUUID": task.task_uuid, "status": "processing"}
            for _ in task.results
        ]

    def _error_item(self, task: _Task) -> dict[str, Any]:
        """A failed generation, as in the `Error` example of the inference pages."""
        return {
            "code": task.plan.error_code or "timeoutProvider",
            "status": "error",
            "message": task.plan.error
            or "The external provider did not answer in time; the task was stopped.",
            "documentation": _DOC_PAGE[task.task_type],
            "taskType": task.task_type,
            "taskUUID": task.task_uuid,
        }

    def _make_results(
        self, task: dict[str, Any], task_type: str, task_uuid: str
    ) -> list[dict[str, Any]]:
        kind, suffix = _INFERENCE[task_type]
        count = task.get("numberResults", 1)
        count = count if isinstance(count, int) and 1 <= count <= 20 else 1
        seed = task.get("seed")
        results: list[dict[str, Any]] = []
        for index in range(count):
            output_uuid = str(uuid.uuid4())
            name = output_uuid + suffix
            self.files[name] = _sample(suffix)
            result: dict[str, Any] = {
                "taskType": task_type,
                "taskUUID": task_uuid,
                "status": "success",
                f"{kind}UUID": output_uuid,
                f"{kind}URL": f"{self.files_url}/{name}",
            }
            if kind != "audio":
                result["seed"] = (
                    seed + index if isinstance(seed, int) else random.randrange(1, 2**31)
                )
            if task.get("includeCost") is True:
                result["cost"] = 0.18 if kind == "video" else 0.0013
            results.append(result)
        return results

    def _finish(self, task: _Task) -> None:
        """Timer at the due time: note completion and send the webhook(s), if asked."""
        state = self._state(task)
        if state == "processing":  # the timer woke a hair early: look again at the due time
            wait = max(task.due - time.monotonic(), 0.0) + 0.001
            self.schedule(wait, lambda: self._finish(task))
            return
        url = task.body.get("webhookURL")
        if not isinstance(url, str) or not self.send_webhooks:
            return
        items = task.results if state == "success" else [self._error_item(task)]
        for item in items:
            body = json.dumps(item).encode()
            job = asyncio.get_running_loop().create_task(self._deliver_with_retries(url, body))
            self._background.add(job)
            job.add_done_callback(self._background.discard)

    async def _deliver_with_retries(self, url: str, body: bytes) -> None:
        """One item's webhook: retried on a non-2xx or no answer, 250 ms doubling to 8 s."""
        headers = {"content-type": "application/json"}
        delay = 0.25
        for attempt in range(max(1, self.webhook_attempts)):
            status: int | None = None
            try:
                async with httpx.AsyncClient(timeout=self.webhook_timeout_s) as client:
                    answer = await client.post(url, content=body, headers=headers)
                    status = answer.status_code
            except httpx.HTTPError:
                status = None
            self.webhook_calls.append(WebhookCall(url, status, body, dict(headers)))
            if status is not None and 200 <= status < 300:
                return
            if attempt + 1 < self.webhook_attempts:
                await asyncio.sleep(min(delay, 8.0) * random.uniform(0.8, 1.2))
                delay *= 2


def _task_uuid(task: dict[str, Any], task_type: str) -> str:
    """The client-chosen taskUUID; any UUID parses (Runware accepts v7 ones in practice)."""
    value = task.get("taskUUID")
    if not isinstance(value, str) or not value:
        raise _Refusal(
            400,
            _error(
                "missingTaskUUID",
                "Missing the taskUUID parameter: send a UUID v4 string.",
                parameter="taskUUID",
                task_type=task_type,
            ),
        )
    try:
        uuid.UUID(value)
    except ValueError:
        raise _Refusal(
            400,
            _error(
                "invalidTaskUUID",
                "Invalid value for taskUUID: it must be a UUID v4 string.",
                parameter="taskUUID",
                task_type=task_type,
                task_uuid=value,
            ),
        ) from None
    return value


def _error(
    code: str,
    message: str,
    *,
    parameter: str | None = None,
    task_type: str | None = None,
    task_uuid: str | None = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {"code": code, "message": message}
    if parameter is not None:
        item["parameter"] = parameter
    if task_type is not None:
        item["taskType"] = task_type
    if task_uuid is not None:
        item["taskUUID"] = task_uuid
    return item


def _auth_error(code: str, message: str) -> dict[str, Any]:
    return _error(code, message, parameter="apiKey", task_type="authentication")


def _errors(status: int, items: list[dict[str, Any]]) -> JSONResponse:
    """A refusal: `data` empty (as observed in real answers) and the `errors` array."""
    return JSONResponse({"data": [], "errors": items}, status_code=status)


def _sample(suffix: str) -> bytes:
    if suffix == ".mp4":
        return sample_mp4()
    if suffix == ".png":
        return _tiny_png()
    return _tiny_wav()


def _tiny_png() -> bytes:
    """A valid 1×1 RGB PNG."""

    def chunk(tag: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(tag + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x20\x80\xc0")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def _tiny_wav() -> bytes:
    """A valid WAV: a tenth of a second of 8 kHz mono silence."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 800)
    return buffer.getvalue()


@contextmanager
def run_fake_runware(**knobs: Any) -> Iterator[FakeRunware]:
    """Serve a `FakeRunware(**knobs)`; point genwire at `fake.api_url`."""
    fake = FakeRunware(**knobs)
    sample_mp4()  # make the sample before serving, not inside a request
    with serving(fake, fake.app()):
        yield fake
