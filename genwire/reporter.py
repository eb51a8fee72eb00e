"""The reporter of one running attempt: what its pipeline reports becomes events and
snapshot updates, each written through `JobService.change` and fenced by the
attempt's lease.

Kept apart from `service.py`: this is the worker's side of one attempt (the
`JobReporter` a pipeline's context writes through), not a change anyone may ask of
a job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from genwire import transitions
from genwire.errors import StorageUnavailable
from genwire.ids import new_id
from genwire.models import (
    Artifact,
    ErrorCode,
    EventType,
    JobProgress,
    JobStatus,
    JsonObject,
    StepState,
)
from genwire.pipelines.base import PipelineError
from genwire.store import WriteTx

if TYPE_CHECKING:
    from genwire.service import JobService

log = logging.getLogger("genwire.worker")


class AttemptReporter:
    """The `JobReporter` of one attempt: every write is fenced by the lease.

    Writes are shielded: a pipeline cancelled mid-report still gets its event
    committed and announced whole.
    """

    def __init__(self, service: JobService, job_id: str, lease: str, attempt: int = 1) -> None:
        self._service = service
        self._job_id = job_id
        self._lease = lease
        self._attempt = attempt

    async def _append(
        self, event_type: EventType, fields: JsonObject, update: Callable[[JobProgress], None]
    ) -> None:
        def append(tx: WriteTx) -> None:
            job = transitions.owned_progress(tx, self._job_id, self._lease)
            update(job)
            if event_type is EventType.STEP_STATUS or event_type is EventType.STEP_PROGRESS:
                fields["progress"] = round(job.progress, 2)
            elif event_type is EventType.JOB_STATUS:
                fields.update(phase=job.phase, progress=round(job.progress, 2))
            tx.append_event(job, event_type, fields)
            tx.save_progress(job)

        await asyncio.shield(self._service.change(append))

    async def step_status(self, phase: str, state: StepState, progress: float) -> None:
        def update(job: JobProgress) -> None:
            job.phase = phase
            job.progress = max(job.progress, progress)

        await self._append(EventType.STEP_STATUS, {"phase": phase, "state": state.value}, update)

    async def step_progress(
        self,
        phase: str,
        progress: float,
        phase_progress: float,
        message: str | None,
        eta_s: float | None,
    ) -> None:
        def update(job: JobProgress) -> None:
            job.phase = phase
            job.progress = max(job.progress, progress)
            if message is not None:
                job.message = message

        fields: JsonObject = {"phase": phase, "phase_progress": round(phase_progress, 2)}
        if message is not None:
            fields["message"] = message
        if eta_s is not None:
            fields["eta_s"] = eta_s
        await self._append(EventType.STEP_PROGRESS, fields, update)

    async def warning(self, message: str, code: str | None) -> None:
        fields: JsonObject = {"message": message}
        if code is not None:
            fields["code"] = code
        await self._append(EventType.WARNING, fields, lambda job: None)

    async def status(self, message: str, queue_position: int | None) -> None:
        def update(job: JobProgress) -> None:
            job.message = message

        fields: JsonObject = {
            "status": JobStatus.RUNNING.value,
            "message": message,
            "attempt": self._attempt,
        }
        if queue_position is not None:
            fields["queue_position"] = queue_position
        await self._append(EventType.JOB_STATUS, fields, update)

    async def artifact(self, source: Path, name: str, media_type: str | None) -> Artifact:
        return await asyncio.shield(self._store_artifact(source, name, media_type))

    async def _store_artifact(self, source: Path, name: str, media_type: str | None) -> Artifact:
        artifact_id = new_id("art")
        storage = self._service.storage
        try:
            stored = await asyncio.to_thread(
                storage.put, source, self._job_id, artifact_id, name, media_type
            )
        except StorageUnavailable as error:
            # The job fails with an error that says it may succeed when run again; a
            # release would rerun it at once, again and again while the storage is down.
            log.error("job %s: %s", self._job_id, error.message)
            raise PipelineError(
                f"the artifact storage did not take {name!r}; try again later",
                code=ErrorCode.STORAGE_UNAVAILABLE,
                retryable=True,
            ) from error
        artifact = Artifact(
            id=artifact_id,
            job_id=self._job_id,
            name=name,
            type=stored.media_type,
            size_bytes=stored.size_bytes,
            sha256=stored.sha256,
            path=stored.path,
        )

        def record(tx: WriteTx) -> None:
            job = transitions.owned(tx, self._job_id, self._lease)
            tx.insert_artifact(artifact, job)
            tx.append_event(job, EventType.ARTIFACT, {"artifact": artifact.to_json()})
            tx.save_job(job)

        try:
            await self._service.change(record)
        except BaseException:
            try:
                await asyncio.to_thread(storage.remove, stored.path)
            except StorageUnavailable as error:
                # The original error says why the job stops; a stray file harms nobody.
                log.warning("job %s: leaving %s behind: %s", self._job_id, stored.path, error)
            raise
        return artifact
