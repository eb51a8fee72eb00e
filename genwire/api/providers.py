"""`POST /api/providers/{name}/webhook` (SPEC §7.1): a provider says a call changed.

The call's own secret (in the query) and, for the providers that sign (Replicate,
fal), the signature must verify, else 401 and nothing changes. A verified status is
kept with the call and its follower is woken; the follower decides what it means.
"""

from __future__ import annotations

import asyncio
import hmac
import logging

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from genwire.api.answers import Items, WebhookAccepted
from genwire.api.openapi import Answer, Operation, Param, documented
from genwire.api.requests import query_value, read_bounded_body, remote_of, tenant_of
from genwire.api.responses import JsonResponse
from genwire.bus import topics
from genwire.errors import BadRequest, NotAuthenticated, UnknownId
from genwire.models import JsonObject
from genwire.providers.base import WebhookRejected
from genwire.providers.http import ProviderError
from genwire.providers.remote import PROVIDER_NAMES

log = logging.getLogger("genwire.providers")

#: a Replicate prediction carries its whole log; generous, but bounded
MAX_WEBHOOK_BYTES = 8 * 1024 * 1024
CHECK_TIMEOUT_S = 20.0


@documented(
    Operation(
        "A provider says a call changed (SPEC §7.1)",
        "providers",
        {200: Answer("Verified; whether it changed anything", WebhookAccepted)},
        {
            400: ("bad-request", "incomplete-body"),
            401: ("unauthorized",),
            404: ("not-found",),
            413: ("body-too-large",),
            503: ("unavailable",),
        },
        params=(
            Param("name", "path", "the provider: replicate, fal or runware"),
            Param("call", "query", "the call's id, from the webhook URL genwire gave"),
            Param("secret", "query", "the call's secret, from the same URL"),
        ),
        description="The body is the provider's own; it must carry the provider's signature.",
    )
)
async def provider_webhook(request: Request) -> Response:
    remote = remote_of(request)
    name = request.path_params["name"]
    provider = remote.get(name)
    if provider is None:
        raise UnknownId(f"no provider {name!r} is configured here")
    call_id = query_value(request, "call") or ""
    call = await remote.calls.get(call_id) if 0 < len(call_id) <= 40 else None
    secret = (query_value(request, "secret") or "").encode()
    if (
        call is None
        or call.provider != name
        or not hmac.compare_digest(call.secret.encode(), secret)
    ):
        remote.webhooks[name, "refused"] += 1
        raise NotAuthenticated("unknown call or wrong secret")
    body = await read_bounded_body(request, MAX_WEBHOOK_BYTES)
    try:
        await provider.verify_webhook(request.headers, body)
    except (ProviderError, httpx.HTTPError) as error:
        # genwire could not get the provider's keys: the provider should try again.
        log.warning("cannot check a %s webhook now: %s", name, remote.redact(str(error)))
        raise BadRequest(
            f"cannot check {name}'s signature now; try again", status=503, code="unavailable"
        ) from None
    except WebhookRejected as error:
        remote.webhooks[name, "refused"] += 1
        log.warning("refused a %s webhook for call %s: %s", name, call.id, error)
        raise NotAuthenticated(f"the webhook signature does not verify: {error}") from None
    remote.webhooks[name, "accepted"] += 1
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("the webhook body is not JSON") from None
    status = provider.webhook_status(parsed)
    if status is None:
        return JsonResponse({"accepted": False, "reason": "nothing to act on"})
    await remote.calls.record_webhook(call.id, status.to_json(), terminal=status.state.is_terminal)
    try:
        await remote.bus.publish([topics.provider_call(call.id)])
    except Exception:
        # Kept is kept: the follower reads it at its next poll.
        log.exception("waking the follower of call %s failed", call.id)
    return JsonResponse({"accepted": True})


@documented(
    Operation(
        "The providers and whether each is configured",
        "providers",
        {200: Answer("The providers", Items)},
        params=(
            Param(
                "check",
                "query",
                "1: also make each configured one's cheapest call",
                {"enum": ["1"]},
            ),
        ),
    )
)
async def list_providers(request: Request) -> Response:
    """The providers and whether each is configured; `?check=1` also makes each
    configured one's cheapest authenticated call (what `genwire doctor` asks)."""
    tenant_of(request)
    remote = remote_of(request)
    check = query_value(request, "check") == "1"
    items = []
    for name in PROVIDER_NAMES:
        provider = remote.get(name)
        item: JsonObject = {"name": name, "configured": provider is not None}
        if check and provider is not None:
            try:
                async with asyncio.timeout(CHECK_TIMEOUT_S):
                    item["check"] = {"ok": True, "detail": await provider.check_key()}
            except (ProviderError, TimeoutError) as error:
                said = str(error) or f"no answer within {CHECK_TIMEOUT_S:g} s"
                item["check"] = {"ok": False, "detail": remote.redact(said)}
        items.append(item)
    return JsonResponse({"items": items})


routes = [
    Route("/providers", list_providers, methods=["GET"]),
    Route("/providers/{name}/webhook", provider_webhook, methods=["POST"]),
]
