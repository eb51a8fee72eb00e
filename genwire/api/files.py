"""Artifact bytes: the right Content-Type, a strong ETag, HTTP Range for seeking.

Read from whichever storage holds them (a folder, an S3 bucket) and streamed through
this node in chunks, never held whole: the same headers, Range and tenancy for both,
and a browser needs no way to the bucket.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from genwire.api.openapi import STREAM_TOKEN, Answer, Operation, Param, documented
from genwire.api.problems import ProblemResponse
from genwire.api.ranges import RangeNotSatisfiable, requested_ranges
from genwire.api.requests import path_id, service_of, tenant_of
from genwire.api.tokens import job_reader_tenant, refuse_stream_token, uses_stream_token
from genwire.errors import UnknownId
from genwire.interfaces import ArtifactStorage
from genwire.models import Artifact

#: A piece of a response body: bytes as they are, or a stored file's [start, end).
Piece = bytes | tuple[int, int]


@documented(
    Operation(
        "An artifact's bytes, with ETag and HTTP Range",
        "files",
        {
            200: Answer(
                "The file",
                media_type="application/octet-stream",
                schema={"type": "string", "format": "binary"},
                headers=("ETag", "Content-Type"),
            ),
            206: Answer(
                "The ranges asked for",
                media_type="application/octet-stream",
                schema={"type": "string", "format": "binary"},
                headers=("Content-Range",),
            ),
            304: Answer("Unchanged (If-None-Match)"),
        },
        {404: ("not-found",), 416: ("range-not-satisfiable",), 503: ("storage-unavailable",)},
        params=(
            Param("artifact_id", "path", "an artifact's id"),
            Param("Range", "header", "bytes=…: one range or several"),
            Param("If-None-Match", "header", "the ETag of a copy the caller holds"),
            STREAM_TOKEN,
        ),
    )
)
async def get_file(request: Request) -> Response:
    # The key is checked before the id, so that a bad key is a 401 whatever the id.
    by_token = uses_stream_token(request)
    tenant = None if by_token else tenant_of(request)
    artifact_id = path_id(request, "artifact_id", "art")
    service = service_of(request)
    artifact = await service.store.get_artifact(artifact_id, tenant)
    if artifact is None:
        if by_token:
            refuse_stream_token(request)
        raise UnknownId(f"no artifact {artifact_id!r}")
    if by_token:
        # A `<video>` or `<img>` cannot send a header: the job's stream token opens
        # the job's files, which are read-only data of that job.
        await job_reader_tenant(request, artifact.job_id)
    size = await asyncio.to_thread(service.storage.size_of, artifact.path)
    if size is None:
        raise UnknownId(f"the file of {artifact_id!r} is gone from storage")
    etag = f'"{artifact.sha256}"'
    # An artifact never changes once stored: its hash is a strong validator forever.
    headers = {
        "etag": etag,
        "cache-control": "private, max-age=31536000, immutable",
        "content-disposition": f"inline; filename*=UTF-8''{quote(artifact.name)}",
        # An artifact is whatever a pipeline or a provider made, HTML or SVG included:
        # opened here it must not run as this origin, where the page keeps its key.
        "content-security-policy": "sandbox",
    }
    if _none_match(request, etag):
        return Response(status_code=304, headers=headers)
    return _bytes_response(request, service.storage, artifact, size, headers)


def _none_match(request: Request, etag: str) -> bool:
    """Whether If-None-Match names this representation: `*`, or the tag compared weakly,
    as RFC 9110 §13.1.2 asks (§8.8.3.2) (`W/"x"` matches `"x"`)."""
    header = ",".join(request.headers.getlist("if-none-match"))
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag in tags


def _bytes_response(
    request: Request,
    storage: ArtifactStorage,
    artifact: Artifact,
    size: int,
    headers: dict[str, str],
) -> Response:
    """200 with the whole file, or 206 with the ranges asked for (one, or several as
    multipart/byteranges), or 416 when none is in the file."""
    # RFC 9110 §13.1.5: a Range counts only if If-Range names this ETag, compared
    # strongly (a date never matches: no Last-Modified is sent).
    if_range = request.headers.get("if-range")
    asked = request.headers.get("range") if if_range in (None, headers["etag"]) else None
    try:
        ranges = requested_ranges(asked, size)
    except RangeNotSatisfiable:
        return ProblemResponse(
            416,
            "range-not-satisfiable",
            "Range not satisfiable",
            f"the file has {size} bytes",
            headers={"content-range": f"bytes */{size}"},
        )
    headers["accept-ranges"] = "bytes"
    media_type = artifact.type
    pieces: list[Piece]
    if not ranges:
        status, pieces = 200, [(0, size)]
    elif len(ranges) == 1:
        status, pieces = 206, [ranges[0]]
        start, end = ranges[0]
        headers["content-range"] = f"bytes {start}-{end - 1}/{size}"
    else:
        status, boundary = 206, secrets.token_hex(13)
        pieces = _multipart(ranges, boundary, artifact.type, size)
        media_type = f"multipart/byteranges; boundary={boundary}"
    headers["content-length"] = str(
        sum(len(piece) if isinstance(piece, bytes) else piece[1] - piece[0] for piece in pieces)
    )
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media_type)
    body = _streamed(storage, artifact.path, pieces)
    return StreamingResponse(body, status_code=status, headers=headers, media_type=media_type)


def _multipart(
    ranges: list[tuple[int, int]], boundary: str, media_type: str, size: int
) -> list[Piece]:
    """The body of a multipart/byteranges answer (RFC 9110 §14.6)."""
    pieces: list[Piece] = []
    for start, end in ranges:
        part_headers = (
            f"--{boundary}\r\nContent-Type: {media_type}\r\n"
            f"Content-Range: bytes {start}-{end - 1}/{size}\r\n\r\n"
        )
        pieces += [part_headers.encode("latin-1"), (start, end), b"\r\n"]
    pieces.append(f"--{boundary}--".encode("latin-1"))
    return pieces


async def _streamed(
    storage: ArtifactStorage, path: str, pieces: list[Piece]
) -> AsyncIterator[bytes]:
    for piece in pieces:
        if isinstance(piece, bytes):
            yield piece
            continue
        chunks = storage.read(path, *piece)
        try:
            # Starlette's thread call waits for a read under way when the response is
            # cancelled (its client left), so the reader is never closed under it.
            while chunk := await run_in_threadpool(next, chunks, b""):
                yield chunk
        finally:
            chunks.close()


routes = [Route("/files/{artifact_id}", get_file, methods=["GET", "HEAD"])]
