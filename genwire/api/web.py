"""The web page at `/`, the API's page at `/docs`, and the browser client they are
built on, under `/ui/` (SPEC §6).

The files ship inside the package (`genwire/web/`), so `pip install .` serves them
with no build step. They are revalidated on every load (`no-cache` + ETag), so an
upgraded server never runs next to a stale script in the browser. The pages have
no inline script or style: their Content-Security-Policy allows their own files
alone (`genwire.api.security`).
"""

from __future__ import annotations

import os
from os import PathLike
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from genwire.api.security import PAGE_POLICY

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
REVALIDATE = {"cache-control": "no-cache"}
PAGE_HEADERS = {**REVALIDATE, "content-security-policy": PAGE_POLICY}


class WebFiles(StaticFiles):
    """Static files that the browser must revalidate, with JavaScript typed for modules."""

    def file_response(
        self,
        full_path: PathLike[str] | str,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(REVALIDATE)
        if str(full_path).endswith(".js"):
            response.headers["content-type"] = "text/javascript; charset=utf-8"
        return response


async def index(request: Request) -> Response:
    return FileResponse(WEB_DIR / "index.html", headers=PAGE_HEADERS)


async def api_docs(request: Request) -> Response:
    """The page that renders `/openapi.json` (`docs.js`)."""
    return FileResponse(WEB_DIR / "docs.html", headers=PAGE_HEADERS)


routes = [
    Route("/", index, methods=["GET", "HEAD"]),
    Route("/docs", api_docs, methods=["GET", "HEAD"]),
    Mount("/ui", app=WebFiles(directory=WEB_DIR), name="ui"),
]
