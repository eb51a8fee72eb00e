"""Projects in the store: rows, and the reads of a project with its clips.

Plain functions of one connection: `SqlStore.read(fn)` runs a read whole (one snapshot
for the project and its clips), and `WriteTx` runs the same statements inside a
write transaction. A clip is a job whose `project_id` names the project; only the
project's own tenant's jobs count as its clips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from genwire.models import Artifact, Job, JobStatus, Project
from genwire.store import rows, schema

projects = schema.projects
jobs = schema.jobs
artifacts = schema.artifacts

GET_PROJECT = sa.select(projects).where(
    projects.c.id == sa.bindparam("project_id"), projects.c.tenant == sa.bindparam("tenant")
)
LOCK_PROJECT = GET_PROJECT.with_for_update()
SAVE_PROJECT = (
    sa.update(projects)
    .where(projects.c.id == sa.bindparam("project_id"))
    .values(
        completed_at=sa.bindparam("v_completed_at", type_=projects.c.completed_at.type),
        last_event_seq=sa.bindparam("v_last_event_seq"),
    )
)
_OF_PROJECT = (
    jobs.c.project_id == sa.bindparam("project_id"),
    jobs.c.tenant == sa.bindparam("tenant"),
)
CLIP_COUNTS = sa.select(jobs.c.status, sa.func.count()).where(*_OF_PROJECT).group_by(jobs.c.status)
CLIPS = sa.select(jobs).where(*_OF_PROJECT).order_by(jobs.c.id)
#: The files of each clip's current attempt, in the order they were made.
CLIP_ARTIFACTS = (
    sa.select(artifacts)
    .join(jobs, sa.and_(jobs.c.id == artifacts.c.job_id, jobs.c.attempt == artifacts.c.attempt))
    .where(*_OF_PROJECT)
    .order_by(artifacts.c.created_at, artifacts.c.id)
)


@dataclass
class ProjectView:
    """A project and its clips, read together."""

    project: Project
    #: oldest first, each with the artifacts of its current attempt and, while
    #: queued, its queue position
    clips: list[Job]


def project_values(project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "tenant": project.tenant,
        "name": project.name,
        "webhook": project.webhook,
        "created_at": project.created_at,
        "completed_at": project.completed_at,
        "last_event_seq": project.last_event_seq,
    }


def project_from_row(row: RowMapping) -> Project:
    return Project(
        id=row["id"],
        tenant=row["tenant"],
        name=row["name"],
        webhook=row["webhook"],
        created_at=row["created_at"],
        completed_at=row["completed_at"],
        last_event_seq=int(row["last_event_seq"]),
    )


def insert_project(connection: Connection, project: Project) -> None:
    connection.execute(sa.insert(projects).values(**project_values(project)))


def find_project(
    connection: Connection, project_id: str, tenant: str, *, lock: bool = False
) -> Project | None:
    statement = LOCK_PROJECT if lock else GET_PROJECT
    params = {"project_id": project_id, "tenant": tenant}
    row = connection.execute(statement, params).mappings().first()
    return project_from_row(row) if row else None


def save_project(connection: Connection, project: Project) -> None:
    """Write back what changes after creation: completion and the last event."""
    connection.execute(
        SAVE_PROJECT,
        {
            "project_id": project.id,
            "v_completed_at": project.completed_at,
            "v_last_event_seq": project.last_event_seq,
        },
    )


def clip_counts(connection: Connection, project: Project) -> dict[JobStatus, int]:
    """How many of the project's clips have each status."""
    result = connection.execute(CLIP_COUNTS, {"project_id": project.id, "tenant": project.tenant})
    return {JobStatus(status): int(count) for status, count in result}


def clips_of(connection: Connection, project: Project) -> list[Job]:
    """The project's clips, oldest first, with their current artifacts and queue positions."""
    params = {"project_id": project.id, "tenant": project.tenant}
    clips = [rows.job_from_row(row) for row in connection.execute(CLIPS, params).mappings()]
    by_job: dict[str, list[Artifact]] = {}
    for row in connection.execute(CLIP_ARTIFACTS, params).mappings():
        by_job.setdefault(row["job_id"], []).append(rows.artifact_from_row(row))
    for clip in clips:
        clip.artifacts = by_job.get(clip.id, [])
        if clip.status is JobStatus.QUEUED:
            clip.queue_position = int(
                connection.execute(
                    rows.JOBS_AHEAD, {"job_id": clip.id, "tenant": clip.tenant}
                ).scalar_one()
            )
    return clips


def read_project(connection: Connection, project_id: str, tenant: str) -> ProjectView | None:
    """The tenant's project with its clips, or None when the tenant has no such project."""
    project = find_project(connection, project_id, tenant)
    if project is None:
        return None
    return ProjectView(project, clips_of(connection, project))
