"""The asyncio twin of `genwire.client.sync.Client`: the same calls, awaited."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from genwire.client import _protocol as protocol
from genwire.client._base import ClientBase, HttpOptions
from genwire.client._protocol import Call
from genwire.client._transports import (
    RETRYABLE,
    EventFeed,
    Transport,
    retry_after_of,
    server_answered,
)
from genwire.client._transports import failure as _failure
from genwire.client.errors import TransportFailed
from genwire.client.types import Artifact, Job, JobPage, Pipeline, Project

__all__ = ["AsyncClient"]


class AsyncClient(ClientBase[httpx.AsyncBaseTransport, httpx.AsyncClient]):
    """The genwire API over HTTP, for asyncio; each call answers a typed result or
    raises a `GenwireError` (see `genwire.client.errors`)."""

    def _open_http(
        self, transport: httpx.AsyncBaseTransport | None, options: HttpOptions
    ) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=transport, **options)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._streams.aclose()

    async def _send(self, call: Call) -> httpx.Response:
        try:
            return await self._http.request(call.method, call.path, **call.request_kwargs())
        except httpx.TransportError as error:
            raise TransportFailed(f"{call.method} {call.path}: {error}") from error

    async def _call(self, call: Call) -> Any:
        """Send a call, again after the wait a 429 or 503 answer's Retry-After names."""
        return protocol.read_json(await self._send_resending(call, self._resends(call)))

    async def _create(self, call: Call) -> Any:
        """Send a create, resending it after a broken connection, a 502/503/504 or a
        429 (after its Retry-After): its Idempotency-Key makes every resend answer the
        one job (or project)."""
        return protocol.read_json(await self._send_resending(call, self._create_resends(call)))

    async def _send_resending(self, call: Call, resends: protocol.Resends) -> httpx.Response:
        while True:
            try:
                response = await self._send(call)
            except TransportFailed:
                pause = resends.after_break()
                if pause is None:
                    raise
            else:
                pause = resends.after_answer(response)
                if pause is None:
                    return response
            await asyncio.sleep(pause)

    async def pipelines(self) -> list[Pipeline]:
        answer = await self._call(protocol.pipelines_call())
        return [Pipeline.from_json(item) for item in answer["items"]]

    async def submit(
        self,
        pipeline: str,
        input: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        wait: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        project_id: str | None = None,
        webhook: Mapping[str, Any] | None = None,
    ) -> Job:
        """Create a job; see `Client.submit`."""
        call = protocol.submit_call(
            pipeline,
            input,
            idempotency_key=idempotency_key,
            wait=wait,
            metadata=metadata,
            project_id=project_id,
            webhook=webhook,
        )
        return Job.from_json(await self._create(call))

    async def get(self, job_id: str) -> Job:
        return Job.from_json(await self._call(protocol.get_call(job_id)))

    async def list(self, **filters: Any) -> JobPage:
        return JobPage.from_json(await self._call(protocol.list_call(filters)))

    async def cancel(self, job_id: str) -> Job:
        return Job.from_json(await self._call(protocol.cancel_call(job_id)))

    async def events(
        self, job_id: str, after: str | None = None, *, timeout: float | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """The job's events, each once, in order, until its terminal event; see
        `Client.events`."""
        feed = self._feed(job_id, after, timeout)
        while not feed.done:
            transport = feed.begin()
            try:
                if transport is Transport.SSE:
                    async for event in self._sse_attempt(feed):
                        yield event
                else:
                    if transport is Transport.LONG_POLL:
                        events = await self._poll_attempt(feed, feed.long_poll_wait())
                    else:
                        events = await self._snapshot_attempt(feed)
                    for event in events:
                        yield event
            except RETRYABLE as error:
                if isinstance(error, httpx.TimeoutException):
                    feed.check_deadline()
                pause = feed.failed(retry_after_of(error), answered=server_answered(error))
            else:
                if feed.done:
                    return
                pause = feed.succeeded()
            await asyncio.sleep(pause)

    async def _sse_attempt(self, feed: EventFeed) -> AsyncIterator[dict[str, Any]]:
        async with aconnect_sse(
            self._streams,
            "GET",
            feed.sse_path(),
            headers=feed.sse_headers(),
            timeout=httpx.Timeout(feed.request_timeout(), read=feed.sse_read_timeout()),
        ) as source:
            response = source.response
            if response.status_code == 204:
                feed.finished()
                return
            if response.status_code >= 400:
                await response.aread()
                raise _failure(response)
            async for message in source.aiter_sse():
                event = feed.sse_event(message)
                if event is not None:
                    yield event
                    if feed.done:
                        return

    async def _poll_attempt(self, feed: EventFeed, wait: float) -> Sequence[dict[str, Any]]:
        response = await self._streams.get(
            feed.poll_path(),
            params=feed.poll_params(wait),
            timeout=httpx.Timeout(feed.request_timeout(), read=feed.long_poll_read_timeout(wait)),
        )
        if response.status_code >= 400:
            raise _failure(response)
        return feed.poll_events(response.json())

    async def _snapshot_attempt(self, feed: EventFeed) -> Sequence[dict[str, Any]]:
        response = await self._streams.get(feed.snapshot_path(), timeout=feed.request_timeout())
        if response.status_code >= 400:
            raise _failure(response)
        if feed.snapshot_has_news(response.json()):
            return await self._poll_attempt(feed, 0.0)
        return []

    async def wait(self, job_id: str, timeout: float) -> Job:
        """The job once it has ended; `Timeout` after `timeout` s."""
        job = await self.get(job_id)
        if job.is_terminal:
            return job
        async for _ in self.events(job_id, after=job.last_event_id, timeout=timeout):
            pass
        return await self.get(job_id)

    async def download(self, artifact: Artifact, dest: str | os.PathLike[str]) -> Path:
        """Save an artifact's bytes to `dest`, resuming a partial download; see
        `Client.download`."""
        plan = protocol.DownloadPlan(artifact, dest)
        resends = self._resends(Call("GET", artifact.url))
        while True:
            pause = await self._download_once(plan, resends)
            if pause is None:
                return await asyncio.to_thread(plan.finish)
            await asyncio.sleep(pause)  # a 429 or 503's Retry-After, as any GET

    async def _download_once(
        self, plan: protocol.DownloadPlan, resends: protocol.Resends
    ) -> float | None:
        """One try at the bytes; see `Client._download_once`."""
        url = plan.artifact.url
        try:
            async with self._http.stream(
                "GET", url, headers=plan.headers(), timeout=httpx.Timeout(30.0)
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    pause = resends.after_answer(response)
                    if pause is not None:
                        return pause
                # Local writes of 64 KiB chunks are brief; the hash below is not.
                with plan.partial.open(plan.open_mode(response)) as handle:
                    async for chunk in response.aiter_bytes(protocol.DOWNLOAD_CHUNK_BYTES):
                        handle.write(chunk)
        except httpx.TransportError as error:
            raise TransportFailed(f"GET {url}: {error}") from error
        return None

    async def create_project(
        self,
        clips: Sequence[Mapping[str, Any]],
        name: str | None = None,
        webhook: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Project:
        call = protocol.create_project_call(
            clips, name=name, webhook=webhook, idempotency_key=idempotency_key
        )
        return Project.from_json(await self._create(call))

    async def get_project(self, project_id: str) -> Project:
        return Project.from_json(await self._call(protocol.get_project_call(project_id)))

    async def cancel_project(self, project_id: str) -> Project:
        return Project.from_json(await self._call(protocol.cancel_project_call(project_id)))

    async def health(self) -> dict[str, Any]:
        health: dict[str, Any] = await self._call(protocol.health_call())
        return health
