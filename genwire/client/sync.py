"""A synchronous client for the calls of SPEC §3 and the job stream of §4."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

from genwire.client import _protocol as protocol
from genwire.client._base import ClientBase, HttpOptions
from genwire.client._protocol import DEFAULT_URL, Call
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

__all__ = ["DEFAULT_URL", "Client"]


class Client(ClientBase[httpx.BaseTransport, httpx.Client]):
    """The genwire API over HTTP; each call answers a typed result or raises a
    `GenwireError` (see `genwire.client.errors`)."""

    def _open_http(
        self, transport: httpx.BaseTransport | None, options: HttpOptions
    ) -> httpx.Client:
        return httpx.Client(transport=transport, **options)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
        self._streams.close()

    def _send(self, call: Call) -> httpx.Response:
        try:
            return self._http.request(call.method, call.path, **call.request_kwargs())
        except httpx.TransportError as error:
            raise TransportFailed(f"{call.method} {call.path}: {error}") from error

    def _call(self, call: Call) -> Any:
        """Send a call, again after the wait a 429 or 503 answer's Retry-After names."""
        return protocol.read_json(self._send_resending(call, self._resends(call)))

    def _create(self, call: Call) -> Any:
        """Send a create, resending it after a broken connection, a 502/503/504 or a
        429 (after its Retry-After): its Idempotency-Key makes every resend answer the
        one job (or project)."""
        return protocol.read_json(self._send_resending(call, self._create_resends(call)))

    def _send_resending(self, call: Call, resends: protocol.Resends) -> httpx.Response:
        while True:
            try:
                response = self._send(call)
            except TransportFailed:
                pause = resends.after_break()
                if pause is None:
                    raise
            else:
                pause = resends.after_answer(response)
                if pause is None:
                    return response
            time.sleep(pause)

    def pipelines(self) -> list[Pipeline]:
        answer = self._call(protocol.pipelines_call())
        return [Pipeline.from_json(item) for item in answer["items"]]

    def submit(
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
        """Create a job; `wait=N` (1–60) answers when it ends or after N s, whichever
        is first. Resends on a broken connection or a 502/503/504 reuse one key."""
        call = protocol.submit_call(
            pipeline,
            input,
            idempotency_key=idempotency_key,
            wait=wait,
            metadata=metadata,
            project_id=project_id,
            webhook=webhook,
        )
        return Job.from_json(self._create(call))

    def get(self, job_id: str) -> Job:
        return Job.from_json(self._call(protocol.get_call(job_id)))

    def list(self, **filters: Any) -> JobPage:
        """Jobs newest first; filters: status, pipeline, project_id, limit, cursor."""
        return JobPage.from_json(self._call(protocol.list_call(filters)))

    def cancel(self, job_id: str) -> Job:
        """Ask for the job to stop; `Conflict` when it has already ended."""
        return Job.from_json(self._call(protocol.cancel_call(job_id)))

    def events(
        self, job_id: str, after: str | None = None, *, timeout: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """The job's events after `after` (all of them by default), each once, in
        order, until its terminal event. SSE, resumed from the last id after 1, 2, 4 …
        16 s (with jitter), or after the `Retry-After` of a 429 or 503 (capped); a
        stream silent for twice the keepalive is dead; when SSE keeps failing it falls
        back to long-poll, then to polling, and tries SSE again later. With `timeout`,
        raises `Timeout` when the terminal event has not come. Any number of jobs can be
        followed at once (one thread each): streams have a pool of their own, with no
        bound, beside the calls'. Each event is its JSON object; `JobStatusEvent`
        reads a `job-status` one typed, a requeue's `reason` and `max_attempts` too."""
        feed = self._feed(job_id, after, timeout)
        while not feed.done:
            transport = feed.begin()
            try:
                if transport is Transport.SSE:
                    yield from self._sse_attempt(feed)
                elif transport is Transport.LONG_POLL:
                    yield from self._poll_attempt(feed, feed.long_poll_wait())
                else:
                    yield from self._snapshot_attempt(feed)
            except RETRYABLE as error:
                if isinstance(error, httpx.TimeoutException):
                    feed.check_deadline()
                pause = feed.failed(retry_after_of(error), answered=server_answered(error))
            else:
                if feed.done:
                    return
                pause = feed.succeeded()
            time.sleep(pause)

    def _sse_attempt(self, feed: EventFeed) -> Iterator[dict[str, Any]]:
        with connect_sse(
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
                response.read()
                raise _failure(response)
            for message in source.iter_sse():
                event = feed.sse_event(message)
                if event is not None:
                    yield event
                    if feed.done:
                        return

    def _poll_attempt(self, feed: EventFeed, wait: float) -> Iterator[dict[str, Any]]:
        response = self._streams.get(
            feed.poll_path(),
            params=feed.poll_params(wait),
            timeout=httpx.Timeout(feed.request_timeout(), read=feed.long_poll_read_timeout(wait)),
        )
        if response.status_code >= 400:
            raise _failure(response)
        yield from feed.poll_events(response.json())

    def _snapshot_attempt(self, feed: EventFeed) -> Iterator[dict[str, Any]]:
        response = self._streams.get(feed.snapshot_path(), timeout=feed.request_timeout())
        if response.status_code >= 400:
            raise _failure(response)
        if feed.snapshot_has_news(response.json()):
            yield from self._poll_attempt(feed, 0.0)

    def wait(self, job_id: str, timeout: float) -> Job:
        """The job once it has ended, following its events; `Timeout` after `timeout` s."""
        job = self.get(job_id)
        if job.is_terminal:
            return job
        for _ in self.events(job_id, after=job.last_event_id, timeout=timeout):
            pass
        return self.get(job_id)

    def download(self, artifact: Artifact, dest: str | os.PathLike[str]) -> Path:
        """Save an artifact's bytes to `dest` (a file, or a folder to put it in),
        resuming a partial download; raises `DownloadFailed` when the bytes do not
        match the artifact's size and sha256. Returns the file's path."""
        plan = protocol.DownloadPlan(artifact, dest)
        resends = self._resends(Call("GET", artifact.url))
        while (pause := self._download_once(plan, resends)) is not None:
            time.sleep(pause)  # a 429 or 503's Retry-After, as any GET
        return plan.finish()

    def _download_once(
        self, plan: protocol.DownloadPlan, resends: protocol.Resends
    ) -> float | None:
        """One try at the bytes: None once they are in `plan.partial`, else the pause
        before the next try."""
        url = plan.artifact.url
        try:
            with self._http.stream(
                "GET", url, headers=plan.headers(), timeout=httpx.Timeout(30.0)
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    pause = resends.after_answer(response)
                    if pause is not None:
                        return pause
                with plan.partial.open(plan.open_mode(response)) as handle:
                    for chunk in response.iter_bytes(protocol.DOWNLOAD_CHUNK_BYTES):
                        handle.write(chunk)
        except httpx.TransportError as error:
            raise TransportFailed(f"GET {url}: {error}") from error
        return None

    def create_project(
        self,
        clips: Sequence[Mapping[str, Any]],
        name: str | None = None,
        webhook: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Project:
        """Create a project of clips, each `{pipeline, input}`; resent like `submit`."""
        call = protocol.create_project_call(
            clips, name=name, webhook=webhook, idempotency_key=idempotency_key
        )
        return Project.from_json(self._create(call))

    def get_project(self, project_id: str) -> Project:
        return Project.from_json(self._call(protocol.get_project_call(project_id)))

    def cancel_project(self, project_id: str) -> Project:
        return Project.from_json(self._call(protocol.cancel_project_call(project_id)))

    def health(self) -> dict[str, Any]:
        health: dict[str, Any] = self._call(protocol.health_call())
        return health
