"""`/healthz` at the root, outside `/api` (SPEC §3): liveness, nothing more."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from genwire import __version__
from genwire.api.problems import ProblemResponse
from genwire.api.requests import service_of
from genwire.api.responses import JsonResponse

log = logging.getLogger("genwire.api")


async def healthz(request: Request) -> Response:
    """200 while the database answers a trivial query; 503 when it does not.

    A bus that is down leaves it 200, `"status": "degraded"`: streams stay correct
    on the feeds' backstop, only slower, and a balancer that took every node out
    for it would turn a slow deployment into a dead one. The database's own error
    goes to the log, never to the (unauthenticated) caller.
    """
    service = service_of(request)
    store = service.store
    try:
        await store.ping()
    except Exception:
        log.warning("health check: the database does not answer", exc_info=True)
        return ProblemResponse(
            503, "database-unavailable", "Database unavailable", "the database does not answer"
        )
    announced = service.bus.announced
    if announced is None:
        return JsonResponse({"status": "ok", "version": __version__, "bus": "in-process"})
    bus = "connected" if announced.connected else "unreachable"
    status = "ok" if announced.connected else "degraded"
    return JsonResponse({"status": status, "version": __version__, "bus": bus})


routes = [Route("/healthz", healthz, methods=["GET"])]
