"""The project calls of SPEC §3: create, get, cancel. Streams are in `streams.py`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from genwire.api.answers import ProjectSnapshot
from genwire.api.bodies import CreateProjectBody, parse_create_project
from genwire.api.jobs import idempotency_key_of
from genwire.api.limits import creations_of
from genwire.api.openapi import JSON_BODY_PROBLEMS, Answer, Operation, Param, documented
from genwire.api.requests import path_id, projects_of, read_json_object, settings_of, tenant_of
from genwire.api.responses import JsonResponse
from genwire.api.tokens import job_snapshot
from genwire.models import JsonObject
from genwire.projects import project_snapshot
from genwire.store.projects import ProjectView
from genwire.webhooks import refuse_private_webhook


@documented(
    Operation(
        "Queue a project: its clips are jobs",
        "projects",
        {
            201: Answer("Queued: the project's snapshot", ProjectSnapshot, headers=("Location",)),
            200: Answer(
                "The project of an earlier create with this Idempotency-Key and body",
                ProjectSnapshot,
                headers=("Location",),
            ),
        },
        {
            **JSON_BODY_PROBLEMS,
            400: (*JSON_BODY_PROBLEMS[400], "bad-idempotency-key"),
            422: ("validation-error", "provider-not-configured", "idempotency-key-reused"),
            429: ("rate-limited", "too-many-queued"),
        },
        body=CreateProjectBody,
        params=(Param("Idempotency-Key", "header", "the same key and body give the same project"),),
    )
)
async def create_project(request: Request) -> Response:
    tenant = tenant_of(request)
    key = idempotency_key_of(request)
    create = parse_create_project(await read_json_object(request))
    refuse_private_webhook(create.webhook, settings_of(request).allow_private_webhooks)
    creations_of(request).take(tenant, len(create.clips))
    view, created = await projects_of(request).create_project(tenant, create, key)
    return JsonResponse(
        _snapshot(request, view),
        status_code=201 if created else 200,
        headers={"Location": f"/api/projects/{view.project.id}"},
    )


@documented(
    Operation(
        "A project's snapshot, with its clips",
        "projects",
        {200: Answer("The project", ProjectSnapshot)},
        {404: ("not-found",)},
        params=(Param("project_id", "path", "a project's id"),),
    )
)
async def get_project(request: Request) -> Response:
    tenant = tenant_of(request)
    project_id = path_id(request, "project_id", "prj")
    view = await projects_of(request).get_project(project_id, tenant)
    return JsonResponse(_snapshot(request, view))


@documented(
    Operation(
        "Cancel every clip not yet ended",
        "projects",
        {202: Answer("Asked: the project's snapshot", ProjectSnapshot)},
        {404: ("not-found",), 409: ("conflict",)},
        params=(Param("project_id", "path", "a project's id"),),
    )
)
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
