"""The asyncio twin of `genwire.client.sync.Client`: the same calls, awaited."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import SSEError, aconnect_sse

from genwire.client import _protocol as protocol
from genwire.client._protocol import Call
from genwire.client.errors import Timeout, TransportFailed
from genwire.client.types import Artifact, Job, JobPage, Pipeline, Project

__all__ = ["AsyncClient"]


class AsyncClient:
    """The genwire API over HTTP, for asyncio; each call answers a typed result or
    raises a `GenwireError` (see `genwire.client.errors`)."""

    def __init__(
        self,
        server: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        create_retry_delays: Sequence[float] = protocol.CREATE_RETRY_DELAYS_S,
        event_hooks: Mapping[str, list[Any]] | None = None,
    ) -> None:
        self.server = protocol.server_url(server)
        self.create_retry_delays = tuple(create_retry_delays)
        self._http = httpx.AsyncClient(
            base_url=self.server,
            headers=protocol.auth_headers(api_key),
            timeout=timeout,
            transport=transport,
            event_hooks=event_hooks,
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def absolute(self, url: str) -> str:
        return url if "://" in url else f"{self.server}{url}"

    async def _send(self, call: Call) -> httpx.Response:
        try:
            return await self._http.request(call.method, call.path, **call.request_kwargs())
        except httpx.TransportError as error:
            raise TransportFailed(f"{call.method} {call.path}: {error}") from error

    async def _call(self, call: Call) -> Any:
        return protocol.read_json(await self._send(call))

    async def _create(self, call: Call) -> Any:
        """Send a create, resending it after a broken connection or a 502/503/504:
        its Idempotency-Key makes every resend answer the one job (or project)."""
        for delay in (*self.create_retry_delays, None):
            try:
                response = await self._send(call)
            except TransportFailed:
                if delay is None:
                    raise
            else:
                if delay is None or not protocol.should_retry_create(response):
                    return protocol.read_json(response)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last try returns or raises")

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
        cursor = protocol.StreamCursor(job_id, after)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            read_s = protocol.read_timeout(deadline, time.monotonic())
            try:
                async with aconnect_sse(
                    self._http,
                    "GET",
                    cursor.path,
                    headers=cursor.headers(),
                    timeout=httpx.Timeout(30.0, read=read_s),
                ) as source:
                    response = source.response
                    if response.status_code == 204:
                        return
                    if response.status_code >= 400:
                        await response.aread()
                        raise protocol.api_error(response)
                    async for message in source.aiter_sse():
                        event = cursor.accept(message)
                        if event is None:
                            continue
                        yield event
                        if cursor.done:
                            return
                pause = protocol.backoff(cursor.failures)
            except (httpx.TransportError, SSEError):
                pause = cursor.connection_failed()
            if deadline is not None and deadline - time.monotonic() <= pause:
                raise Timeout(f"job {job_id}: no terminal event within {timeout} s")
            await asyncio.sleep(pause)

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
        try:
            async with self._http.stream(
                "GET", artifact.url, headers=plan.headers(), timeout=httpx.Timeout(30.0)
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                # Local writes of 64 KiB chunks are brief; the hash below is not.
                with plan.partial.open(plan.open_mode(response)) as handle:
                    async for chunk in response.aiter_bytes(protocol.DOWNLOAD_CHUNK_BYTES):
                        handle.write(chunk)
        except httpx.TransportError as error:
            raise TransportFailed(f"GET {artifact.url}: {error}") from error
        return await asyncio.to_thread(plan.finish)

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
