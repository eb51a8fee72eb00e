"""The job calls of SPEC §3: create, get, list, cancel, and the pipelines list."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from genwire.api.requests import (
    MAX_PIPELINE_NAME_LENGTH,
    MAX_PROJECT_ID_LENGTH,
    int_param,
    is_id,
    is_name,
    name_param,
    path_id,
    read_json_object,
    service_of,
    settings_of,
    tenant_of,
)
from genwire.api.responses import JsonResponse
from genwire.api.tokens import job_snapshot
from genwire.errors import BadRequest, FieldError, InputRejected
from genwire.models import EventType, JobStatus
from genwire.providers.remote import PROVIDER_NAMES
from genwire.service import CreateJob
from genwire.webhooks import refuse_private_webhook

MAX_WAIT_S = 60
MAX_IDEMPOTENCY_KEY_LENGTH = 255
MAX_WEBHOOK_URL_LENGTH = 2048
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_KEYS = 64
#: Characters of an Idempotency-Key and a webhook URL: no space, control or non-ASCII.
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
#: A list item of a header (RFC 9110 §5.6.1) or a parameter of one: quoted strings
#: may hold the separator.
_LIST_ITEM = re.compile(r'(?:[^,"]|"(?:[^"\\]|\\.)*")+')
_PARAMETER = re.compile(r'(?:[^;"]|"(?:[^"\\]|\\.)*")+')
_WAIT_SECONDS = re.compile(r"[0-9]{1,3}")


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
    if project_id is not None and not (
        isinstance(project_id, str) and is_name(project_id, MAX_PROJECT_ID_LENGTH)
    ):
        problems.append(
            FieldError(
                "project_id",
                f"must be a string of 1–{MAX_PROJECT_ID_LENGTH} letters, digits and _.:-",
            )
        )
    metadata = body.get("metadata")
    problems.extend(_metadata_problems(metadata))
    webhook = body.get("webhook")
    problems.extend(_webhook_problems(webhook))
    unknown = sorted(set(body) - {"pipeline", "input", "project_id", "metadata", "webhook"})
    problems.extend(FieldError(name, "unknown field") for name in unknown)
    if problems:
        raise InputRejected("the request body does not match POST /api/jobs", problems)
    assert isinstance(pipeline, str)
    assert isinstance(job_input, dict)
    return CreateJob(pipeline, job_input, project_id, webhook, metadata)


def _metadata_problems(metadata: Any) -> list[FieldError]:
    if metadata is None:
        return []
    if not isinstance(metadata, dict):
        return [FieldError("metadata", "must be a JSON object")]
    if len(metadata) > MAX_METADATA_KEYS:
        return [FieldError("metadata", f"must have at most {MAX_METADATA_KEYS} keys")]
    if len(orjson.dumps(metadata)) > MAX_METADATA_BYTES:
        return [
            FieldError("metadata", f"must encode to at most {MAX_METADATA_BYTES} bytes of JSON")
        ]
    return []


def _webhook_problems(webhook: Any) -> list[FieldError]:
    """`{url, events?}`: an absolute http(s) URL and known event types (SPEC §5)."""
    if webhook is None:
        return []
    if not isinstance(webhook, dict):
        return [FieldError("webhook", "must be an object {url, events?}")]
    problems = [
        FieldError(f"webhook.{name}", "unknown field")
        for name in sorted(set(webhook) - {"url", "events"})
    ]
    if not _is_webhook_url(webhook.get("url")):
        problems.append(
            FieldError(
                "webhook.url",
                f"required, an absolute http or https URL of at most "
                f"{MAX_WEBHOOK_URL_LENGTH} visible ASCII characters",
            )
        )
    events = webhook.get("events")
    known = [item.value for item in EventType]
    if events is not None and not (
        isinstance(events, list) and all(isinstance(item, str) and item in known for item in events)
    ):
        problems.append(
            FieldError("webhook.events", f"must be a list of event types: {', '.join(known)}")
        )
    return problems


def _is_webhook_url(url: Any) -> bool:
    if not isinstance(url, str) or len(url) > MAX_WEBHOOK_URL_LENGTH:
        return False
    if not _VISIBLE_ASCII.fullmatch(url):
        return False
    try:
        parts = urlsplit(url)
        port = parts.port  # a ValueError when not a number or out of range
    except ValueError:
        return False
    return parts.scheme in {"http", "https"} and bool(parts.hostname) and port != 0


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


async def create_job(request: Request) -> Response:
    tenant = tenant_of(request)
    key = idempotency_key_of(request)
    create = parse_create(await read_json_object(request))
    refuse_private_webhook(create.webhook, settings_of(request).allow_private_webhooks)
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


async def get_job(request: Request) -> Response:
    tenant = tenant_of(request)
    job = await service_of(request).get_job(path_id(request, "job_id", "job"), tenant)
    return JsonResponse(job_snapshot(request, job))


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
