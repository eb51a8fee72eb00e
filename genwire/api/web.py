"""The web page at `/` and the browser client it is built on, under `/ui/` (SPEC §6).

The files ship inside the package (`genwire/web/`), so `pip install .` serves them
with no build step. They are revalidated on every load (`no-cache` + ETag), so an
upgraded server never runs next to a stale script in the browser.
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

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
REVALIDATE = {"cache-control": "no-cache"}


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
    return FileResponse(WEB_DIR / "index.html", headers=REVALIDATE)


routes = [
    Route("/", index, methods=["GET", "HEAD"]),
    Mount("/ui", app=WebFiles(directory=WEB_DIR), name="ui"),
]
