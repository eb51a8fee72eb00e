"""Artifact bytes: the right Content-Type, a strong ETag, HTTP Range for seeking."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from genwire.api.requests import path_id, service_of, tenant_of
from genwire.api.tokens import job_reader_tenant, uses_stream_token
from genwire.errors import UnknownId


async def get_file(request: Request) -> Response:
    # The key is checked before the id, so that a bad key is a 401 whatever the id.
    by_token = uses_stream_token(request)
    tenant = None if by_token else tenant_of(request)
    artifact_id = path_id(request, "artifact_id", "art")
    service = service_of(request)
    artifact = await service.store.get_artifact(artifact_id, tenant)
    if artifact is None:
        raise UnknownId(f"no artifact {artifact_id!r}")
    if by_token:
        # A `<video>` or `<img>` cannot send a header: the job's stream token opens
        # the job's files, which are read-only data of that job.
        await job_reader_tenant(request, artifact.job_id)
    path = service.storage.resolve(artifact.path)
    if not path.is_file():
        raise UnknownId(f"the file of {artifact_id!r} is gone from storage")
    etag = f'"{artifact.sha256}"'
    # An artifact never changes once stored: its hash is a strong validator forever.
    headers = {
        "etag": etag,
        "cache-control": "private, max-age=31536000, immutable",
        "content-disposition": f"inline; filename*=UTF-8''{quote(artifact.name)}",
    }
    if _none_match(request, etag):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=artifact.type, headers=headers)


def _none_match(request: Request, etag: str) -> bool:
    """Whether If-None-Match names this representation: `*`, or the tag compared weakly,
    as RFC 9110 §13.1.2 asks (§8.8.3.2) (`W/"x"` matches `"x"`)."""
    header = ",".join(request.headers.getlist("if-none-match"))
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag in tags


routes = [Route("/files/{artifact_id}", get_file, methods=["GET", "HEAD"])]
