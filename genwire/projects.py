"""Projects (SPEC §3): a batch of clips, each clip a job of its own.

A project is created with all its clips in one transaction. After that it changes
only when a clip ends: `transitions.projects.clip_ended` runs in the transaction of
the clip's terminal event, so each `project-status` follows the event that changed
the counts, and `project-completed` is appended exactly once, right after the
terminal event of the last clip to end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

from genwire import transitions
from genwire.errors import FieldError, InputRejected, StateConflict, UnknownId
from genwire.ids import new_id
from genwire.models import (
    EventType,
    Job,
    JsonObject,
    Project,
    format_event_id,
    format_time,
    utc_now,
)
from genwire.service import CreateJob, JobService, request_fingerprint
from genwire.store import WriteTx
from genwire.store.projects import ProjectView
from genwire.transitions.projects import ClipCounts, clip_result

MAX_CLIPS = 100


@dataclass(frozen=True)
class CreateProject:
    """A validated-shape create request (SPEC §3 `POST /projects`)."""

    clips: Sequence[CreateJob]
    name: str | None = None
    webhook: JsonObject | None = None


def project_snapshot(view: ProjectView) -> JsonObject:
    """The project as `GET /api/projects/{id}` shows it.

    `last_event_id` is the newest event of the project stream (its own events and
    its clips'), read in the same snapshot, so streaming from it misses nothing.
    """
    project = view.project
    last_seq = max([project.last_event_seq, *(clip.last_event_seq for clip in view.clips)])
    base = f"/api/projects/{project.id}"
    return {
        "id": project.id,
        "name": project.name,
        **ClipCounts.of_clips(view.clips).to_json(),
        "clips": {clip.id: clip_result(clip) for clip in view.clips},
        "jobs": [clip.to_json() for clip in view.clips],
        "created_at": format_time(project.created_at),
        "completed_at": format_time(project.completed_at),
        "last_event_id": format_event_id(last_seq),
        "urls": {"self": base, "events": f"{base}/events", "cancel": f"{base}/cancel"},
    }


class ProjectService:
    """Create, read and cancel projects; every change of a clip goes through `jobs`."""

    def __init__(self, jobs: JobService) -> None:
        self.jobs = jobs

    async def create_project(
        self, tenant: str, request: CreateProject, idempotency_key: str | None = None
    ) -> tuple[ProjectView, bool]:
        """Queue every clip and the project in one transaction; returns the project and
        whether it was created (False: an idempotent replay).

        Every clip is checked before anything is written: one bad clip refuses the
        whole project, and the errors name it (`clips[3].input.prompt`).
        """
        if not 1 <= len(request.clips) <= MAX_CLIPS:
            raise InputRejected(
                f"a project has 1–{MAX_CLIPS} clips",
                [FieldError("clips", f"must hold 1–{MAX_CLIPS} clips")],
            )
        project = Project(
            id=new_id("prj"),
            tenant=tenant,
            name=request.name,
            webhook=request.webhook,
            created_at=utc_now(),
            completed_at=None,
            last_event_seq=0,
        )
        clips = self._queued_clips(tenant, project.id, request.clips)
        fingerprint = request_fingerprint(
            {
                "project": {
                    "name": project.name,
                    "webhook": project.webhook,
                    "clips": [
                        {"pipeline": clip.pipeline, "input": clip.input, "metadata": clip.metadata}
                        for clip in clips
                    ],
                }
            }
        )

        def create(tx: WriteTx) -> str | None:
            """None when created; for a replayed key, the first clip of the earlier project."""
            replayed = transitions.replay_of(tx, tenant, idempotency_key, fingerprint)
            if replayed is not None:
                return replayed
            self.jobs.check_queue_room(tx, tenant, len(clips))
            for clip in clips:
                tx.insert_job(clip)
                clip.queue_position = transitions.append_status(tx, clip)
            counts = ClipCounts.of_clips(clips)
            tx.append_project_event(project, EventType.PROJECT_STATUS, counts.to_json())
            tx.insert_project(project)
            if idempotency_key is not None:
                # The key table refers to jobs: a project's key names its first clip.
                tx.remember_idempotent(tenant, idempotency_key, fingerprint, clips[0].id)
            return None

        replayed = await self.jobs.change(create)
        if replayed is None:
            return ProjectView(project, clips), True
        first_clip = await self.jobs.get_job(replayed, tenant)
        # A job's fingerprint never equals a project's, so the key was a project's.
        assert first_clip.project_id is not None
        return await self.get_project(first_clip.project_id, tenant), False

    def _queued_clips(
        self, tenant: str, project_id: str, requests: Sequence[CreateJob]
    ) -> list[Job]:
        clips: list[Job] = []
        problems: list[FieldError] = []
        for index, request in enumerate(requests):
            try:
                clips.append(self.jobs.queued_job(tenant, replace(request, project_id=project_id)))
            except InputRejected as error:
                problems.extend(
                    FieldError(f"clips[{index}].{item.field}", item.message)
                    for item in error.errors
                )
        if problems:
            raise InputRejected("a clip does not match its pipeline", problems)
        return clips

    async def get_project(self, project_id: str, tenant: str) -> ProjectView:
        view = await self.jobs.store.project_view(project_id, tenant)
        if view is None:
            raise UnknownId(f"no project {project_id!r}")
        return view

    async def cancel_project(self, project_id: str, tenant: str) -> ProjectView:
        """Cancel every clip not yet ended, each as `JobService.request_cancel` does
        (queued: at once; running: its worker stops it). Idempotent while a clip is
        still pending; a project with no clip pending is a StateConflict."""
        view = await self.get_project(project_id, tenant)
        pending = [clip for clip in view.clips if not clip.status.is_terminal]
        if not pending:
            raise StateConflict(f"project {project_id} already complete")
        for clip in pending:
            with contextlib.suppress(StateConflict):  # it ended meanwhile
                await self.jobs.request_cancel(clip.id, tenant)
        return await self.get_project(project_id, tenant)
