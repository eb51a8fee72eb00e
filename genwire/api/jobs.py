"""The job calls of SPEC §3: create, get, list, cancel, and the pipelines list."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from genwire.api.answers import JobPage, JobSnapshot, PipelineList
from genwire.api.bodies import CreateJobBody, parse_create_job
from genwire.api.limits import creations_of
from genwire.api.openapi import JSON_BODY_PROBLEMS, Answer, Operation, Param, documented
from genwire.api.requests import (
    MAX_PIPELINE_NAME_LENGTH,
    MAX_PROJECT_ID_LENGTH,
    int_param,
    is_id,
    name_param,
    path_id,
    read_json_object,
    service_of,
    settings_of,
    tenant_of,
)
from genwire.api.responses import JsonResponse
from genwire.api.tokens import job_snapshot
from genwire.errors import BadRequest
from genwire.models import JobStatus
from genwire.providers.remote import PROVIDER_NAMES
from genwire.webhooks import refuse_private_webhook

MAX_WAIT_S = 60
MAX_IDEMPOTENCY_KEY_LENGTH = 255
#: Characters of an Idempotency-Key: no space, control or non-ASCII.
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
#: A list item of a header (RFC 9110 §5.6.1) or a parameter of one: quoted strings
#: may hold the separator.
_LIST_ITEM = re.compile(r'(?:[^,"]|"(?:[^"\\]|\\.)*")+')
_PARAMETER = re.compile(r'(?:[^;"]|"(?:[^"\\]|\\.)*")+')
_WAIT_SECONDS = re.compile(r"[0-9]{1,3}")


@documented(
    Operation(
        "The pipelines, their phases and the JSON Schema of their input",
        "jobs",
        {200: Answer("The pipelines", PipelineList)},
    )
)
async def list_pipelines(request: Request) -> Response:
    tenant_of(request)  # with keys configured, only their holders may look
    service = service_of(request)
    configured = service.configured_providers
    items = [
        {**pipeline.describe(), "available": set(pipeline.providers) <= configured}
        for pipeline in service.registry
    ]
    providers = {name: name in configured for name in PROVIDER_NAMES}
    return JsonResponse({"items": items, "providers": providers})


def requested_wait(request: Request) -> int | None:
    """Seconds asked for by `Prefer: wait=N` (RFC 7240 §4.3), capped at 60.

    None when not asked for, or asked for with a value that is not 1–3 digits or is
    below 1: the preference is then ignored. Only the first `wait` counts (§2).
    """
    header = ",".join(request.headers.getlist("prefer"))
    for preference in _LIST_ITEM.findall(header):
        first = _PARAMETER.match(preference)
        name, _, value = (first.group() if first else "").partition("=")
        if name.strip().lower() != "wait":
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if not _WAIT_SECONDS.fullmatch(value) or int(value) < 1:
            return None
        return min(int(value), MAX_WAIT_S)
    return None


def idempotency_key_of(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not (
        len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH and _VISIBLE_ASCII.fullmatch(key)
    ):
        raise BadRequest(
            f"Idempotency-Key must be 1–{MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters",
            code="bad-idempotency-key",
        )
    return key


@documented(
    Operation(
        "Queue a job",
        "jobs",
        {
            201: Answer(
                "Queued: the job's snapshot (as it is when the job ends or N s pass, with Prefer: wait=N)",
                JobSnapshot,
                headers=("Location", "Preference-Applied"),
            ),
            200: Answer(
                "The job of an earlier create with this Idempotency-Key and body",
                JobSnapshot,
                headers=("Location", "Preference-Applied"),
            ),
        },
        {
            **JSON_BODY_PROBLEMS,
            400: (*JSON_BODY_PROBLEMS[400], "bad-idempotency-key"),
            422: ("validation-error", "provider-not-configured", "idempotency-key-reused"),
            429: ("rate-limited", "too-many-queued"),
        },
        body=CreateJobBody,
        params=(
            Param(
                "Idempotency-Key",
                "header",
                "the same key and body give the same job (1–255 visible ASCII)",
            ),
            Param("Prefer", "header", "wait=N (1–60): answer when the job ends or after N s"),
        ),
    )
)
async def create_job(request: Request) -> Response:
    tenant = tenant_of(request)
    key = idempotency_key_of(request)
    create = parse_create_job(await read_json_object(request))
    refuse_private_webhook(create.webhook, settings_of(request).allow_private_webhooks)
    creations_of(request).take(tenant)
    service = service_of(request)
    job, created = await service.create_job(tenant, create, key)
    headers = {"Location": f"/api/jobs/{job.id}"}
    wait = requested_wait(request)
    if wait is not None:
        job = await service.wait_until_ended(job.id, wait)
        headers["Preference-Applied"] = f"wait={wait}"
    return JsonResponse(
        job_snapshot(request, job), status_code=201 if created else 200, headers=headers
    )


@documented(
    Operation(
        "A job's snapshot",
        "jobs",
        {200: Answer("The job", JobSnapshot)},
        {404: ("not-found",)},
        params=(Param("job_id", "path", "a job's id"),),
    )
)
async def get_job(request: Request) -> Response:
    tenant = tenant_of(request)
    job = await service_of(request).get_job(path_id(request, "job_id", "job"), tenant)
    return JsonResponse(job_snapshot(request, job))


@documented(
    Operation(
        "The caller's jobs, newest first",
        "jobs",
        {200: Answer("A page of jobs", JobPage)},
        {400: ("bad-query",)},
        params=(
            Param(
                "status",
                "query",
                "only jobs of this status",
                {"enum": [status.value for status in JobStatus]},
            ),
            Param("pipeline", "query", "only jobs of this pipeline"),
            Param("project_id", "query", "only clips of this project"),
            Param(
                "limit",
                "query",
                "jobs per page",
                {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
            ),
            Param("cursor", "query", "the next_cursor of the previous page"),
        ),
    )
)
async def list_jobs(request: Request) -> Response:
    tenant = tenant_of(request)
    status = request.query_params.get("status") or None
    if status is not None and status not in set(JobStatus):
        known = ", ".join(item.value for item in JobStatus)
        raise BadRequest(f"unknown status {status!r}; one of {known}", code="bad-query")
    cursor = request.query_params.get("cursor") or None
    if cursor is not None and not is_id(cursor, "job"):
        raise BadRequest(
            "query parameter 'cursor' must be the next_cursor of a previous page", code="bad-query"
        )
    page = await service_of(request).list_jobs(
        tenant,
        status=status,
        pipeline=name_param(request, "pipeline", MAX_PIPELINE_NAME_LENGTH),
        project_id=name_param(request, "project_id", MAX_PROJECT_ID_LENGTH),
        limit=int_param(request, "limit", 20, 1, 100),
        cursor=cursor,
    )
    return JsonResponse(
        {
            "items": [job_snapshot(request, job) for job in page.items],
            "next_cursor": page.next_cursor,
        }
    )


@documented(
    Operation(
        "Ask a job to stop (idempotent)",
        "jobs",
        {202: Answer("Asked: the job's snapshot", JobSnapshot)},
        {404: ("not-found",), 409: ("conflict",)},
        params=(Param("job_id", "path", "a job's id"),),
    )
)
async def cancel_job(request: Request) -> Response:
    tenant = tenant_of(request)
    job_id = path_id(request, "job_id", "job")
    job = await service_of(request).request_cancel(job_id, tenant)
    return JsonResponse(job_snapshot(request, job), status_code=202)


routes = [
    Route("/pipelines", list_pipelines, methods=["GET"]),
    Route("/jobs", create_job, methods=["POST"]),
    Route("/jobs", list_jobs, methods=["GET"]),
    Route("/jobs/{job_id}", get_job, methods=["GET"]),
    Route("/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
]
