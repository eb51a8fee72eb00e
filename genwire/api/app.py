"""The ASGI app: routes under `/api`; `/healthz`, `/metrics`, `/openapi.json` and the
pages at the root; problem+json errors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import Receive, Scope, Send

from genwire.api import (
    files,
    health,
    jobs,
    metrics,
    openapi,
    projects,
    providers,
    streams,
    web,
    webhooks,
)
from genwire.api.fastpath import HotPaths, note_cycle
from genwire.api.guard import ConnectionCensus, connection_limits
from genwire.api.limits import CreationBuckets, OpenConnections
from genwire.api.log_redaction import redact_logs
from genwire.api.problems import ProblemResponse, handle_genwire_error
from genwire.api.security import with_answer_headers
from genwire.apikeys import ApiKeys
from genwire.config import Settings
from genwire.errors import ServiceError
from genwire.locks import ProcessLock
from genwire.pipelines.base import PipelineRegistry
from genwire.projects import ProjectService
from genwire.runtime import Runtime

log = logging.getLogger("genwire.api")


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    code = {404: "not-found", 405: "method-not-allowed"}.get(error.status_code, "http-error")
    return ProblemResponse(error.status_code, code, str(error.detail), headers=error.headers)


async def _client_gone(request: Request, error: Exception) -> Response:
    """A client that closed its connection before its body's end (a dropped upload) is
    no error of the server's: one line, no traceback, and nothing made. The answer
    reaches no one (uvicorn drops what is sent on a closed connection)."""
    log.info("the client went away before its body's end: %s %s", request.method, request.url.path)
    return ProblemResponse(400, "incomplete-body", "the connection closed before the body's end")


async def _unexpected_error(request: Request, error: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return ProblemResponse(500, "internal-error", "Internal server error")


class GenwireApp(Starlette):
    """Starlette, noting uvicorn's request cycle in the scope (caught-up streams and
    polls write to its transport directly), and serving the delivery routes that
    every poller and stream asks for without its routing (`genwire.api.fastpath`).
    Every answer carries `genwire.api.security`'s headers."""

    hot_paths: HotPaths | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            note_cycle(scope, send)
            send = with_answer_headers(send)
            if self.hot_paths is not None:
                matched = self.hot_paths.match(scope)
                if matched is not None:
                    await self.hot_paths.serve(self, matched, scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


def _cors(origins: tuple[str, ...]) -> list[Middleware]:
    """Pages on these origins may use the API with `genwire.js` (docs/BROWSER.md)."""
    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(origins),
            allow_methods=["GET", "POST"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "Last-Event-ID",
                "Prefer",
            ],
            expose_headers=[
                "Location",
                "Retry-After",
                "ETag",
                "Content-Range",
                "Preference-Applied",
            ],
            max_age=600,
        )
    ]


def create_app(
    settings: Settings,
    registry: PipelineRegistry | None = None,
    *,
    server_lock: ProcessLock | None = None,
    api_keys: ApiKeys | None = None,
) -> GenwireApp:
    """The app; its lifespan starts and stops the runtime. `server_lock`: the data
    dir's lock, when the caller took it already (to refuse early, with a message);
    `api_keys`: the settings' keys, when the caller read them already (likewise)."""
    keys = api_keys if api_keys is not None else ApiKeys(settings.api_keys, settings.keys_file)
    runtime = Runtime.build(settings, registry, server_lock=server_lock)
    redact_logs()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        app.state.stream_tokens = runtime.stream_tokens
        try:
            yield
        finally:
            await runtime.stop()

    app = GenwireApp(
        routes=[
            *health.routes,
            *metrics.routes,
            *openapi.routes,
            *web.routes,
            Mount(
                "/api",
                routes=[
                    *jobs.routes,
                    *webhooks.routes,
                    *projects.routes,
                    *providers.routes,
                    *streams.routes,
                    *files.routes,
                ],
            ),
        ],
        exception_handlers={
            ServiceError: handle_genwire_error,  # its subclasses too: Starlette walks the MRO
            HTTPException: _http_error,
            ClientDisconnect: _client_gone,
            Exception: _unexpected_error,
        },
        middleware=_cors(settings.cors_origins),
        lifespan=lifespan,
    )
    if not settings.cors_origins:  # CORS answers need the middleware's headers
        app.hot_paths = HotPaths(
            {"poll": streams.poll_job, "events": streams.job_events},
            {"/api/poll": streams.poll_tenant, "/api/events": streams.tenant_events},
            _unexpected_error,
        )
    app.state.settings = settings
    app.state.api_keys = keys
    app.state.service = runtime.service
    app.state.remote = runtime.remote
    app.state.projects = ProjectService(runtime.service)
    app.state.pool = runtime.pool
    app.state.hub = runtime.hub
    app.state.connections = OpenConnections(
        settings.max_streams_per_tenant, settings.max_streams_per_address
    )
    app.state.creations = CreationBuckets(settings.create_rate_per_s, settings.create_burst)
    app.state.census = ConnectionCensus(connection_limits(settings))
    return app
