"""The moves of a project inside a write transaction: its clips' counts and the
`project-status` / `project-completed` events a clip's end appends (SPEC §3)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from genwire.models import EventType, Job, JobStatus, JsonObject
from genwire.store import WriteTx

#: A clip's result until it succeeds (SPEC §3 `clips`).
PENDING = "pending"


@dataclass(frozen=True)
class ClipCounts:
    """The counts of a project, in its snapshot and in its events."""

    total_clips: int
    completed: int  #: succeeded
    pending: int  #: queued or running
    failed: int
    cancelled: int

    @classmethod
    def of(cls, by_status: Mapping[JobStatus, int]) -> ClipCounts:
        return cls(
            total_clips=sum(by_status.values()),
            completed=by_status.get(JobStatus.SUCCEEDED, 0),
            pending=by_status.get(JobStatus.QUEUED, 0) + by_status.get(JobStatus.RUNNING, 0),
            failed=by_status.get(JobStatus.FAILED, 0),
            cancelled=by_status.get(JobStatus.CANCELLED, 0),
        )

    @classmethod
    def of_clips(cls, clips: Sequence[Job]) -> ClipCounts:
        return cls.of(Counter(clip.status for clip in clips))

    @property
    def all_complete(self) -> bool:
        return self.pending == 0

    def to_json(self) -> JsonObject:
        return {
            "total_clips": self.total_clips,
            "completed": self.completed,
            "pending": self.pending,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "all_complete": self.all_complete,
        }


def main_file_url(clip: Job) -> str:
    """The URL of a succeeded clip's result: its first video or image, else its first
    file, else the clip itself (a pipeline whose result is its output JSON)."""
    media = [item for item in clip.artifacts if item.type.startswith(("video/", "image/"))]
    chosen = media or clip.artifacts
    return chosen[0].url if chosen else f"/api/jobs/{clip.id}"


def clip_result(clip: Job) -> str:
    """A clip in a project's `clips` map: its file's URL, or "pending" | "failed" | "cancelled"."""
    if clip.status is JobStatus.SUCCEEDED:
        return main_file_url(clip)
    return clip.status.value if clip.status.is_terminal else PENDING


def clip_ended(tx: WriteTx, clip: Job, now: datetime) -> None:
    """Tell the clip's project, if it has one, that the clip reached a terminal status.

    Runs after the clip's terminal event is appended and its snapshot saved, so the
    counts include it.
    """
    if clip.project_id is None:
        return
    project = tx.lock_project(clip.project_id, clip.tenant)
    if project is None:  # a free-form project_id given to POST /jobs
        return
    counts = ClipCounts.of(tx.clip_counts(project))
    tx.append_project_event(project, EventType.PROJECT_STATUS, counts.to_json())
    if counts.all_complete and project.completed_at is None:
        project.completed_at = now
        results = {item.id: clip_result(item) for item in tx.clips_of(project)}
        tx.append_project_event(
            project, EventType.PROJECT_COMPLETED, {**counts.to_json(), "clips": results}
        )
    tx.save_project(project)
