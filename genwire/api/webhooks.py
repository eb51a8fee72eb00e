"""`GET /api/jobs/{id}/webhooks`: a job's webhook deliveries and their attempts (SPEC §5)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from genwire.api.answers import Items
from genwire.api.openapi import Answer, Operation, Param, documented
from genwire.api.requests import path_id, service_of, tenant_of
from genwire.api.responses import JsonResponse
from genwire.models import JsonObject, format_event_id, format_time
from genwire.store.deliveries import DeliveryRecord


@documented(
    Operation(
        "A job's webhook deliveries and their attempts",
        "webhooks",
        {200: Answer("The deliveries, oldest first", Items)},
        {404: ("not-found",)},
        params=(Param("job_id", "path", "a job's id"),),
    )
)
async def list_job_webhooks(request: Request) -> Response:
    """404 for an unknown job or another tenant's, as for the job itself."""
    tenant = tenant_of(request)
    job_id = path_id(request, "job_id", "job")
    service = service_of(request)
    await service.get_job(job_id, tenant)

    records = await service.store.outbox.of_job(job_id)
    return JsonResponse({"items": [_delivery_json(record) for record in records]})


def _delivery_json(record: DeliveryRecord) -> JsonObject:
    return {
        "id": record.id,
        "event_id": format_event_id(record.event_seq),
        "event_type": record.event_type,
        "url": record.url,
        "status": record.status.value,
        "attempts": record.attempts,
        "next_attempt_at": format_time(record.next_attempt_at),
        "created_at": format_time(record.created_at),
        "finished_at": format_time(record.finished_at),
        "attempts_log": [
            {
                "attempted_at": format_time(attempt.attempted_at),
                "status_code": attempt.status_code,
                "error": attempt.error,
                "duration_ms": attempt.duration_ms,
            }
            for attempt in record.attempts_log
        ],
    }


routes = [Route("/jobs/{job_id}/webhooks", list_job_webhooks, methods=["GET"])]
