"""Stream tokens on the wire (SPEC §8): with API keys configured, a job's snapshot
carries `urls.events` and `urls.poll` with `?token=…` (see `genwire.tokens`), and
those two routes accept the token instead of the key.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from genwire.api.requests import service_of, tenant_of
from genwire.models import Job
from genwire.tokens import StreamTokens

TOKEN_PARAM = "token"


def tokens_of(request: Request) -> StreamTokens:
    tokens: StreamTokens = request.app.state.stream_tokens
    return tokens


def job_snapshot(request: Request, job: Job) -> dict[str, Any]:
    """`job.to_json()`, with tokened stream URLs when the server has API keys."""
    snapshot = job.to_json()
    if request.app.state.settings.api_keys:
        token = tokens_of(request).issue(job.id, job.tenant)
        urls = snapshot["urls"]
        for name in ("events", "poll"):
            urls[name] = f"{urls[name]}?{TOKEN_PARAM}={token}"
    return snapshot


async def job_reader_tenant(request: Request, job_id: str) -> str:
    """The tenant whose job `job_id` the caller may read the events of: the API key's,
    or, for a request with a stream token and no key, the job's own once the token
    checks out."""
    token = request.query_params.get(TOKEN_PARAM)
    if token is None or not request.app.state.settings.api_keys or _has_key(request):
        return tenant_of(request)
    job = await service_of(request).get_job(job_id)
    tokens_of(request).check(job.id, job.tenant, token)
    return job.tenant


def _has_key(request: Request) -> bool:
    return bool(request.headers.get("authorization"))
