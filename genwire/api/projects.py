"""The project calls of SPEC §3: create, get, cancel. Streams are in `streams.py`."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from genwire.api.jobs import _webhook_problems, idempotency_key_of, parse_create
from genwire.api.requests import path_id, projects_of, read_json_object, settings_of, tenant_of
from genwire.api.responses import JsonResponse
from genwire.api.tokens import job_snapshot
from genwire.errors import FieldError, InputRejected
from genwire.models import JsonObject
from genwire.projects import MAX_CLIPS, CreateProject, project_snapshot
from genwire.service import CreateJob
from genwire.store.projects import ProjectView
from genwire.webhooks import refuse_private_webhook

MAX_PROJECT_NAME_LENGTH = 200
#: What a name may hold: any text but control characters (PostgreSQL refuses a NUL).
_PROJECT_NAME = re.compile(rf"[^\x00-\x1f\x7f]{{1,{MAX_PROJECT_NAME_LENGTH}}}")
#: A clip is a job without its own project or webhook: those are the project's.
_CLIP_FIELDS = frozenset({"pipeline", "input", "metadata"})


def parse_create_project(body: dict[str, Any]) -> CreateProject:
    """Check the shape of a create body; each clip's pipeline checks its input later."""
    problems: list[FieldError] = []
    name = body.get("name")
    if name is not None and not (isinstance(name, str) and _PROJECT_NAME.fullmatch(name)):
        problems.append(
            FieldError(
                "name", f"must be a string of 1–{MAX_PROJECT_NAME_LENGTH} non-control characters"
            )
        )
    clips: list[CreateJob] = []
    raw_clips = body.get("clips")
    if not isinstance(raw_clips, list) or not 1 <= len(raw_clips) <= MAX_CLIPS:
        problems.append(
            FieldError("clips", f"required, a list of 1–{MAX_CLIPS} clips {{pipeline, input}}")
        )
    else:
        for index, raw_clip in enumerate(raw_clips):
            clip, clip_problems = _parse_clip(f"clips[{index}]", raw_clip)
            problems.extend(clip_problems)
            if clip is not None:
                clips.append(clip)
    webhook = body.get("webhook")
    problems.extend(_webhook_problems(webhook))
    unknown = sorted(set(body) - {"name", "clips", "webhook"})
    problems.extend(FieldError(field, "unknown field") for field in unknown)
    if problems:
        raise InputRejected("the request body does not match POST /api/projects", problems)
    return CreateProject(clips, name, webhook)


def _parse_clip(at: str, clip: Any) -> tuple[CreateJob | None, list[FieldError]]:
    """The clip at `at` (e.g. "clips[3]"), or None and what is wrong with it."""
    if not isinstance(clip, dict):
        return None, [FieldError(at, "must be an object {pipeline, input}")]
    problems = [
        FieldError(f"{at}.{field}", "unknown field; a clip has pipeline, input and metadata")
        for field in sorted(set(clip) - _CLIP_FIELDS)
    ]
    try:
        parsed = parse_create({field: clip[field] for field in clip if field in _CLIP_FIELDS})
    except InputRejected as error:
        shape = [FieldError(f"{at}.{item.field}", item.message) for item in error.errors]
        return None, shape + problems
    return (None if problems else parsed), problems


async def create_project(request: Request) -> Response:
    tenant = tenant_of(request)
    key = idempotency_key_of(request)
    create = parse_create_project(await read_json_object(request))
    refuse_private_webhook(create.webhook, settings_of(request).allow_private_webhooks)
    view, created = await projects_of(request).create_project(tenant, create, key)
    return JsonResponse(
        _snapshot(request, view),
        status_code=201 if created else 200,
        headers={"Location": f"/api/projects/{view.project.id}"},
    )


async def get_project(request: Request) -> Response:
    tenant = tenant_of(request)
    project_id = path_id(request, "project_id", "prj")
    view = await projects_of(request).get_project(project_id, tenant)
    return JsonResponse(_snapshot(request, view))


async def cancel_project(request: Request) -> Response:
    tenant = tenant_of(request)
    project_id = path_id(request, "project_id", "prj")
    view = await projects_of(request).cancel_project(project_id, tenant)
    return JsonResponse(_snapshot(request, view), status_code=202)


routes = [
    Route("/projects", create_project, methods=["POST"]),
    Route("/projects/{project_id}", get_project, methods=["GET"]),
    Route("/projects/{project_id}/cancel", cancel_project, methods=["POST"]),
]


def _snapshot(request: Request, view: ProjectView) -> JsonObject:
    """The project, each clip with its tokened stream URLs (see `api.tokens`)."""
    return {**project_snapshot(view), "jobs": [job_snapshot(request, clip) for clip in view.clips]}
