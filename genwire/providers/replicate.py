"""Replicate predictions (replicate.com/docs/reference/http): create through the
models API for `owner/name` or the versions API otherwise, get, cancel, Standard
Webhooks signatures. Replicate deletes a prediction's files after an hour."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

from genwire.models import JsonObject
from genwire.providers.base import (
    CallRef,
    Provider,
    RemoteRequest,
    RemoteState,
    RemoteStatus,
    Submitted,
    WebhookRejected,
)
from genwire.providers.http import ProviderGone, ProviderHttp
from genwire.providers.logs import last_line, log_lines, progress_of
from genwire.webhooks.signing import secret_key

#: how far a webhook's timestamp may be from now (Standard Webhooks' tolerance)
WEBHOOK_TOLERANCE_S = 300
_STATES = {
    "starting": RemoteState.QUEUED,
    "processing": RemoteState.RUNNING,
    "succeeded": RemoteState.SUCCEEDED,
    "failed": RemoteState.FAILED,
    "canceled": RemoteState.CANCELLED,
    "aborted": RemoteState.CANCELLED,
}


def prediction_status(prediction: Mapping[str, Any]) -> RemoteStatus:
    state = _STATES.get(str(prediction.get("status")), RemoteState.QUEUED)
    lines = log_lines(prediction.get("logs") or "")
    error = prediction.get("error")
    return RemoteStatus(
        state=state,
        progress=progress_of(lines),
        log_line=last_line(lines),
        result=prediction.get("output") if state is RemoteState.SUCCEEDED else None,
        error=str(error) if error else None,
    )


def create_path(model: str) -> tuple[str, JsonObject]:
    """The create call for a model reference, and what the body must name."""
    if ":" in model:
        return "/predictions", {"version": model.split(":", 1)[1]}
    if "/" in model:
        owner, name = model.split("/", 1)
        return f"/models/{owner}/{name}/predictions", {}
    return "/predictions", {"version": model}


class Replicate(Provider):
    name = "replicate"

    def __init__(self, http: ProviderHttp, webhook_secret: str | None = None) -> None:
        super().__init__(http)
        self._webhook_key = secret_key(webhook_secret) if webhook_secret else None

    async def submit(
        self, request: RemoteRequest, *, webhook_url: str | None, job_id: str | None
    ) -> Submitted:
        path, body = create_path(request.model)
        body["input"] = request.input
        if webhook_url is not None:
            body["webhook"] = webhook_url
            body["webhook_events_filter"] = ["start", "output", "logs", "completed"]
        answer = await self.http.request("POST", path, json=body, idempotent=False)
        prediction = answer.json()
        return Submitted(str(prediction["id"]), status=prediction_status(prediction))

    async def status(self, call: CallRef) -> RemoteStatus:
        answer = await self.http.request(
            "GET", f"/predictions/{call.provider_job_id}", accept=(404,)
        )
        if answer.status_code == 404:
            raise ProviderGone(f"Replicate has no prediction {call.provider_job_id}")
        return prediction_status(answer.json())

    async def cancel(self, call: CallRef) -> None:
        await self.http.request("POST", f"/predictions/{call.provider_job_id}/cancel")

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> None:
        webhook_id = headers.get("webhook-id", "")
        timestamp = headers.get("webhook-timestamp", "")
        signatures = headers.get("webhook-signature", "")
        if not (webhook_id and timestamp.isdigit() and signatures):
            raise WebhookRejected("missing Standard Webhooks headers")
        if abs(time.time() - int(timestamp)) > WEBHOOK_TOLERANCE_S:
            raise WebhookRejected("webhook timestamp too far from now")
        signed = f"{webhook_id}.{timestamp}.".encode() + body
        expected = hmac.new(await self._key(), signed, hashlib.sha256).digest()
        for candidate in signatures.split():
            version, _, value = candidate.partition(",")
            if version != "v1":
                continue
            try:
                given = base64.b64decode(value, validate=True)
            except ValueError:
                continue
            if hmac.compare_digest(given, expected):
                return
        raise WebhookRejected("no signature matches")

    async def _key(self) -> bytes:
        """The account's webhook signing key: configured, else asked of Replicate once."""
        if self._webhook_key is None:
            answer = await self.http.request("GET", "/webhooks/default/secret")
            self._webhook_key = secret_key(str(answer.json()["key"]))
        return self._webhook_key

    def webhook_status(self, body: Any) -> RemoteStatus | None:
        return prediction_status(body) if isinstance(body, dict) and "status" in body else None

    def is_file_field(self, field: str | None) -> bool:
        return True  # the result is the prediction's output alone, files by URL

    async def check_key(self) -> str:
        answer = await self.http.request("GET", "/account")
        account = answer.json()
        return f"account {account.get('username') or account.get('name') or '?'}"
