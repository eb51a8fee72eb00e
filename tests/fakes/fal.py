"""A fake of fal's queue API (`https://queue.fal.run`), its CDN and its signed webhooks.

Written from fal's published docs and official clients, not from genwire's adapter:

- docs.fal.ai "Asynchronous Inference" / "Queue" pages and the Inference API reference
  (submit, status, result, cancel; 202 while queued or running, 200 once complete);
- docs.fal.ai "Webhooks" page (`fal_webhook` query parameter, body `{request_id,
  gateway_request_id, status: OK|ERROR, payload, error, payload_error}`, Ed25519 signature
  over `request_id \\n user_id \\n timestamp \\n sha256_hex(body)` checked against a JWKS);
- docs.fal.ai "Model Errors" (422 `detail` list of `{loc, msg, type, url, ...}`) and
  "Request Error Types" (flat `{detail, error_type}` plus `X-Fal-Error-Type`);
- `fal-ai/fal`: `projects/fal_client/src/fal_client/client.py` (`AppId.from_endpoint_id`,
  `SyncRequestHandle`, `_parse_status`, `Authorization: Key …`) and
  `projects/fal/src/fal/apps.py` (status 200 means completed; trailing-slash URLs);
- `fal-ai/fal-js`: `libs/client/src/types/common.ts` (`RequestLog`, `Metrics`, queue
  status shapes) and `libs/client/src/queue.ts` (`?logs=1|0`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.harness import FakeBase, sample_mp4, serving

Outcome = Literal["succeeded", "failed", "rejected", "never"]

#: Namespaced apps keep three path segments in their app id (client.py `APP_NAMESPACES`).
APP_NAMESPACES = ("workflows", "comfy")
#: How many progress lines a model prints over its run (tqdm style, as diffusion apps do).
PROGRESS_STEPS = 10


@dataclass
class FalPlan:
    """How requests to one endpoint behave over time."""

    queue_s: float = 0.0
    run_s: float = 0.6
    outcome: Outcome = "succeeded"
    #: the error text of a failed request, or the `msg` of a rejected one (None: a default)
    error: str | None = None
    #: status code of a failed request's result; 5xx gives the flat "request error" shape
    #: `{detail, error_type}`, 4xx gives the "model error" shape (a `detail` list)
    error_status: int = 500
    error_type: str = "runner_server_error"
    #: where a rejected request is refused: "result" (fal's behaviour: the queue accepts it
    #: and the runner's 422 comes back from the result URL and the webhook) or "submit"
    #: (the POST itself answers 422)
    reject_at: Literal["result", "submit"] = "result"
    #: the input field a rejection blames
    reject_field: str = "prompt"
    #: "video", "image", or None to guess from the endpoint id
    output: Literal["video", "image"] | None = None
    #: False: an in-progress cancel is acknowledged but the app runs to completion anyway
    honours_cancel: bool = True
    #: True: the webhook carries `payload: null` and a `payload_error` (docs: payload errors)
    payload_error: bool = False


@dataclass
class FalRequest:
    """One queued request, as the queue keeps it."""

    request_id: str
    endpoint_id: str
    app_id: str
    arguments: Any
    plan: FalPlan
    started: float  #: time.monotonic() at submit
    submitted_wall: float  #: time.time() at submit
    webhook_url: str | None
    cancelled_at: float | None = None
    finished: bool = False
    output: dict[str, Any] | None = None


def app_id_of(endpoint_id: str) -> str:
    """The `owner/alias` (or `namespace/owner/alias`) part of an endpoint id.

    client.py `AppId.from_endpoint_id`: the rest of the id is the endpoint path, used only
    when submitting; status, result and cancel URLs use the app id alone.
    """
    parts = [part for part in endpoint_id.split("/") if part]
    keep = 3 if parts and parts[0] in APP_NAMESPACES else 2
    return "/".join(parts[:keep])


@dataclass
class FakeFal(FakeBase):
    """fal's queue (`queue.fal.run`), CDN (`/files/…`) and webhook JWKS in one server."""

    key: str = "fake-key-id:fake-key-secret"
    #: the account id fal puts in `X-Fal-Webhook-User-Id`
    user_id: str = "fake-user-4d2c"
    #: True: webhooks are signed with a key that is not in the JWKS
    bad_signatures: bool = False
    plans: dict[str, FalPlan] = field(default_factory=dict)
    #: JSON bodies of the accepted submissions, as received
    submissions: list[Any] = field(default_factory=list)
    #: request ids whose cancellation was accepted (202)
    cancelled: list[str] = field(default_factory=list)
    #: request id → time.time() when it reached its terminal state at fal
    completed_at: dict[str, float] = field(default_factory=dict)
    jobs: dict[str, FalRequest] = field(default_factory=dict)
    signing_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    wrong_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    key_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    # -- what genwire is configured with ------------------------------------------------

    @property
    def api_url(self) -> str:
        """The queue root (genwire's `GENWIRE_FAL_QUEUE_URL`, fal's `https://queue.fal.run`)."""
        return self.root_url

    @property
    def jwks_url(self) -> str:
        """Where the webhook public keys are (genwire's `GENWIRE_FAL_JWKS_URL`)."""
        return f"{self.root_url}/.well-known/jwks.json"

    def plan(
        self,
        model: str,
        queue_s: float = 0.0,
        run_s: float = 0.6,
        outcome: Outcome = "succeeded",
        **options: Any,
    ) -> FalPlan:
        """Script the endpoint `model` (a full endpoint id, or its `owner/alias` app id)."""
        plan = FalPlan(queue_s=queue_s, run_s=run_s, outcome=outcome, **options)
        self.plans[model] = plan
        return plan

    def plan_for(self, endpoint_id: str) -> FalPlan:
        return self.plans.get(endpoint_id) or self.plans.get(app_id_of(endpoint_id)) or FalPlan()

    # -- the app ---------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/files/{name}", self.serve_file),
                Route("/.well-known/jwks.json", self.jwks),
                Route("/{path:path}", self.queue_api, methods=["GET", "POST", "PUT"]),
            ]
        )

    async def jwks(self, request: Request) -> Response:
        """The webhook verification keys, as fal serves them (Webhooks page: JWKS of
        Ed25519 keys, `x` the base64url raw public key)."""
        raw = self.signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        return JSONResponse(
            {
                "keys": [
                    {
                        "kty": "OKP",
                        "crv": "Ed25519",
                        "x": x,
                        "kid": self.key_id,
                        "use": "sig",
                        "alg": "EdDSA",
                    }
                ]
            }
        )

    async def queue_api(self, request: Request) -> Response:
        """Dispatch `POST /{endpoint_id}`, `GET …/requests/{id}[/status]`,
        `PUT …/requests/{id}/cancel` (Queue page: "Queue endpoints" table)."""
        failure = self.take_failure()
        if failure is not None:
            return failure
        denied = self.check_auth(request)
        if denied is not None:
            return denied
        segments = [part for part in request.path_params["path"].split("/") if part]
        if "requests" in segments:
            at = segments.index("requests")
            app_id = "/".join(segments[:at])
            rest = segments[at + 1 :]
            if request.method == "GET" and len(rest) == 1:
                return self.result(app_id, rest[0])
            if request.method == "GET" and len(rest) == 2 and rest[1] == "status":
                return self.status(app_id, rest[0], request.query_params.get("logs", ""))
            if request.method == "PUT" and len(rest) == 2 and rest[1] == "cancel":
                return self.cancel(app_id, rest[0])
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        if request.method == "POST" and len(segments) >= 2:
            return await self.submit(request, "/".join(segments))
        return JSONResponse({"detail": "Not Found"}, status_code=404)

    def check_auth(self, request: Request) -> Response | None:
        """`Authorization: Key <key_id>:<key_secret>` (client.py / auth.py); fal answers a
        bad key with 401 `{"detail": "No user found for Key ID and Secret"}`."""
        header = request.headers.get("authorization")
        if header is None:
            detail = "Missing Authorization header"
        else:
            scheme, _, token = header.partition(" ")
            if scheme == "Key" and token == self.key:
                return None
            if scheme != "Key":
                detail = "Invalid authorization scheme, expected 'Key'"
            elif ":" not in token:
                detail = (
                    "Invalid Key Authorization header format. Expected '<key_id>:<key_secret>'."
                )
            else:
                detail = "No user found for Key ID and Secret"
        return JSONResponse({"detail": detail}, status_code=401)

    # -- submit ------------------------------------------------------------------------

    async def submit(self, request: Request, endpoint_id: str) -> Response:
        """`POST {queue}/{endpoint_id}[?fal_webhook=…]`, body = the model arguments.

        Answer (Queue page "Submit a request"; webhooks page adds `gateway_request_id`):
        `{status: IN_QUEUE, request_id, response_url, status_url, cancel_url,
        queue_position, gateway_request_id}`; the URLs use the app id, not the full path.
        """
        body = await request.body()
        try:
            arguments = json.loads(body) if body else {}
        except ValueError:
            return JSONResponse(
                {
                    "detail": [
                        {
                            "loc": ["body"],
                            "msg": "Invalid JSON body",
                            "type": "json_invalid",
                            "url": "https://docs.fal.ai/errors#json_invalid",
                        }
                    ]
                },
                status_code=422,
            )
        plan = self.plan_for(endpoint_id)
        if plan.outcome == "rejected" and plan.reject_at == "submit":
            return JSONResponse(self.rejection_body(plan, arguments), status_code=422)
        request_id = str(uuid.uuid4())
        app_id = app_id_of(endpoint_id)
        job = FalRequest(
            request_id=request_id,
            endpoint_id=endpoint_id,
            app_id=app_id,
            arguments=arguments,
            plan=plan,
            started=time.monotonic(),
            submitted_wall=time.time(),
            webhook_url=request.query_params.get("fal_webhook"),
        )
        self.jobs[request_id] = job
        self.submissions.append(arguments)
        if plan.outcome != "never":
            self.schedule(plan.queue_s + plan.run_s, lambda: self.on_timer(job))
        answer = {
            "status": "IN_QUEUE",
            "request_id": request_id,
            "gateway_request_id": request_id,
            **self.urls(job),
            "queue_position": self.queue_position(job, time.monotonic()),
        }
        return JSONResponse(answer, headers={"x-fal-request-id": request_id})

    def urls(self, job: FalRequest) -> dict[str, str]:
        base = f"{self.root_url}/{job.app_id}/requests/{job.request_id}"
        return {
            "response_url": base,
            "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel",
        }

    # -- time ----------------------------------------------------------------------------

    def state(self, job: FalRequest, now: float) -> str:
        """IN_QUEUE → IN_PROGRESS → COMPLETED, by the time since submit (Queue page
        "Request Lifecycle"); a cancel ends it at once (unless the app ignores it)."""
        if job.cancelled_at is not None:
            return "COMPLETED"
        elapsed = now - job.started
        if elapsed < job.plan.queue_s:
            return "IN_QUEUE"
        if job.plan.outcome == "never" or elapsed < job.plan.queue_s + job.plan.run_s:
            return "IN_PROGRESS"
        return "COMPLETED"

    def queue_position(self, job: FalRequest, now: float) -> int:
        """0-indexed (client.py `Queued`): how many earlier requests still wait."""
        return sum(
            1
            for other in self.jobs.values()
            if other.started < job.started and self.state(other, now) == "IN_QUEUE"
        )

    def ending(self, job: FalRequest) -> str:
        """How a completed request ended: ok, failed, rejected or cancelled."""
        if job.cancelled_at is not None:
            return "cancelled"
        return {"succeeded": "ok", "failed": "failed", "rejected": "rejected"}[job.plan.outcome]

    def on_timer(self, job: FalRequest) -> None:
        """The end-of-run timer: finish the request, or wait on if the loop's timer (uvloop
        rounds to milliseconds) fired a little before the run is over."""
        remaining = job.started + job.plan.queue_s + job.plan.run_s - time.monotonic()
        if job.cancelled_at is None and remaining > 0:
            self.schedule(remaining + 0.002, lambda: self.on_timer(job))
            return
        self.finish(job)

    def finish(self, job: FalRequest) -> None:
        """The request reached its terminal state: note when, and send its webhook once."""
        if job.finished or self.state(job, time.monotonic()) != "COMPLETED":
            return
        job.finished = True
        if job.cancelled_at is not None:
            ended = job.submitted_wall + (job.cancelled_at - job.started)
        else:
            ended = job.submitted_wall + job.plan.queue_s + job.plan.run_s
        self.completed_at.setdefault(job.request_id, min(ended, time.time()))
        if job.webhook_url:
            self.send_webhook(job)

    # -- status --------------------------------------------------------------------------

    def find(self, app_id: str, request_id: str) -> FalRequest | None:
        job = self.jobs.get(request_id)
        if job is None or job.app_id != app_id:
            return None
        return job

    def status(self, app_id: str, request_id: str, logs: str) -> Response:
        """`GET {queue}/{app_id}/requests/{id}/status[?logs=1]`.

        202 while IN_QUEUE (`queue_position`) or IN_PROGRESS, 200 once COMPLETED (Inference
        API reference; fal/apps.py treats 200 as completed). `logs` is a list with `?logs=1`
        (fal-js sends 1/0, fal_client true/false) and null otherwise; a completed request
        carries `metrics.inference_time`, and `error`/`error_type` when it failed
        (client.py `Completed`).
        """
        job = self.find(app_id, request_id)
        if job is None:
            return JSONResponse({"detail": "Request not found"}, status_code=404)
        now = time.monotonic()
        state = self.state(job, now)
        if state == "COMPLETED":
            self.finish(job)
        body: dict[str, Any] = {"status": state, "request_id": request_id, **self.urls(job)}
        want_logs = logs.lower() in ("1", "true", "yes")
        if state == "IN_QUEUE":
            body["queue_position"] = self.queue_position(job, now)
        else:
            body["logs"] = self.logs(job, now) if want_logs else None
        if state == "COMPLETED":
            ran = self.run_time(job)
            body["metrics"] = {"inference_time": round(ran, 3) if ran > 0 else None}
            ending = self.ending(job)
            if ending != "ok":
                error, error_type = self.status_error(job, ending)
                body["error"] = error
                body["error_type"] = error_type
        return JSONResponse(
            body,
            status_code=200 if state == "COMPLETED" else 202,
            headers={"x-fal-request-id": request_id},
        )

    def run_time(self, job: FalRequest) -> float:
        end = (
            job.cancelled_at
            if job.cancelled_at is not None
            else job.started + job.plan.queue_s + job.plan.run_s
        )
        return max(0.0, end - (job.started + job.plan.queue_s))

    def status_error(self, job: FalRequest, ending: str) -> tuple[str, str | None]:
        if ending == "cancelled":
            return "Request cancelled by the user", "client_cancelled"
        if ending == "rejected":
            return "Invalid status code: 422", None
        return failure_text(job.plan), job.plan.error_type

    def logs(self, job: FalRequest, now: float) -> list[dict[str, str]]:
        """What the app printed so far: a start line, tqdm progress bars (as diffusion apps
        print to stderr), and a last line (`RequestLog` in fal-js types/common.ts)."""
        run_start = job.started + job.plan.queue_s
        if now < run_start:
            return []
        state = self.state(job, now)
        until = now if state != "COMPLETED" else run_start + self.run_time(job)
        if job.plan.run_s <= 0 or (state == "COMPLETED" and job.cancelled_at is None):
            fraction = 1.0
        else:
            fraction = min(1.0, (until - run_start) / job.plan.run_s)

        def stamp(monotonic: float) -> str:
            wall = job.submitted_wall + (monotonic - job.started)
            return datetime.fromtimestamp(wall, tz=UTC).isoformat()

        lines = [
            {
                "message": f"Starting inference for request {job.request_id}",
                "level": "INFO",
                "source": "USER",
                "timestamp": stamp(run_start),
            }
        ]
        done = int(fraction * PROGRESS_STEPS)
        if job.plan.outcome == "never":
            done = min(done, PROGRESS_STEPS - 1)
        per_step = job.plan.run_s / PROGRESS_STEPS
        for step in range(1, done + 1):
            percent = step * 100 // PROGRESS_STEPS
            bar = "█" * step + " " * (PROGRESS_STEPS - step)
            elapsed = step * per_step
            lines.append(
                {
                    "message": f"{percent:3d}%|{bar}| {step}/{PROGRESS_STEPS} "
                    f"[00:{elapsed:05.2f}<00:{per_step * (PROGRESS_STEPS - step):05.2f}, "
                    f"{1 / per_step if per_step else 0:.2f}it/s]",
                    "level": "STDERR",
                    "source": "USER",
                    "timestamp": stamp(run_start + elapsed),
                }
            )
        if state == "COMPLETED":
            ending = self.ending(job)
            if ending == "ok":
                message, level = "Generation finished, uploading output", "INFO"
            elif ending == "cancelled":
                message, level = "Request cancelled", "WARN"
            else:
                message, level = self.status_error(job, ending)[0], "ERROR"
            lines.append(
                {"message": message, "level": level, "source": "USER", "timestamp": stamp(until)}
            )
        return lines

    # -- result ----------------------------------------------------------------------------

    def result(self, app_id: str, request_id: str) -> Response:
        """`GET {queue}/{app_id}/requests/{id}`: the model output once completed.

        A failed request answers with the runner's status: 5xx `{detail, error_type}` with
        `X-Fal-Error-Type` (Request Error Types page), 4xx/422 a `detail` list (Model Errors
        page); an unfinished one 400.
        """
        job = self.find(app_id, request_id)
        if job is None:
            return JSONResponse({"detail": "Request not found"}, status_code=404)
        if self.state(job, time.monotonic()) != "COMPLETED":
            return JSONResponse({"detail": "Request is still in progress"}, status_code=400)
        self.finish(job)
        headers = {"x-fal-request-id": request_id}
        status_code, body = self.outcome_body(job)
        if "error_type" in body:
            headers["x-fal-error-type"] = str(body["error_type"])
        return JSONResponse(body, status_code=status_code, headers=headers)

    def outcome_body(self, job: FalRequest) -> tuple[int, dict[str, Any]]:
        """The runner's answer for a completed request: (status code, JSON body)."""
        ending = self.ending(job)
        if ending == "ok":
            return 200, self.output_of(job)
        if ending == "cancelled":
            return 499, {
                "detail": "Request cancelled by the user",
                "error_type": "client_cancelled",
            }
        if ending == "rejected":
            return 422, self.rejection_body(job.plan, job.arguments)
        if job.plan.error_status < 500:
            detail = {
                "loc": ["body"],
                "msg": failure_text(job.plan),
                "type": job.plan.error_type,
                "url": f"https://docs.fal.ai/errors#{job.plan.error_type}",
            }
            return job.plan.error_status, {"detail": [detail]}
        return job.plan.error_status, {
            "detail": failure_text(job.plan),
            "error_type": job.plan.error_type,
        }

    def rejection_body(self, plan: FalPlan, arguments: Any) -> dict[str, Any]:
        """A pydantic-style 422 (Model Errors page: `detail` list of `{loc, msg, type, url,
        ctx?, input?}`)."""
        given = arguments.get(plan.reject_field) if isinstance(arguments, dict) else None
        kind = "value_error" if plan.error else "missing"
        return {
            "detail": [
                {
                    "loc": ["body", plan.reject_field],
                    "msg": plan.error or "Field required",
                    "type": kind,
                    "url": f"https://docs.fal.ai/errors#{kind}",
                    "input": given if plan.error else arguments,
                }
            ]
        }

    def output_of(self, job: FalRequest) -> dict[str, Any]:
        """The model output, its files on the fake CDN: a video model's `{video: {url,
        content_type, file_name, file_size}}` or an image model's `{images: [...], seed}`
        (Webhooks page example)."""
        if job.output is not None:
            return job.output
        kind = job.plan.output or guess_output(job.endpoint_id)
        if kind == "image":
            name = f"{job.request_id}.png"
            self.files[name] = sample_png()
            job.output = {
                "images": [
                    {
                        "url": f"{self.files_url}/{name}",
                        "content_type": "image/png",
                        "file_name": name,
                        "file_size": len(self.files[name]),
                        "width": 64,
                        "height": 64,
                    }
                ],
                "seed": int(job.request_id[:8], 16),
                "has_nsfw_concepts": [False],
                "prompt": job.arguments.get("prompt") if isinstance(job.arguments, dict) else None,
            }
        else:
            name = f"{job.request_id}.mp4"
            self.files[name] = sample_mp4()
            job.output = {
                "video": {
                    "url": f"{self.files_url}/{name}",
                    "content_type": "video/mp4",
                    "file_name": name,
                    "file_size": len(self.files[name]),
                }
            }
        return job.output

    # -- cancel ------------------------------------------------------------------------

    def cancel(self, app_id: str, request_id: str) -> Response:
        """`PUT {queue}/{app_id}/requests/{id}/cancel` (Queue page "Cancel a request"):
        202 `{"status": "CANCELLATION_REQUESTED"}` while queued or running, 400
        `{"status": "ALREADY_COMPLETED"}` once done, 404 `{"status": "NOT_FOUND"}`."""
        job = self.find(app_id, request_id)
        if job is None:
            return JSONResponse({"status": "NOT_FOUND"}, status_code=404)
        now = time.monotonic()
        state = self.state(job, now)
        if state == "COMPLETED":
            self.finish(job)
            return JSONResponse({"status": "ALREADY_COMPLETED"}, status_code=400)
        self.cancelled.append(request_id)
        if state == "IN_QUEUE" or job.plan.honours_cancel:
            job.cancelled_at = now
            self.finish(job)
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)

    # -- webhooks ------------------------------------------------------------------------

    def send_webhook(self, job: FalRequest) -> None:
        """POST the outcome to `fal_webhook` (Webhooks page): `status` OK with the output as
        `payload`, or ERROR with `error: "Invalid status code: N"` and the error body as
        `payload`; signed with Ed25519 over the four newline-joined fields."""
        status_code, payload = self.outcome_body(job)
        body: dict[str, Any] = {
            "request_id": job.request_id,
            "gateway_request_id": job.request_id,
            "status": "OK" if status_code == 200 else "ERROR",
            "payload": payload,
            "error": None if status_code == 200 else f"Invalid status code: {status_code}",
        }
        if job.plan.payload_error:
            body["payload"] = None
            body["payload_error"] = "Response payload is not JSON serializable"
        # fal's bodies are Python's json.dumps with sorted keys (`{"error": null, "gateway…`)
        raw = json.dumps(body, sort_keys=True).encode()
        assert job.webhook_url is not None
        self.post_webhook(job.webhook_url, raw, self.webhook_headers(job.request_id, raw))

    def webhook_headers(self, request_id: str, raw: bytes) -> dict[str, str]:
        timestamp = str(int(time.time()))
        message = "\n".join(
            [request_id, self.user_id, timestamp, hashlib.sha256(raw).hexdigest()]
        ).encode()
        signer = self.wrong_key if self.bad_signatures else self.signing_key
        return {
            "X-Fal-Webhook-Request-Id": request_id,
            "X-Fal-Webhook-User-Id": self.user_id,
            "X-Fal-Webhook-Timestamp": timestamp,
            "X-Fal-Webhook-Signature": signer.sign(message).hex(),
        }


def failure_text(plan: FalPlan) -> str:
    return plan.error or "Video generation failed: the model returned no frames"


def guess_output(endpoint_id: str) -> Literal["video", "image"]:
    """Video unless the endpoint id names an image model (`text-to-image`, `flux/…`)."""
    lowered = endpoint_id.lower()
    if "video" in lowered:
        return "video"
    if "image" in lowered or "flux" in lowered or "sdxl" in lowered:
        return "image"
    return "video"


@cache
def sample_png() -> bytes:
    """A real 64×64 RGB PNG (a gradient), built with zlib."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(
        b"\x00" + bytes(value for x in range(64) for value in (x * 4, y * 4, 128))
        for y in range(64)
    )
    header = struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@contextmanager
def run_fake_fal(**knobs: Any) -> Iterator[FakeFal]:
    """Start a `FakeFal` (knobs: `key`, `user_id`, `bad_signatures`, `send_webhooks`);
    configure genwire with `fake.api_url` and `fake.jwks_url`."""
    fake = FakeFal(**knobs)
    with serving(fake, fake.app()):
        yield fake
