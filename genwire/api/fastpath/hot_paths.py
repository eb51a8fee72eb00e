"""The delivery routes every poller asks for at every answer, served in one step.

A long-poll answer is one request per poller per answer, so whatever a request
costs is paid at every event. Through Starlette a request walks its middlewares,
its routes in order, a mount and a route wrapper before reaching the endpoint
(about a third of a long-poll's time on the loop). These routes are few and their
paths are fixed, so `HotPaths` finds their endpoint from the path alone and calls
it with the same `Request` and the same problem answers as the routed path. It
steps aside when the app has CORS middleware (those answers need its headers):
Starlette's routes for the same paths then answer, unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from genwire.api.fastpath.connection import route_path
from genwire.api.problems import problem_from_error
from genwire.errors import ServiceError

Endpoint = Callable[[Request], Awaitable[Response]]
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]

JOBS_PREFIX = "/api/jobs/"


class HotPaths:
    """`GET /api/jobs/{job_id}/<suffix>` and exact paths, to their endpoints."""

    def __init__(
        self,
        job_routes: dict[str, Endpoint],
        exact: dict[str, Endpoint],
        unexpected: ErrorHandler,
    ) -> None:
        """`unexpected`: the app's answer to an error that is not a ServiceError."""
        self._job_routes = {f"/{suffix}": endpoint for suffix, endpoint in job_routes.items()}
        self._exact = exact
        self._unexpected = unexpected

    def match(self, scope: Scope) -> tuple[Endpoint, dict[str, str]] | None:
        if scope["method"] != "GET":
            return None
        path = route_path(scope)  # as Starlette routes: without the root path
        endpoint = self._exact.get(path)
        if endpoint is not None:
            return endpoint, {}
        if not path.startswith(JOBS_PREFIX):
            return None
        job_id, slash, suffix = path[len(JOBS_PREFIX) :].partition("/")
        endpoint = self._job_routes.get(slash + suffix)
        if endpoint is None or not job_id:
            return None
        return endpoint, {"job_id": job_id}

    async def serve(
        self,
        app: ASGIApp,
        matched: tuple[Endpoint, dict[str, str]],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """What Starlette would do for this route: the endpoint, its errors as problems."""
        endpoint, path_params = matched
        scope["app"] = app
        scope["path_params"] = path_params
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except ServiceError as error:
            response = problem_from_error(error)
        except Exception as error:
            response = await self._unexpected(request, error)
        await response(scope, receive, send)
