"""A fake of Replicate's predictions API (api.replicate.com/v1), written from Replicate's
HTTP API reference and topic pages (predictions, webhooks, verify-webhook, rate-limits,
the changelog) and the official client `replicate/replicate-python` (`prediction.py`,
`model.py`, `client.py`, `webhook.py`, `exceptions.py`, `account.py` and its recorded
cassettes under `tests/cassettes/`).

Each prediction follows a plan chosen per model (`fake.plan(...)`): it is `starting` for
`queue_s`, `processing` for `run_s` (its `logs` growing with tqdm progress lines), then
`succeeded` (output: URL(s) of MP4s the fake serves at `/files/...`), `failed` (an `error`
text), or never finishes; a `rejected` plan refuses the create with Replicate's 422.
State is computed lazily on each request; timers only fire the webhooks.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import random
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.harness import FakeBase, ScriptedFailure, sample_mp4, serving

Outcome = Literal["succeeded", "failed", "rejected", "never"]

#: The event names `webhook_events_filter` accepts (HTTP reference, predictions.create).
EVENTS = ("start", "output", "logs", "completed")
TERMINAL = frozenset({"succeeded", "failed", "canceled"})
#: Top-level properties of a create body; others are refused since the 2024-05-01
#: changelog entry "Improved validation for API prediction payloads".
BODY_FIELDS = frozenset(
    {"input", "version", "stream", "webhook", "webhook_completed", "webhook_events_filter"}
)

DEFAULT_KEY = "r8_FakeReplicateToken0123456789abcdefABCD"
DEFAULT_SECRET = "whsec_" + base64.b64encode(b"fake-replicate-signing-secret-32").decode()
#: What `bad_signatures` signs with instead: a well-formed secret, just not the account's.
WRONG_SECRET = "whsec_" + base64.b64encode(b"some-other-accounts-secret-32byt").decode()
DEFAULT_ERROR = (
    "CUDA out of memory. Tried to allocate 3.38 GiB. GPU 0 has a total capacity of "
    "79.15 GiB of which 1.02 GiB is free."
)
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_BAR_PARTIALS = " ▏▎▍▌▋▊▉"


@dataclass
class Plan:
    """How predictions of one model behave (see `FakeReplicate.plan`)."""

    queue_s: float = 0.0
    run_s: float = 0.6
    outcome: Outcome = "succeeded"
    error: str = DEFAULT_ERROR
    files: int = 1
    as_list: bool = False
    steps: int = 50
    invalid_fields: list[dict[str, str]] | None = None


@dataclass
class _Prediction:
    id: str
    model: str
    version: str
    input: dict[str, Any]
    plan: Plan
    webhook: str | None
    webhook_completed: str | None
    events: frozenset[str]
    created_wall: float
    created_mono: float
    seed: int
    status: str = "starting"
    started_wall: float | None = None
    completed_wall: float | None = None
    #: monotonic time the prediction stopped (finished or was canceled)
    stopped_mono: float | None = None
    output: Any = None
    output_files: list[str] = field(default_factory=list)
    error: str | None = None
    completed_sent: bool = False

    @property
    def start_mono(self) -> float:
        return self.created_mono + self.plan.queue_s

    @property
    def end_mono(self) -> float:
        return self.start_mono + self.plan.run_s


def _iso(wall: float | None) -> str | None:
    """Replicate's timestamps: RFC 3339 in UTC with microseconds and a `Z`."""
    if wall is None:
        return None
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _new_id() -> str:
    """26 lower-case base32 characters, like `hdwst0bb05rgp0cf0p29mzk2am`."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(26))


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes:02d}:{rest:02d}"


def tqdm_line(done: int, total: int, step_s: float) -> str:
    """One progress line as tqdm prints it (Replicate keeps each redraw as its own line)."""
    if done == 0:
        return f"  0%|{' ' * 10}| 0/{total} [00:00<?, ?it/s]"
    fraction = done / total
    filled = fraction * 10
    whole = int(filled)
    bar = "█" * whole
    if whole < 10:
        bar += _BAR_PARTIALS[int((filled - whole) * 8)] + " " * (9 - whole)
    rate = f"{1 / step_s:.2f}it/s" if step_s < 1 else f"{step_s:.2f}s/it"
    return (
        f"{int(fraction * 100):3d}%|{bar}| {done}/{total} "
        f"[{_clock(done * step_s)}<{_clock((total - done) * step_s)}, {rate}]"
    )


def _problem(status: int, detail: str, title: str | None = None, **extra: Any) -> JSONResponse:
    """Replicate's errors are RFC 7807 problem documents (`exceptions.ReplicateError`), e.g.
    `{"title":"Unauthenticated","detail":"…","status":401}` as `application/problem+json`."""
    body: dict[str, Any] = {"title": title} if title else {}
    body |= {"detail": detail, "status": status, **extra}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def _invalid(fields: list[dict[str, str]]) -> JSONResponse:
    """The 422 Replicate sends for a body or input it refuses: a `detail` listing each
    field, and `invalid_fields` of `{type, field, description}`."""
    detail = "".join(
        f"- {item['field']}: {item['description']}\n"
        if item["field"]
        else f"- {item['description']}\n"
        for item in fields
    )
    return _problem(422, detail, "Input validation failed", invalid_fields=fields)


def _not_found() -> JSONResponse:
    return _problem(404, "The requested resource could not be found.")


def sign(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks signature (verify-webhook page; `webhook.py`): `v1,` + base64 of the
    HMAC-SHA256, keyed by the base64-decoded part of `whsec_…`, over `{id}.{timestamp}.{body}`."""
    key = base64.b64decode(secret.split("_", 1)[1])
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


