"""Runware's HTTP API with async delivery (runware.ai/docs: task polling, webhooks):
genwire chooses each task's `taskUUID`, sends it with `deliveryMethod: "async"`, and
follows it with `getResponse`. Runware signs no webhook, so the call's own secret in
the webhook URL is the check; and it has no cancel: genwire stops following and says so.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping
from typing import Any

import httpx

from genwire.providers.base import (
    CallRef,
    Provider,
    RemoteRequest,
    RemoteState,
    RemoteStatus,
    Submitted,
)
from genwire.providers.http import ProviderGone, ProviderRejected, provider_message

#: error codes of a getResponse for a task Runware does not know
_UNKNOWN_TASK_CODES = {
    "taskFailedOrNotFound",
    "taskNotFound",
    "taskUUIDNotFound",
    "unknownTaskUUID",
}
_SET_BY_GENWIRE = {"taskType", "taskUUID", "model", "deliveryMethod", "webhookURL"}
#: 4xx answers read as Runware's word (its `errors`), not retried
_REFUSALS = [code for code in range(400, 500) if code not in (408, 425, 429)]


def _json_object(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {"errors": [{"message": answer.text[:300] or answer.reason_phrase}]}
    if isinstance(body, list):
        return {"data": body}
    return body if isinstance(body, dict) else {"errors": [{"message": str(body)[:300]}]}


def _error_codes(body: dict[str, Any]) -> set[str]:
    return {str(item.get("code")) for item in body.get("errors") or [] if isinstance(item, dict)}


class Runware(Provider):
    name = "runware"
    can_cancel = False

    def new_job_id(self) -> str:
        return str(uuid.uuid4())

    async def submit(
        self, request: RemoteRequest, *, webhook_url: str | None, job_id: str | None
    ) -> Submitted:
        assert job_id is not None, "Runware tasks carry the taskUUID genwire chose"
        # The fields genwire sets are genwire's alone, whoever built the request: an
        # input's own webhookURL would send the result where genwire never hears it.
        given = {
            name: value for name, value in request.input.items() if name not in _SET_BY_GENWIRE
        }
        task: dict[str, Any] = {
            **given,
            "taskType": request.task_type,
            "taskUUID": job_id,
            "model": request.model,
            "deliveryMethod": "async",
        }
        if webhook_url is not None:
            task["webhookURL"] = webhook_url
        answer = await self.http.request(
            "POST", "", json=[task], idempotent=False, accept=_REFUSALS
        )
        body = _json_object(answer)
        if _error_codes(body) & {"conflictTaskUUID"}:
            # Runware has this taskUUID already: an earlier try reached it. Follow it.
            return Submitted(job_id, status=RemoteStatus(RemoteState.QUEUED))
        if not answer.is_success or body.get("errors"):
            raise ProviderRejected(
                f"runware: {provider_message(body)}", status_code=answer.status_code
            )
        return Submitted(job_id, status=RemoteStatus(RemoteState.QUEUED))

    async def status(self, call: CallRef) -> RemoteStatus:
        answer = await self.http.request(
            "POST",
            "",
            json=[{"taskType": "getResponse", "taskUUID": call.provider_job_id}],
            accept=_REFUSALS,
        )
        body = _json_object(answer)
        gone = ProviderGone(f"Runware has no task {call.provider_job_id}: {provider_message(body)}")
        if not answer.is_success:
            if _error_codes(body) & _UNKNOWN_TASK_CODES or answer.status_code == 404:
                raise gone
            if answer.status_code in (401, 403):
                raise ProviderRejected(
                    f"runware: {provider_message(body)}", status_code=answer.status_code
                )
        status = _response_status(body)
        if status is None:
            raise gone
        return status

    async def cancel(self, call: CallRef) -> None:
        raise NotImplementedError("Runware has no cancel")

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> None:
        """Nothing to verify: the call's secret in the URL was checked already."""

    def webhook_status(self, body: Any) -> RemoteStatus | None:
        """Runware posts one webhook per finished result of a task, so one webhook
        does not say the task is done: it makes the follower ask (getResponse)."""
        if _response_status(body) is None:
            return None
        return RemoteStatus(RemoteState.RUNNING, fetch=True)

    def is_file_field(self, field: str | None) -> bool:
        return field is not None and field.endswith("URL") and field != "webhookURL"

    async def check_key(self) -> str:
        # A getResponse of a task that cannot exist: a refused key answers 401/403.
        with contextlib.suppress(ProviderGone):
            await self.status(CallRef(str(uuid.uuid4()), {}))
        return "key accepted"


def _response_status(body: Any) -> RemoteStatus | None:
    """The task's status in a getResponse answer (`{data, errors}`, or a bare task)."""
    if isinstance(body, list):
        body = {"data": body}
    if not isinstance(body, dict):
        return None
    if "taskType" in body and "data" not in body and "errors" not in body:
        body = {"data": [body]}
    errors = [item for item in body.get("errors") or [] if isinstance(item, dict)]
    if errors:
        return RemoteStatus(RemoteState.FAILED, error=provider_message({"errors": errors}))
    items = [
        item
        for item in body.get("data") or []
        if isinstance(item, dict) and item.get("taskType") != "getResponse"
    ]
    if not items:
        return None
    states = {str(item.get("status", "success")) for item in items}
    if "error" in states:
        failed = next(item for item in items if item.get("status") == "error")
        return RemoteStatus(RemoteState.FAILED, error=provider_message(failed))
    if states <= {"success"}:
        return RemoteStatus(RemoteState.SUCCEEDED, result=items[0] if len(items) == 1 else items)
    done = sum(1 for item in items if item.get("status") == "success")
    return RemoteStatus(
        RemoteState.RUNNING,
        progress=100.0 * done / len(items) if len(items) > 1 else None,
        log_line=f"runware: {done} of {len(items)} generation(s) done",
    )
