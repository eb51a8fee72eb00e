"""The job calls of SPEC §3: create, get, list, cancel, and the pipelines list."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from genwire.api.problems import BadRequest
from genwire.api.requests import int_param, read_json_object, tenant_of
from genwire.api.responses import JsonResponse
from genwire.errors import FieldError, InvalidInput
from genwire.models import JobStatus
from genwire.service import CreateJob, JobService

MAX_WAIT_S = 60
MAX_IDEMPOTENCY_KEY_LENGTH = 255
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*\"?(\d+)\"?", re.IGNORECASE)


def service_of(request: Request) -> JobService:
    service: JobService = request.app.state.service
    return service


async def list_pipelines(request: Request) -> Response:
    tenant_of(request)  # with keys configured, only their holders may look
    items = [pipeline.describe() for pipeline in service_of(request).registry]
    return JsonResponse({"items": items})


def parse_create(body: dict[str, Any]) -> CreateJob:
    """Check the shape of a create body; the pipeline checks its own input later."""
    problems: list[FieldError] = []
    pipeline = body.get("pipeline")
    if not isinstance(pipeline, str) or not pipeline:
        problems.append(FieldError("pipeline", "required, a pipeline name"))
    job_input = body.get("input", {})
    if not isinstance(job_input, dict):
        problems.append(FieldError("input", "must be a JSON object"))
    project_id = body.get("project_id")
    if project_id is not None and not isinstance(project_id, str):
        problems.append(FieldError("project_id", "must be a string"))
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        problems.append(FieldError("metadata", "must be a JSON object"))
    webhook = body.get("webhook")
    if webhook is not None and not (
        isinstance(webhook, dict) and isinstance(webhook.get("url"), str)
    ):
        problems.append(FieldError("webhook", "must be an object with a url"))
    unknown = sorted(set(body) - {"pipeline", "input", "project_id", "metadata", "webhook"})
    problems.extend(FieldError(name, "unknown field") for name in unknown)
    if problems:
        raise InvalidInput("the request body does not match POST /api/jobs", problems)
    assert isinstance(pipeline, str)
    assert isinstance(job_input, dict)
    return CreateJob(pipeline, job_input, project_id, webhook, metadata)


def requested_wait(request: Request) -> int | None:
    """Seconds asked for by `Prefer: wait=N`, capped at 60; None when not asked."""
    match = _PREFER_WAIT.search(request.headers.get("prefer", ""))
    if match is None:
        return None
    return max(1, min(int(match.group(1)), MAX_WAIT_S))


async def create_job(request: Request) -> Response:
    tenant = tenant_of(request)
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise BadRequest(
            f"Idempotency-Key must be 1–{MAX_IDEMPOTENCY_KEY_LENGTH} characters",
            code="bad-idempotency-key",
        )
    create = parse_create(await read_json_object(request))
    service = service_of(request)
    job, created = await service.create_job(tenant, create, key)
    headers = {"Location": f"/api/jobs/{job.id}"}
    wait = requested_wait(request)
    if wait is not None:
        job = await service.wait_until_ended(job.id, wait)
        headers["Preference-Applied"] = f"wait={wait}"
    return JsonResponse(job.to_json(), status_code=201 if created else 200, headers=headers)


async def get_job(request: Request) -> Response:
    job = await service_of(request).get_job(request.path_params["job_id"], tenant_of(request))
    return JsonResponse(job.to_json())


async def list_jobs(request: Request) -> Response:
    status = request.query_params.get("status") or None
    if status is not None and status not in set(JobStatus):
        known = ", ".join(item.value for item in JobStatus)
        raise BadRequest(f"unknown status {status!r}; one of {known}", code="bad-query")
    page = await service_of(request).list_jobs(
        tenant_of(request),
        status=status,
        pipeline=request.query_params.get("pipeline") or None,
        project_id=request.query_params.get("project_id") or None,
        limit=int_param(request, "limit", 20, 1, 100),
        cursor=request.query_params.get("cursor") or None,
    )
    return JsonResponse(
        {"items": [job.to_json() for job in page.items], "next_cursor": page.next_cursor}
    )


async def cancel_job(request: Request) -> Response:
    job = await service_of(request).request_cancel(
        request.path_params["job_id"], tenant_of(request)
    )
    return JsonResponse(job.to_json(), status_code=202)


routes = [
    Route("/pipelines", list_pipelines, methods=["GET"]),
    Route("/jobs", create_job, methods=["POST"]),
    Route("/jobs", list_jobs, methods=["GET"]),
    Route("/jobs/{job_id}", get_job, methods=["GET"]),
    Route("/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
]
