"""fal's queue API (docs.fal.ai, Queue): submit with `?fal_webhook=`, status with
`logs=1` and `queue_position`, result, cancel, and webhooks signed with Ed25519 keys
published as a JWKS. fal keeps a result of 10 KB or more for minutes only, so the
follower copies outputs as soon as it sees them."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Mapping
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from genwire.providers.base import (
    CallRef,
    Provider,
    RemoteRequest,
    RemoteState,
    RemoteStatus,
    Submitted,
    WebhookRejected,
)
from genwire.providers.http import ProviderGone, ProviderHttp, provider_message
from genwire.providers.logs import last_line, progress_of

WEBHOOK_TOLERANCE_S = 300
JWKS_TTL_S = 24 * 3600.0  #: fal's keys rotate rarely; a failed check refreshes sooner
JWKS_REFRESH_MIN_S = 60.0  #: a flood of bad signatures fetches the keys at most this often


def app_id(endpoint: str) -> str:
    """`owner/alias` of an endpoint id with a path (`fal-ai/kling-video/v2/…`):
    status, result and cancel live under the app, not the endpoint's path."""
    parts = endpoint.strip("/").split("/")
    return "/".join(parts[:2])


class Fal(Provider):
    name = "fal"

    def __init__(self, http: ProviderHttp, jwks_url: str) -> None:
        super().__init__(http)
        self.jwks_url = jwks_url
        self._keys: list[Ed25519PublicKey] = []
        self._keys_fetched_at = 0.0

    async def submit(
        self, request: RemoteRequest, *, webhook_url: str | None, job_id: str | None
    ) -> Submitted:
        params = {"fal_webhook": webhook_url} if webhook_url else None
        answer = await self.http.request(
            "POST",
            f"/{request.model.strip('/')}",
            json=request.input,
            params=params,
            idempotent=False,
        )
        body = answer.json()
        request_id = str(body["request_id"])
        base = f"{self.http.base_url}/{app_id(request.model)}/requests/{request_id}"
        built = {
            "status_url": f"{base}/status",
            "response_url": base,
            "cancel_url": f"{base}/cancel",
        }
        # fal's key goes wherever these point: only to the queue's own origin.
        handle = {
            which: given if _same_origin(given, self.http.base_url) else fallback
            for which, fallback in built.items()
            for given in [body.get(which)]
        }
        position = body.get("queue_position")
        return Submitted(
            request_id,
            handle,
            RemoteStatus(RemoteState.QUEUED, queue_position=_int_or_none(position)),
        )

    async def status(self, call: CallRef) -> RemoteStatus:
        answer = await self.http.request(
            "GET", self._url(call, "status_url"), params={"logs": "1"}, accept=(404,)
        )
        if answer.status_code == 404:
            raise ProviderGone(f"fal has no request {call.provider_job_id}")
        body = answer.json()
        lines = [
            str(entry.get("message", "")).strip()
            for entry in body.get("logs") or []
            if isinstance(entry, dict) and str(entry.get("message", "")).strip()
        ]
        status = body.get("status")
        if status == "IN_QUEUE":
            return RemoteStatus(
                RemoteState.QUEUED, queue_position=_int_or_none(body.get("queue_position"))
            )
        if status == "IN_PROGRESS":
            return RemoteStatus(
                RemoteState.RUNNING, progress=progress_of(lines), log_line=last_line(lines)
            )
        if status == "COMPLETED":
            # Even a failed request's result is read: it holds the runner's own words,
            # and its status tells refused input (422) from a failing model.
            return await self._result(call, lines, body.get("error"))
        return RemoteStatus(RemoteState.QUEUED, log_line=last_line(lines))

    async def _result(self, call: CallRef, lines: list[str], error: object) -> RemoteStatus:
        # A refusal or the runner's failure is the answer; 429 and a gateway's 5xx
        # are retried, except a 500 the status already called the request's end.
        final = {code for code in range(400, 500) if code != 429} | ({500} if error else set())
        answer = await self.http.request("GET", self._url(call, "response_url"), accept=final)
        if answer.is_success:
            return RemoteStatus(
                RemoteState.SUCCEEDED, log_line=last_line(lines), result=answer.json()
            )
        try:
            detail = provider_message(answer.json())
        except ValueError:
            detail = answer.text[:300]
        said = f"{error}: {detail}" if error and str(error) not in detail else detail
        return RemoteStatus(
            RemoteState.FAILED,
            log_line=last_line(lines),
            error=said,
            rejected=answer.status_code == 422,
        )

    async def cancel(self, call: CallRef) -> None:
        # 400 means it had already completed: nothing left to stop.
        await self.http.request("PUT", self._url(call, "cancel_url"), accept=(400,))

    def _url(self, call: CallRef, which: str) -> str:
        url = call.handle.get(which)
        if not isinstance(url, str) or not url:
            raise ProviderGone(f"no {which} kept for fal request {call.provider_job_id}")
        return url

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> None:
        request_id = headers.get("x-fal-webhook-request-id", "")
        user_id = headers.get("x-fal-webhook-user-id", "")
        timestamp = headers.get("x-fal-webhook-timestamp", "")
        signature_hex = headers.get("x-fal-webhook-signature", "")
        if not (request_id and user_id and timestamp.isdigit() and signature_hex):
            raise WebhookRejected("missing fal webhook headers")
        if abs(time.time() - int(timestamp)) > WEBHOOK_TOLERANCE_S:
            raise WebhookRejected("webhook timestamp too far from now")
        try:
            signature = bytes.fromhex(signature_hex)
        except ValueError:
            raise WebhookRejected("signature is not hex") from None
        message = "\n".join(
            [request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()]
        ).encode()
        if _any_verifies(await self._public_keys(), signature, message):
            return
        # The keys may have rotated since they were fetched: look once more.
        if time.monotonic() - self._keys_fetched_at > JWKS_REFRESH_MIN_S and _any_verifies(
            await self._public_keys(refresh=True), signature, message
        ):
            return
        raise WebhookRejected("no fal key verifies the signature")

    async def _public_keys(self, *, refresh: bool = False) -> list[Ed25519PublicKey]:
        stale = not self._keys_fetched_at or time.monotonic() - self._keys_fetched_at > JWKS_TTL_S
        if not (refresh or stale):
            return self._keys
        # Not through self.http: the JWKS needs no key, and fal's key must not travel.
        async with httpx.AsyncClient(timeout=10, follow_redirects=False) as client:
            answer = await client.get(self.jwks_url)
        answer.raise_for_status()
        keys = []
        for entry in answer.json().get("keys", []):
            if entry.get("kty") == "OKP" and entry.get("crv") == "Ed25519" and entry.get("x"):
                try:
                    raw = base64.urlsafe_b64decode(entry["x"] + "=" * (-len(entry["x"]) % 4))
                    keys.append(Ed25519PublicKey.from_public_bytes(raw))
                except (ValueError, TypeError):
                    continue  # one bad key must not hide the others
        self._keys, self._keys_fetched_at = keys, time.monotonic()
        return keys

    def webhook_status(self, body: Any) -> RemoteStatus | None:
        if not isinstance(body, dict):
            return None
        if body.get("status") == "OK":
            payload = body.get("payload")
            if not payload:
                # Too large to send, or unreadable (`payload_error`): fetched instead.
                return RemoteStatus(RemoteState.RUNNING, fetch=True)
            return RemoteStatus(RemoteState.SUCCEEDED, result=payload)
        if body.get("status") == "ERROR":
            detail = body.get("error") or "failed"
            payload = body.get("payload")
            if payload:
                detail = f"{detail}: {provider_message(payload)}"
            # "Invalid status code: 422": the runner refused the input.
            return RemoteStatus(
                RemoteState.FAILED, error=str(detail), rejected="422" in str(body.get("error"))
            )
        return None

    def is_file_field(self, field: str | None) -> bool:
        return field == "url"  # fal's File objects: {url, content_type, file_name, …}

    async def check_key(self) -> str:
        # fal has no "who am I" on the queue: ask the status of a request that cannot
        # exist. A refused key answers 401/403; an accepted one 404 (or 400).
        await self.http.request(
            "GET",
            "/fal-ai/any-llm/requests/00000000-0000-0000-0000-000000000000/status",
            accept=(400, 404, 422),
        )
        return "key accepted by the queue"


def _same_origin(url: object, base: str) -> bool:
    if not isinstance(url, str):
        return False
    given, ours = httpx.URL(url), httpx.URL(base)
    return (given.scheme, given.host, given.port) == (ours.scheme, ours.host, ours.port)


def _any_verifies(keys: list[Ed25519PublicKey], signature: bytes, message: bytes) -> bool:
    for key in keys:
        try:
            key.verify(signature, message)
        except InvalidSignature:
            continue
        return True
    return False


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