@dataclass
class FakeReplicate(FakeBase):
    """Replicate's predictions API. Knobs: `key`, `webhook_secret`, `bad_signatures`,
    `strict_events_filter`, `username`, `unknown_models`, plus `plan(...)` per model and the
    harness's `fail_next`, `missing_files` and `send_webhooks`."""

    #: the API token (`Authorization: Bearer <key>`; the older `Token <key>` works too)
    key: str = DEFAULT_KEY
    #: the account's webhook signing secret, as `GET /v1/webhooks/default/secret` returns it
    webhook_secret: str = DEFAULT_SECRET
    #: sign webhooks with another secret, so a receiver's check must refuse them
    bad_signatures: bool = False
    #: False: `start` and `completed` go out whatever the filter says (the 2023-02-10
    #: changelog's reading); True: only the filtered events (the setup-webhook page's)
    strict_events_filter: bool = False
    username: str = "genwire-tests"
    #: "owner/name" of models that do not exist: 404 on the models endpoint, 422 by version
    unknown_models: set[str] = field(default_factory=set)
    plans: dict[str, Plan] = field(default_factory=dict)
    #: version id → "owner/name"
    versions: dict[str, str] = field(default_factory=dict)
    predictions: dict[str, _Prediction] = field(default_factory=dict)
    #: the JSON bodies of accepted creates, as received
    submissions: list[dict[str, Any]] = field(default_factory=list)
    #: the ids of every cancel request for a known prediction (finished ones included)
    cancelled: list[str] = field(default_factory=list)
    #: prediction id → `time.time()` when it reached its terminal state
    completed_at: dict[str, float] = field(default_factory=dict)

    # -- configuration ------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """What genwire's `GENWIRE_REPLICATE_API_URL` should be (real: api.replicate.com/v1)."""
        return f"{self.root_url}/v1"

    def plan(
        self,
        model: str,
        queue_s: float = 0.0,
        run_s: float = 0.6,
        outcome: Outcome = "succeeded",
        *,
        error: str = DEFAULT_ERROR,
        files: int = 1,
        as_list: bool = False,
        steps: int = 50,
        invalid_fields: list[dict[str, str]] | None = None,
    ) -> Plan:
        """How predictions of `model` ("owner/name") go. `files` > 1 or `as_list` makes the
        output a list of URLs instead of one URL string; `invalid_fields` replaces the
        default refusal of a `rejected` plan."""
        plan = Plan(queue_s, run_s, outcome, error, files, as_list, steps, invalid_fields)
        self.plans[model] = plan
        self.version_id(model)
        return plan

    def version_id(self, model: str) -> str:
        """The (64 hex digit) id of `model`'s one version, usable as `version` in
        `POST /v1/predictions`, bare or as "owner/name:<id>"."""
        version = hashlib.sha256(f"fake-replicate:{model}".encode()).hexdigest()
        self.versions[version] = model
        return version

    # -- the app ------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/account", self._account, methods=["GET"]),
                Route("/v1/webhooks/default/secret", self._secret, methods=["GET"]),
                Route(
                    "/v1/models/{owner}/{name}/predictions", self._create_by_model, methods=["POST"]
                ),
                Route("/v1/models/{owner}/{name}", self._model, methods=["GET"]),
                Route(
                    "/v1/models/{owner}/{name}/versions/{version}", self._version, methods=["GET"]
                ),
                Route("/v1/predictions", self._create_by_version, methods=["POST"]),
                Route("/v1/predictions", self._list, methods=["GET"]),
                Route("/v1/predictions/{id}", self._get, methods=["GET"]),
                Route("/v1/predictions/{id}/cancel", self._cancel, methods=["POST"]),
                Route("/files/{name}", self.serve_file, methods=["GET"]),
            ]
        )

    def failure_response(self, failure: ScriptedFailure, headers: dict[str, str]) -> Response:
        """Scripted failures in Replicate's shapes: a 429 carries the rate-limits page's
        body (`{"detail":"Request was throttled. Your rate limit resets in ~Ns."}`)."""
        if failure.body is not None:
            body = failure.body
        elif failure.status == 429:
            wait = math.ceil(failure.retry_after or 1)
            body = {"detail": f"Request was throttled. Your rate limit resets in ~{wait}s."}
        else:
            body = {"detail": f"Scripted failure {failure.status}.", "status": failure.status}
        return JSONResponse(
            body, status_code=failure.status, headers=headers, media_type="application/problem+json"
        )

    def _auth(self, request: Request) -> Response | None:
        """Bearer token (`client.py`); `Token` is the scheme older clients and docs used.
        Replies as recorded in `run__invalid-token.yaml` and replicate-python issue #47."""
        header = request.headers.get("authorization", "")
        if not header.strip():
            return _problem(401, "You did not pass an authentication token", "Unauthenticated")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() not in ("bearer", "token") or token.strip() != self.key:
            return _problem(401, "You did not pass a valid authentication token", "Unauthenticated")
        return None

    def _guard(self, request: Request) -> Response | None:
        return self.take_failure() or self._auth(request)

    async def _account(self, request: Request) -> Response:
        """`GET /v1/account` (`account.py`): the token's user or organization."""
        if refusal := self._guard(request):
            return refusal
        return JSONResponse(
            {
                "type": "user",
                "username": self.username,
                "name": "Genwire Tests",
                "github_url": None,
                "avatar_url": None,
            }
        )

    async def _secret(self, request: Request) -> Response:
        """`GET /v1/webhooks/default/secret` (`webhook.py`): `{"key": "whsec_…"}`."""
        if refusal := self._guard(request):
            return refusal
        return JSONResponse({"key": self.webhook_secret})

    def _version_view(self, model: str, version: str) -> dict[str, Any]:
        """A version (`version.py`): its id and the Cog OpenAPI schema the client reads to
        tell a plain output from an iterator (`run.py`, `_has_output_iterator_array_type`)."""
        plan = self.plans.get(model) or Plan()
        url = {"type": "string", "format": "uri"}
        listed = plan.files > 1 or plan.as_list
        output = {"type": "array", "items": url} if listed else url
        return {
            "id": version,
            "created_at": "2025-01-01T00:00:00.000000Z",
            "cog_version": "0.14.0",
            "openapi_schema": {
                "openapi": "3.0.2",
                "info": {"title": "Cog", "version": "0.1.0"},
                "components": {
                    "schemas": {
                        "Input": {
                            "type": "object",
                            "title": "Input",
                            "required": ["prompt"],
                            "properties": {
                                "prompt": {"type": "string", "title": "Prompt", "x-order": 0}
                            },
                        },
                        "Output": {"title": "Output", **output},
                    }
                },
            },
        }

    async def _model(self, request: Request) -> Response:
        """`GET /v1/models/{owner}/{name}` (`model.py`, `Models.get`), with `latest_version`."""
        if refusal := self._guard(request):
            return refusal
        owner, name = request.path_params["owner"], request.path_params["name"]
        model = f"{owner}/{name}"
        if model in self.unknown_models:
            return _not_found()
        return JSONResponse(
            {
                "url": f"https://replicate.com/{model}",
                "owner": owner,
                "name": name,
                "description": "A fake text-to-video model.",
                "visibility": "public",
                "github_url": None,
                "paper_url": None,
                "license_url": None,
                "run_count": len([p for p in self.predictions.values() if p.model == model]),
                "cover_image_url": None,
                "default_example": None,
                "latest_version": self._version_view(model, self.version_id(model)),
            }
        )

    async def _version(self, request: Request) -> Response:
        """`GET /v1/models/{owner}/{name}/versions/{id}` (`version.py`), which `run()` asks
        for when given "owner/name:<id>"."""
        if refusal := self._guard(request):
            return refusal
        model = f"{request.path_params['owner']}/{request.path_params['name']}"
        version = request.path_params["version"]
        if model in self.unknown_models or self.versions.get(version) != model:
            return _not_found()
        return JSONResponse(self._version_view(model, version))

    async def _create_by_model(self, request: Request) -> Response:
        """`POST /v1/models/{owner}/{name}/predictions` (`model.py`): runs the model's
        latest version; an unknown model is a 404 (replicate-javascript issue #347)."""
        if refusal := self._guard(request):
            return refusal
        model = f"{request.path_params['owner']}/{request.path_params['name']}"
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        if refusal := self._check_body(body, needs_version=False):
            return refusal
        if model in self.unknown_models:
            return _not_found()
        return await self._accept(request, body, model, "hidden")

    async def _create_by_version(self, request: Request) -> Response:
        """`POST /v1/predictions` with `version`: a bare version id, "owner/name:<id>", or
        (official models) "owner/name". An unknown version is the 422 of issue #47."""
        if refusal := self._guard(request):
            return refusal
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        if refusal := self._check_body(body, needs_version=True):
            return refusal
        reference = body["version"]
        if ":" in reference:
            model, version = reference.split(":", 1)
            if "/" in model and version:
                self.versions.setdefault(version, model)
        elif "/" in reference:
            model, version = reference, "hidden"
        else:
            model, version = self.versions.get(reference, ""), reference
        if not model or model in self.unknown_models:
            return _problem(
                422,
                "The specified version does not exist (or perhaps you don't have permission to use it?)",
                "Invalid version or not permitted",
            )
        return await self._accept(request, body, model, version)

    async def _body(self, request: Request) -> dict[str, Any] | Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _problem(400, "The request body is not valid JSON.", "Bad request")
        if not isinstance(body, dict):
            return _invalid(
                [
                    {
                        "type": "invalid_type",
                        "field": "",
                        "description": "Invalid type. Expected: object",
                    }
                ]
            )
        return body

    def _check_body(self, body: dict[str, Any], *, needs_version: bool) -> Response | None:
        """Top-level validation of a create body (changelog 2024-05-01; the field types
        from the HTTP reference of predictions.create)."""
        problems = [
            {
                "type": "additional_property_not_allowed",
                "field": "",
                "description": f"Additional property {name} is not allowed",
            }
            for name in body
            if name not in BODY_FIELDS
        ]
        if "input" not in body:
            problems.append({"type": "required", "field": "", "description": "input is required"})
        elif not isinstance(body["input"], dict):
            problems.append(
                {
                    "type": "invalid_type",
                    "field": "input",
                    "description": "Invalid type. Expected: object",
                }
            )
        if needs_version and not isinstance(body.get("version"), str):
            problems.append({"type": "required", "field": "", "description": "version is required"})
        for name in ("webhook", "webhook_completed"):
            if name in body and not isinstance(body[name], str):
                problems.append(
                    {
                        "type": "invalid_type",
                        "field": name,
                        "description": "Invalid type. Expected: string",
                    }
                )
        events = body.get("webhook_events_filter")
        if events is not None:
            if not isinstance(events, list):
                problems.append(
                    {
                        "type": "invalid_type",
                        "field": "webhook_events_filter",
                        "description": "Invalid type. Expected: array",
                    }
                )
            else:
                allowed = ", ".join(f'"{event}"' for event in EVENTS)
                problems.extend(
                    {
                        "type": "enum",
                        "field": f"webhook_events_filter.{index}",
                        "description": f"webhook_events_filter.{index} must be one of the following: {allowed}",
                    }
                    for index, event in enumerate(events)
                    if event not in EVENTS
                )
        return _invalid(problems) if problems else None

    async def _accept(
        self, request: Request, body: dict[str, Any], model: str, version: str
    ) -> Response:
        plan = self.plans.get(model) or Plan()
        if plan.outcome == "rejected":
            return _invalid(
                plan.invalid_fields
                or [
                    {
                        "type": "required",
                        "field": "input",
                        "description": "prompt is required",
                    }
                ]
            )
        prediction = _Prediction(
            id=_new_id(),
            model=model,
            version=version,
            input=body["input"],
            plan=plan,
            webhook=body.get("webhook"),
            webhook_completed=body.get("webhook_completed"),
            events=self._events(body.get("webhook_events_filter")),
            created_wall=time.time(),
            created_mono=time.monotonic(),
            seed=random.randrange(1, 2**16),
        )
        self.predictions[prediction.id] = prediction
        self.submissions.append(body)
        self._send(prediction, "start")
        if prediction.webhook and "logs" in prediction.events:
            self.schedule(plan.queue_s + 0.5, lambda: self._logs_tick(prediction))
        if plan.outcome != "never":
            self.schedule(plan.queue_s + plan.run_s, lambda: self._on_end(prediction))
        headers = {}
        prefer = request.headers.get("prefer", "").strip()
        if prefer.startswith("wait"):
            await self._hold(prediction, prefer)
            headers["Preference-Applied"] = prefer
        return JSONResponse(self._created_view(prediction), status_code=201, headers=headers)

    def _events(self, requested: list[str] | None) -> frozenset[str]:
        """Which webhook events a prediction gets. Without a filter: new output and
        completion (HTTP reference, webhook_events_filter)."""
        chosen = set(requested) if requested is not None else {"output", "completed"}
        if not self.strict_events_filter:
            chosen |= {"start", "completed"}
        return frozenset(chosen)

    async def _hold(self, prediction: _Prediction, prefer: str) -> None:
        """`Prefer: wait[=N]` (`prediction.py`, `_create_prediction_headers`): keep the
        request open up to N seconds (60 at most) for the prediction to finish."""
        _, _, seconds = prefer.partition("=")
        try:
            limit = min(max(int(seconds), 1), 60) if seconds else 60
        except ValueError:
            limit = 60
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            self._advance(prediction, time.monotonic())
            if prediction.status in TERMINAL:
                return
            await asyncio.sleep(0.02)

    async def _get(self, request: Request) -> Response:
        """`GET /v1/predictions/{id}` (`prediction.py`, `Predictions.get`)."""
        if refusal := self._guard(request):
            return refusal
        prediction = self.predictions.get(request.path_params["id"])
        if prediction is None:
            return _not_found()
        self._advance(prediction, time.monotonic())
        return JSONResponse(self._view(prediction))

    async def _list(self, request: Request) -> Response:
        """`GET /v1/predictions` (`Predictions.list`): one page, newest first."""
        if refusal := self._guard(request):
            return refusal
        now = time.monotonic()
        results = []
        for prediction in reversed(list(self.predictions.values())):
            self._advance(prediction, now)
            results.append(self._view(prediction))
        return JSONResponse({"next": None, "previous": None, "results": results})

    async def _cancel(self, request: Request) -> Response:
        """`POST /v1/predictions/{id}/cancel`: 200 with the prediction, now `canceled`
        unless it had already finished (`predictions-cancel.yaml`)."""
        if refusal := self._guard(request):
            return refusal
        prediction = self.predictions.get(request.path_params["id"])
        if prediction is None:
            return _not_found()
        self.cancelled.append(prediction.id)
        now = time.monotonic()
        self._advance(prediction, now)
        if prediction.status not in TERMINAL:
            prediction.status = "canceled"
            prediction.stopped_mono = now
            prediction.completed_wall = time.time()
            self.completed_at[prediction.id] = prediction.completed_wall
            self._send_completed(prediction)
        return JSONResponse(self._view(prediction))

    # -- the prediction's life ----------------------------------------------------------

    def _advance(self, prediction: _Prediction, now: float) -> None:
        """Bring `status` up to date: starting → processing → the plan's outcome."""
        if prediction.status in TERMINAL:
            return
        plan = prediction.plan
        if prediction.status == "starting" and now >= prediction.start_mono:
            prediction.status = "processing"
            prediction.started_wall = prediction.created_wall + plan.queue_s
        if prediction.status != "processing" or plan.outcome == "never":
            return
        if now < prediction.end_mono:
            return
        prediction.stopped_mono = prediction.end_mono
        prediction.completed_wall = prediction.created_wall + plan.queue_s + plan.run_s
        if plan.outcome == "succeeded":
            count = max(plan.files, 1)
            names = [
                f"{prediction.id}-output.mp4"
                if count == 1
                else f"{prediction.id}-output-{index}.mp4"
                for index in range(count)
            ]
            for name in names:
                self.files[name] = sample_mp4()
            prediction.output_files = names
            urls = [f"{self.files_url}/{name}" for name in names]
            prediction.output = urls if count > 1 or plan.as_list else urls[0]
        else:
            prediction.error = plan.error
        prediction.status = plan.outcome
        self.completed_at[prediction.id] = prediction.completed_wall

    def _on_end(self, prediction: _Prediction) -> None:
        """Timer at the plan's end: an `output` event (status still `processing`, the
        output set, as Cog sends it), then `completed`."""
        self._advance(prediction, max(time.monotonic(), prediction.end_mono))
        if prediction.completed_sent:
            return
        if prediction.status == "succeeded":
            self._send(
                prediction,
                "output",
                self._view(prediction)
                | {"status": "processing", "completed_at": None, "metrics": {}},
            )
        self._send_completed(prediction)

    def _logs_tick(self, prediction: _Prediction) -> None:
        """`logs` events, at most one every 500 ms (setup-webhook page)."""
        if prediction.completed_sent:
            return
        self._advance(prediction, time.monotonic())
        if prediction.status == "processing":
            self._send(prediction, "logs")
        if prediction.status not in TERMINAL:
            self.schedule(0.5, lambda: self._logs_tick(prediction))

    def _send_completed(self, prediction: _Prediction) -> None:
        prediction.completed_sent = True
        self._send(prediction, "completed")

    def _send(
        self, prediction: _Prediction, event: str, view: dict[str, Any] | None = None
    ) -> None:
        """POST the prediction (the body of `GET /v1/predictions/{id}`; receive-webhook
        page) to its `webhook` for the events it gets, and to `webhook_completed` on
        completion, signed as Standard Webhooks (verify-webhook page)."""
        targets = []
        if prediction.webhook and event in prediction.events:
            targets.append(prediction.webhook)
        if event == "completed" and prediction.webhook_completed:
            targets.append(prediction.webhook_completed)
        if not targets:
            return
        body = json.dumps(view or self._view(prediction)).encode()
        secret = WRONG_SECRET if self.bad_signatures else self.webhook_secret
        for url in targets:
            msg_id = "msg_" + "".join(
                secrets.choice("0123456789ABCDEFGHJKMNPQRSTVWXYZ") for _ in range(27)
            )
            timestamp = str(int(time.time()))
            self.post_webhook(
                url,
                body,
                {
                    "webhook-id": msg_id,
                    "webhook-timestamp": timestamp,
                    "webhook-signature": sign(secret, msg_id, timestamp, body),
                },
            )

    # -- views --------------------------------------------------------------------------

    def _urls(self, prediction: _Prediction) -> dict[str, str]:
        own = f"{self.api_url}/predictions/{prediction.id}"
        return {
            "cancel": f"{own}/cancel",
            "get": own,
            "web": f"https://replicate.com/p/{prediction.id}",
        }

    def _created_view(self, prediction: _Prediction) -> dict[str, Any]:
        """The 201 of a create: no started_at, completed_at or metrics yet (the cassettes
        `predictions-create.yaml`, `test_models_predictions_create_blocking*.yaml`)."""
        view = self._view(prediction)
        for name in ("started_at", "completed_at", "metrics", "source"):
            del view[name]
        return view

    def _view(self, prediction: _Prediction) -> dict[str, Any]:
        """The prediction object (`prediction.py`, `Prediction`; `predictions-get.yaml`)."""
        return {
            "id": prediction.id,
            "model": prediction.model,
            "version": prediction.version,
            "input": prediction.input,
            "logs": self._logs(prediction),
            "output": prediction.output,
            "data_removed": any(name in self.missing_files for name in prediction.output_files),
            "error": prediction.error,
            "source": "api",
            "status": prediction.status,
            "created_at": _iso(prediction.created_wall),
            "started_at": _iso(prediction.started_wall),
            "completed_at": _iso(prediction.completed_wall),
            "urls": self._urls(prediction),
            "metrics": self._metrics(prediction),
        }

    def _metrics(self, prediction: _Prediction) -> dict[str, float]:
        if prediction.status not in TERMINAL or prediction.completed_wall is None:
            return {}
        total = prediction.completed_wall - prediction.created_wall
        predict = (
            prediction.completed_wall - prediction.started_wall
            if prediction.started_wall is not None
            else 0.0
        )
        return {
            "predict_time": round(max(predict, 0.0), 6),
            "total_time": round(max(total, 0.0), 6),
        }

    def _logs(self, prediction: _Prediction) -> str:
        """What the model printed so far: a few lines, then tqdm's progress, one line per
        step as Replicate records each redraw; a traceback when it failed."""
        if prediction.started_wall is None:
            return ""
        plan = prediction.plan
        steps = max(plan.steps, 1)
        now = prediction.stopped_mono if prediction.stopped_mono is not None else time.monotonic()
        elapsed = max(now - prediction.start_mono, 0.0)
        run_s = max(plan.run_s, 1e-6)
        fraction = min(elapsed / run_s, 1.0)
        if plan.outcome == "failed":
            fraction *= 0.6
        done = min(int(fraction * steps), steps if prediction.status == "succeeded" else steps - 1)
        if prediction.status == "succeeded":
            done = steps
        step_s = run_s / steps
        lines = [
            f"Using seed: {prediction.seed}",
            "Loading pipeline components...",
            f"Generating video: {steps} denoising steps",
        ]
        lines += [tqdm_line(index, steps, step_s) for index in range(done + 1)]
        if prediction.status == "succeeded":
            lines.append("Exporting video to /tmp/output.mp4")
        elif prediction.status == "failed":
            lines += [
                "Traceback (most recent call last):",
                '  File "/src/predict.py", line 142, in predict',
                "    frames = self.pipe(**arguments).frames[0]",
                f"torch.OutOfMemoryError: {plan.error}",
            ]
        return "\n".join(lines) + "\n"


@contextmanager
def run_fake_replicate(**knobs: Any) -> Iterator[FakeReplicate]:
    """Serve a `FakeReplicate(**knobs)`; configure genwire with `fake.api_url`."""
    fake = FakeReplicate(**knobs)
    sample_mp4()  # made once, before any request needs it on the server's loop
    with serving(fake, fake.app()):
        yield fake
