"""`/healthz` at the root, outside `/api` (SPEC §3)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from genwire import __version__
from genwire.api.jobs import service_of
from genwire.api.responses import JsonResponse


async def healthz(request: Request) -> Response:
    service = service_of(request)
    try:
        counts = await service.store.count_by_status()
    except Exception as error:
        return JsonResponse(
            {"status": "error", "version": __version__, "database": str(error)}, status_code=503
        )
    pool = request.app.state.pool
    return JsonResponse(
        {
            "status": "ok",
            "version": __version__,
            "database": "ok",
            "workers": pool.settings.concurrency if pool else 0,
            "jobs": counts,
        }
    )


routes = [Route("/healthz", healthz, methods=["GET"])]
