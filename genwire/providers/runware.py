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
_UNKNOWN_TASK_CODES = {"taskNotFound", "invalidTaskUUID", "taskUUIDNotFound", "unknownTaskUUID"}


class Runware(Provider):
    name = "runware"
    client_chosen_ids = True
    can_cancel = False

    def new_job_id(self) -> str:
        return str(uuid.uuid4())

    async def submit(
        self, request: RemoteRequest, *, webhook_url: str | None, job_id: str | None
    ) -> Submitted:
        assert job_id is not None, "Runware tasks carry the taskUUID genwire chose"
        task: dict[str, Any] = {
            **request.input,
            "taskType": request.task_type,
            "taskUUID": job_id,
            "model": request.model,
            "deliveryMethod": "async",
        }
        if webhook_url is not None:
            task["webhookURL"] = webhook_url
        answer = await self.http.request("POST", "", json=[task], idempotent=False)
        body = answer.json()
        if body.get("errors"):
            raise ProviderRejected(f"runware: {provider_message(body)}")
        return Submitted(job_id, status=RemoteStatus(RemoteState.QUEUED))

    async def status(self, call: CallRef) -> RemoteStatus:
        answer = await self.http.request(
            "POST",
            "",
            json=[{"taskType": "getResponse", "taskUUID": call.provider_job_id}],
            accept=[code for code in range(400, 500) if code != 429],
        )
        body = answer.json()
        if not answer.is_success:
            codes = {
                str(item.get("code")) for item in body.get("errors") or [] if isinstance(item, dict)
            }
            if codes & _UNKNOWN_TASK_CODES or answer.status_code == 404:
                raise ProviderGone(
                    f"Runware has no task {call.provider_job_id}: {provider_message(body)}"
                )
            if answer.status_code in (401, 403):
                raise ProviderRejected(
                    f"runware: {provider_message(body)}", status_code=answer.status_code
                )
        status = self.webhook_status(body)
        if status is None:
            raise ProviderGone(
                f"Runware has no task {call.provider_job_id}: {provider_message(body)}"
            )
        return status

    async def cancel(self, call: CallRef) -> None:
        raise NotImplementedError("Runware has no cancel")

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> None:
        """Nothing to verify: the call's secret in the URL was checked already."""

    def webhook_status(self, body: Any) -> RemoteStatus | None:
        """A getResponse answer or a webhook body: `{data, errors}` or one bare task."""
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
            result = items[0] if len(items) == 1 else items
            return RemoteStatus(RemoteState.SUCCEEDED, result=result)
        return RemoteStatus(
            RemoteState.RUNNING, log_line=f"runware: {len(items)} generation(s) processing"
        )

    async def check_key(self) -> str:
        # A getResponse of a task that cannot exist: a refused key answers 401/403.
        with contextlib.suppress(ProviderGone):
            await self.status(CallRef(str(uuid.uuid4()), {}, ""))
        return "key accepted"
