"""Following one provider call to its end, the same way for every provider.

1. The call is recorded before its request leaves (`ProviderCalls.open`), and the
   provider's id as soon as it answers: a job run again finds the call and follows
   it. A call whose submit may or may not have reached the provider is looked up
   where the provider lets genwire choose the id (Runware), and otherwise never sent
   again: the job fails `provider_unavailable` rather than pay twice.
2. Webhooks (with a public URL) wake the follower at once; polling goes on beside
   them, more slowly, because webhooks get lost; with no webhook it polls with
   backoff. `Retry-After`, 429 and 5xx are the HTTP layer's (`http.py`).
3. The call's deadline (`timeout_s`, kept with the call so a restart does not
   extend it) and a cancel of the job are forwarded to the provider.
4. Outputs are copied into genwire's storage before the job may succeed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from genwire.bus import topics
from genwire.models import Artifact, utc_now
from genwire.pipelines.base import JobCancelled, PipelineContext, PipelineError
from genwire.providers.base import (
    CallRef,
    Provider,
    RemotePhases,
    RemoteRequest,
    RemoteResult,
    RemoteState,
    RemoteStatus,
)
from genwire.providers.http import ProviderError, ProviderGone, ProviderUnavailable
from genwire.providers.outputs import OutputUnavailable, copy_outputs
from genwire.store.provider_calls import CallState, ProviderCall

if TYPE_CHECKING:
    from genwire.providers.remote import RemoteProviders

log = logging.getLogger("genwire.providers")

#: polls in a row that failed past their retries before the job fails
MAX_FAILED_POLLS = 3
ROW_CHECK_S = 1.0  #: with webhooks on, how often the call's row is read for one
CANCEL_TIMEOUT_S = 5.0  #: a cancel forwarded while the job stops gets this long


class CallFollower:
    """Runs one call of one job attempt: submit (once), follow, copy, report."""

    def __init__(
        self,
        remote: RemoteProviders,
        ctx: PipelineContext,
        provider_name: str,
        phases: RemotePhases | None,
    ) -> None:
        provider = remote.get(provider_name)
        if provider is None:
            raise PipelineError(
                f"the provider {provider_name!r} is not configured on this worker",
                code="provider_unavailable",
                retryable=True,
            )
        self.remote = remote
        self.ctx = ctx
        self.provider: Provider = provider
        self.phases = phases
        self._shown: tuple[object, ...] | None = None

    async def run(
        self, request: RemoteRequest, *, key: str, timeout_s: float, copy_outputs: bool
    ) -> RemoteResult:
        call, created = await self.remote.calls.open(
            self.ctx.job_id,
            key,
            self.provider.name,
            timeout_s=timeout_s,
            provider_job_id=self.provider.new_job_id(),
        )
        ref, first = await self._submitted(call, created, request)
        try:
            final = await self._until_ended(call, ref, first)
        except (asyncio.CancelledError, JobCancelled):
            if self.ctx.cancelled:
                await self._forward_cancel(call, ref, "the job was cancelled")
            raise
        await self.remote.calls.mark_ended(call.id)
        if final.state is RemoteState.FAILED:
            raise PipelineError(
                self._words(f"{self.provider.name} failed: {final.error or 'no reason given'}"),
                code="provider_rejected" if final.rejected else "provider_failed",
            )
        if final.state is RemoteState.CANCELLED:
            raise PipelineError(
                f"{self.provider.name} cancelled {ref.provider_job_id}", code="provider_failed"
            )
        result: object = final.result
        artifacts: list[Artifact] = []
        files: list[Path] = []
        if copy_outputs:
            result, artifacts, files = await self._copy(result)
        output = {
            "provider": self.provider.name,
            "provider_job_id": ref.provider_job_id,
            "result": result,
        }
        return RemoteResult(output, artifacts, files)

    async def _submitted(
        self, call: ProviderCall, created: bool, request: RemoteRequest
    ) -> tuple[CallRef, RemoteStatus | None]:
        """The provider job of this call, submitted now if it never was."""
        name = self.provider.name
        if call.state is not CallState.SUBMITTING:
            assert call.provider_job_id is not None
            await self.ctx.status(f"following {name} job {call.provider_job_id} again")
            return CallRef(call.provider_job_id, call.handle, request.model), None
        if not created:
            found = await self._look_up_unsure(call, request)
            if found is not None:
                return found, None
        await self._enter("submit")
        webhook_url = self.remote.webhook_url(call)
        try:
            submitted = await self.provider.submit(
                request, webhook_url=webhook_url, job_id=call.provider_job_id
            )
        except ProviderError as error:
            await self.remote.calls.mark_ended(call.id)
            raise self._job_error(error) from None
        await self.remote.calls.mark_submitted(call.id, submitted.provider_job_id, submitted.handle)
        how = "webhook and polling" if webhook_url else "polling"
        await self.ctx.status(
            f"submitted to {name} as {submitted.provider_job_id}; following by {how}"
        )
        return CallRef(submitted.provider_job_id, submitted.handle, request.model), submitted.status

    async def _look_up_unsure(self, call: ProviderCall, request: RemoteRequest) -> CallRef | None:
        """An earlier run died while submitting: the job it may have made, or None
        when the provider surely never got it (then it is submitted now)."""
        name = self.provider.name
        if not (self.provider.client_chosen_ids and call.provider_job_id):
            await self.remote.calls.mark_ended(call.id)
            raise PipelineError(
                f"genwire stopped while submitting to {name}; whether {name} received the "
                "request is unknown, so it is not sent again (a second submission is a "
                "second bill): submit the job again to retry",
                code="provider_unavailable",
                retryable=True,
            )
        ref = CallRef(call.provider_job_id, call.handle, request.model)
        try:
            await self.provider.status(ref)
        except ProviderGone:
            return None
        except ProviderError as error:
            raise self._job_error(error) from None
        await self.remote.calls.mark_submitted(call.id, call.provider_job_id, call.handle)
        return ref

    async def _until_ended(
        self, call: ProviderCall, ref: CallRef, status: RemoteStatus | None
    ) -> RemoteStatus:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (call.deadline_at - utc_now()).total_seconds()
        webhooks = self.remote.webhook_url(call) is not None
        first, longest = (
            self.remote.settings.poll_with_webhooks_s if webhooks else self.remote.settings.poll_s
        )
        interval = first
        next_poll = loop.time() + interval if status is not None else loop.time()
        # A webhook taken by another process (an API node beside this worker) wakes
        # no one here: its row is looked at this often, while webhooks are on.
        row_check_s = ROW_CHECK_S if webhooks else math.inf
        seen_webhook = None
        failed_polls = 0
        with self.remote.bus.subscribe(topics.provider_call(call.id)) as woken:
            while True:
                if status is not None:
                    await self._show(status)
                    if status.state.is_terminal:
                        return status
                if loop.time() >= deadline:
                    await self._forward_cancel(call, ref, "its timeout_s passed")
                    await self.remote.calls.mark_ended(call.id)
                    raise PipelineError(
                        f"{self.provider.name} job {ref.provider_job_id} did not finish "
                        f"within its timeout_s; cancelled at {self.provider.name}",
                        code="provider_timeout",
                        retryable=True,
                    )
                wait = min(next_poll, deadline, loop.time() + row_check_s) - loop.time()
                if wait > 0:
                    await woken.wait(wait)
                status = None
                latest = await self.remote.calls.get(call.id)
                if latest is not None and latest.webhook_status not in (None, seen_webhook):
                    seen_webhook = latest.webhook_status
                    told = RemoteStatus.from_json(latest.webhook_status)
                    if not told.fetch:
                        status = told
                        continue
                    next_poll = loop.time()  # it changed, but the provider must be asked
                if loop.time() < next_poll:
                    continue
                try:
                    status = await self.provider.status(ref)
                    failed_polls = 0
                except ProviderUnavailable as error:
                    failed_polls += 1
                    log.warning(
                        "polling %s failed (%d in a row): %s",
                        self.provider.name,
                        failed_polls,
                        error,
                    )
                    if failed_polls >= MAX_FAILED_POLLS:
                        raise self._job_error(error) from None
                except ProviderError as error:
                    raise self._job_error(error) from None
                interval = min(interval * 1.5, longest)
                next_poll = loop.time() + interval * random.uniform(0.9, 1.1)

    async def _show(self, status: RemoteStatus) -> None:
        """Events for what changed: phase, queue position, log line, progress."""
        name = self.provider.name
        phases = self.phases
        if phases is not None:
            target = {RemoteState.QUEUED: phases.queue, RemoteState.RUNNING: phases.generate}.get(
                status.state
            )
            if target is not None and self._phase_before(target):
                await self.ctx.phase(target)
        shown = (status.state, status.queue_position, status.log_line, status.progress)
        if shown == self._shown or status.state.is_terminal:
            return
        self._shown = shown
        if status.state is RemoteState.QUEUED:
            where = (
                f" (position {status.queue_position})" if status.queue_position is not None else ""
            )
            message = status.log_line or f"queued at {name}{where}"
            await self.ctx.status(message, queue_position=status.queue_position)
            return
        message = status.log_line or f"running at {name}"
        if status.progress is not None and self.ctx.current_phase is not None:
            await self.ctx.report(status.progress, self._words(message))
        else:
            await self.ctx.status(self._words(message))

    def _phase_before(self, target: str) -> bool:
        """Whether moving to `target` goes forward (a late queued status after a
        running one must not move the job back)."""
        assert self.phases is not None
        order = [self.phases.submit, self.phases.queue, self.phases.generate, self.phases.copy]
        current = self.ctx.current_phase
        if current not in order:
            return current is None
        return order.index(target) > order.index(current)

    async def _enter(self, which: str) -> None:
        if self.phases is not None:
            await self.ctx.phase(getattr(self.phases, which))

    async def _copy(self, result: object) -> tuple[object, list[Artifact], list[Path]]:
        await self._enter("copy")
        await self.ctx.status(f"copying the outputs of {self.provider.name}")
        kept: list[Path] = []

        async def store(path: Path, name: str, media_type: str | None) -> Artifact:
            # Storage takes the file; the pipeline keeps a link to work on further.
            keep = path.with_name(f"kept-{path.name}")
            await asyncio.to_thread(_link_or_copy, path, keep)
            kept.append(keep)
            return await self.ctx.artifact(path, name=name, media_type=media_type)

        try:
            copied, artifacts = await copy_outputs(result, self.ctx.workdir, store)
        except OutputUnavailable as error:
            raise PipelineError(
                f"an output of {self.provider.name} could not be copied: {error}",
                code="output_unavailable",
            ) from None
        return copied, artifacts, kept

    async def _forward_cancel(self, call: ProviderCall, ref: CallRef, why: str) -> None:
        """Stop the provider job, or say that the provider cannot stop it."""
        name = self.provider.name
        if not self.provider.can_cancel:
            await self.ctx.warn(
                f"{name} has no cancel: genwire stopped following {ref.provider_job_id} "
                f"because {why}, but {name} may still finish (and bill) it",
                code="provider_cannot_cancel",
            )
            return
        try:
            async with asyncio.timeout(CANCEL_TIMEOUT_S):
                await self.provider.cancel(ref)
        except (ProviderError, TimeoutError) as error:
            await self.ctx.warn(
                self._words(f"cancelling {ref.provider_job_id} at {name} failed: {error}"),
                code="provider_cancel_failed",
            )
            return
        await self.ctx.warn(
            f"cancelled {ref.provider_job_id} at {name} because {why}", code="provider_cancelled"
        )

    def _job_error(self, error: ProviderError) -> PipelineError:
        return PipelineError(self._words(error.message), code=error.code, retryable=error.retryable)

    def _words(self, text: str) -> str:
        return self.remote.redact(text)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
