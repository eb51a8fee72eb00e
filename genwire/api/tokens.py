"""Stream tokens on the wire (SPEC §8): with API keys configured, a job's snapshot
carries `urls.events` and `urls.poll` with `?token=…` (see `genwire.tokens`). Those
two routes accept the token instead of the key, and so does `/api/files/{id}` for
that job's files (a `<video>` cannot send a header).
"""

from __future__ import annotations

from typing import Any, NoReturn

from starlette.requests import Request

from genwire.api.requests import api_keys_of, query_value, service_of, tenant_of
from genwire.api.sse import hub_of
from genwire.errors import UnknownId
from genwire.models import Job
from genwire.store.entries import Scope, ScopeKind
from genwire.tokens import StreamTokens

TOKEN_PARAM = "token"


def tokens_of(request: Request) -> StreamTokens:
    tokens: StreamTokens = request.app.state.stream_tokens
    return tokens


def job_snapshot(request: Request, job: Job) -> dict[str, Any]:
    """`job.to_json()`, with tokened stream URLs when the server has API keys."""
    snapshot = job.to_json()
    if api_keys_of(request).required:
        token = tokens_of(request).issue(job.id, job.tenant)
        urls = snapshot["urls"]
        for name in ("events", "poll"):
            urls[name] = f"{urls[name]}?{TOKEN_PARAM}={token}"
    return snapshot


async def job_reader_tenant(request: Request, job_id: str) -> str:
    """The tenant whose job `job_id` the caller may read the events of: the API key's,
    or, for a request with a stream token and no key, the job's own once the token
    checks out."""
    if not uses_stream_token(request):
        return tenant_of(request)
    tenant = _known_tenant(request, job_id)
    if tenant is None:
        try:
            tenant = (await service_of(request).get_job(job_id)).tenant
        except UnknownId:
            refuse_stream_token(request)
    tokens_of(request).check(job_id, tenant, query_value(request, TOKEN_PARAM) or "")
    return tenant


def refuse_stream_token(request: Request) -> NoReturn:
    """The answer to a stream token for a job or file that does not exist: the 401 of a
    token for another tenant's, not a 404, which would tell an outsider which ids
    exist (SPEC §8)."""
    tokens_of(request).refuse(query_value(request, TOKEN_PARAM) or "")


def _known_tenant(request: Request, job_id: str) -> str | None:
    """The job's tenant as its live feed already knows it (a job never changes
    tenant), so that a long-poll with a token reads no more than one with a key."""
    feed = hub_of(request).live_feed(Scope(ScopeKind.JOB, job_id))
    known = feed.status_at if feed is not None else None
    return known.tenant if known is not None else None


def uses_stream_token(request: Request) -> bool:
    """Whether the request reads with a stream token instead of an API key."""
    return (
        api_keys_of(request).required
        and query_value(request, TOKEN_PARAM) is not None
        and not request.headers.get("authorization")
    )
