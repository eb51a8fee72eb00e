"""Artifact bytes: the right Content-Type, a strong ETag, HTTP Range for seeking."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from genwire.api.jobs import service_of
from genwire.api.requests import tenant_of
from genwire.errors import NotFound


async def get_file(request: Request) -> Response:
    service = service_of(request)
    artifact_id = request.path_params["artifact_id"]
    artifact = await service.store.get_artifact(artifact_id, tenant_of(request))
    if artifact is None:
        raise NotFound(f"no file {artifact_id!r}")
    path = service.storage.resolve(artifact.path)
    if not path.is_file():
        raise NotFound(f"the file of {artifact_id!r} is gone from storage")
    etag = f'"{artifact.sha256}"'
    # An artifact never changes once stored: its hash is a strong validator forever.
    headers = {
        "etag": etag,
        "cache-control": "private, max-age=31536000, immutable",
        "content-disposition": f"inline; filename*=UTF-8''{quote(artifact.name)}",
    }
    if etag in {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=artifact.type, headers=headers)


routes = [Route("/files/{artifact_id}", get_file, methods=["GET", "HEAD"])]
