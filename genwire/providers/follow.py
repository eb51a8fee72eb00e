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
import contextlib
import logging
import math
import random
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
    Submitted,
)
from genwire.providers.http import ProviderError, ProviderGone, ProviderUnavailable
from genwire.providers.outputs import OutputUnavailable, copy_outputs, file_urls
from genwire.store.provider_calls import CallState, ProviderCall
from genwire.store.retries import written_despite_outages

if TYPE_CHECKING:
    from genwire.providers.remote import RemoteProviders

log = logging.getLogger("genwire.providers")

#: polls in a row that failed past their retries before the job fails
MAX_KEY_LENGTH = 200
#: a stopped job waits this long for a submit already on the wire, to learn its id
SUBMIT_SETTLE_S = 5.0
ROW_CHECK_S = 1.0  #: with webhooks on, how often the call's row is read for one
LAST_LOOK_S = 10.0  #: at the deadline, how long the last look at the provider may take
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
        self._ref: CallRef | None = None  #: the provider job, once known

    async def run(
        self, request: RemoteRequest, *, key: str, timeout_s: float, copy_outputs: bool
    ) -> RemoteResult:
        if not 0 < len(key) <= MAX_KEY_LENGTH:
            raise PipelineError(f"a call's key must be 1–{MAX_KEY_LENGTH} characters")
        asked = request.fingerprint(self.provider.name)
        call, created = await self.remote.calls.open(
            self.ctx.job_id,
            key,
            self.provider.name,
            timeout_s=timeout_s,
            request_hash=asked,
            provider_job_id=self.provider.new_job_id(),
        )
        if call.request_hash != asked:
            raise PipelineError(
                f"this job's call {key!r} was made with another request; give each "
                "different call of a pipeline its own key"
            )
        try:
            first = await self._submitted(call, created, request)
            assert self._ref is not None
            final = await self._until_ended(call, self._ref, first)
        except (asyncio.CancelledError, JobCancelled):
            # Cancelled, or past the worker's time limit: stop the provider job too.
            # (A shutdown or a lost lease leaves it running for the next attempt.)
            if self.ctx.cancelled and self._ref is not None:
                await self._forward_cancel(self._ref, "the job was stopped")
                await self.remote.calls.mark_ended(call.id)
            raise
        ref = self._ref
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
    ) -> RemoteStatus | None:
        """Sets `_ref` to the provider job of this call, submitted now if it never
        was; returns its status when the submit's answer told it."""
        name = self.provider.name
        if call.provider_job_id is not None and call.state is not CallState.SUBMITTING:
            await self.ctx.status(f"following {name} job {call.provider_job_id} again")
            self._ref = CallRef(call.provider_job_id, call.handle)
            return None
        if call.state is CallState.ENDED:
            raise PipelineError(
                f"this job's call {call.key!r} to {name} ended before {name} took it "
                "(its submit was refused or abandoned); give another call another key",
                code="provider_unavailable",
            )
        if not created and await self._look_up_unsure(call, request):
            return None
        await self._enter("submit")
        webhook_url = self.remote.webhook_url(call)
        # The request may be on the wire when the job is stopped: let it finish and
        # its id be recorded, so that the cancel can be passed on, not lost.
        submitting = asyncio.ensure_future(self._submit(call, request, webhook_url))
        try:
            submitted = await asyncio.shield(submitting)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(SUBMIT_SETTLE_S):
                    await asyncio.shield(submitting)
            raise
        how = "webhook and polling" if webhook_url else "polling"
        await self.ctx.status(
            f"submitted to {name} as {submitted.provider_job_id}; following by {how}"
        )
        return submitted.status

    async def _submit(
        self, call: ProviderCall, request: RemoteRequest, webhook_url: str | None
    ) -> Submitted:
        try:
            submitted = await self.provider.submit(
                request, webhook_url=webhook_url, job_id=call.provider_job_id
            )
        except ProviderError as error:
            await self.remote.calls.mark_ended(call.id)
            raise self._job_error(error) from None
        self._ref = CallRef(submitted.provider_job_id, submitted.handle)
        await written_despite_outages(
            lambda: self.remote.calls.mark_submitted(
                call.id, submitted.provider_job_id, submitted.handle
            ),
            "recording a provider job's id",
        )
        return submitted

    async def _look_up_unsure(self, call: ProviderCall, request: RemoteRequest) -> bool:
        """An earlier run died while submitting. True when the provider has the job
        (then `_ref` is set); False when it surely never got it (submit it now)."""
        name = self.provider.name
        if call.provider_job_id is None:  # the provider chose the id, and never told it
            await self.remote.calls.mark_ended(call.id)
            raise PipelineError(
                f"genwire stopped while submitting to {name}; whether {name} received the "
                "request is unknown, so it is not sent again (a second submission is a "
                "second bill): submit the job again to retry",
                code="provider_unavailable",
                retryable=True,
            )
        ref = CallRef(call.provider_job_id, call.handle)
        try:
            await self.provider.status(ref)
        except ProviderGone:
            return False
        except ProviderError as error:
            raise self._job_error(error) from None
        await self.remote.calls.mark_submitted(call.id, call.provider_job_id, call.handle)
        self._ref = ref
        return True

    async def _until_ended(
        self, call: ProviderCall, ref: CallRef, status: RemoteStatus | None
    ) -> RemoteStatus:
        loop = asyncio.get_running_loop()
        settings = self.remote.settings
        deadline = loop.time() + (call.deadline_at - utc_now()).total_seconds()
        webhooks = self.remote.webhook_url(call) is not None
        first, longest = settings.poll_with_webhooks_s if webhooks else settings.poll_s
        interval = first
        next_poll = loop.time() + interval if status is not None else loop.time()
        # A webhook taken by another process (an API node beside this worker) wakes
        # no one here: while webhooks are on, the call's row is read this often.
        row_check_s = ROW_CHECK_S if webhooks else math.inf
        seen_webhook = None
        unreachable_since: float | None = None
        with self.remote.bus.subscribe(topics.provider_call(call.id)) as woken:
            while True:
                if status is not None:
                    await self._show(status)
                    if status.state.is_terminal:
                        return status
                if loop.time() >= deadline:
                    return await self._past_deadline(call, ref)
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
                    unreachable_since = None
                except ProviderUnavailable as error:
                    # Retried already (http.py); an outage of minutes is waited out.
                    now = loop.time()
                    if unreachable_since is None:
                        unreachable_since = now
                        await self.ctx.warn(
                            self._words(f"cannot reach {self.provider.name}, trying on: {error}"),
                            code="provider_unreachable",
                        )
                    if now - unreachable_since >= settings.give_up_unreachable_s:
                        await self._forward_cancel(ref, f"{self.provider.name} was unreachable")
                        raise self._job_error(error) from None
                except ProviderError as error:
                    raise self._job_error(error) from None
                interval = min(interval * 1.5, longest)
                next_poll = loop.time() + interval * random.uniform(0.9, 1.1)

    async def _past_deadline(self, call: ProviderCall, ref: CallRef) -> RemoteStatus:
        """One last look (it may have ended since the last poll), then the end."""
        with contextlib.suppress(ProviderError, TimeoutError):
            async with asyncio.timeout(LAST_LOOK_S):
                status = await self.provider.status(ref)
            if status.state.is_terminal:
                return status
        name = self.provider.name
        await self._forward_cancel(ref, "its timeout_s passed")
        await self.remote.calls.mark_ended(call.id)
        stopped = (
            f"cancelled at {name}"
            if self.provider.can_cancel
            else f"no longer followed ({name} has no cancel)"
        )
        raise PipelineError(
            f"{name} job {ref.provider_job_id} did not finish within its timeout_s; {stopped}",
            code="provider_timeout",
            retryable=True,
        )

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
            await self.ctx.status(self._words(message), queue_position=status.queue_position)
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

        async def store(path: Path, name: str, media_type: str | None) -> Artifact:
            return await self.ctx.artifact(path, name=name, media_type=media_type)

        try:
            return await copy_outputs(
                file_urls(result, self.provider.is_file_field),
                result,
                self.ctx.workdir,
                store,
                allow_private=self.remote.settings.allow_private_outputs,
            )
        except OutputUnavailable as error:
            raise PipelineError(
                f"an output of {self.provider.name} could not be copied: {error}",
                code="output_unavailable",
            ) from None

    async def _forward_cancel(self, ref: CallRef, why: str) -> None:
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
