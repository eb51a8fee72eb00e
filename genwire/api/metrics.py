"""`GET /metrics` at the root, outside `/api` (SPEC §3): the server's numbers for
Prometheus. With API keys set it asks for one, as the API does; it shows counts and
durations only, never an id or a tenant. A database that does not answer is a
gauge at 0, not a failed scrape."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from genwire.api.guard import ConnectionCensus
from genwire.api.guard.census import (
    ADDRESS,
    BODY_TIMEOUT,
    HEAD_TIMEOUT,
    HEAD_TOO_LARGE,
    PROCESS,
)
from genwire.api.requests import remote_of, service_of, tenant_of
from genwire.api.sse import hub_of
from genwire.delivery import FeedHub
from genwire.metrics import CONTENT_TYPE, Metric, render
from genwire.models import JobStatus
from genwire.providers.remote import RemoteProviders

log = logging.getLogger("genwire.api")


async def metrics(request: Request) -> Response:
    tenant_of(request)  # authenticates: 401 without a valid key where keys are set
    store = service_of(request).store
    by_status: dict[str, int] | None
    try:
        by_status = await store.count_by_status()
    except Exception:
        # The process's own numbers matter most now: they are still shown.
        log.warning("metrics: the database does not answer", exc_info=True)
        by_status = None
    hub = hub_of(request)
    feeds, held, following = hub.census()
    fan_outs = hub.fan_out_stats
    families = [
        Metric(
            "genwire_database_up",
            "gauge",
            "1 when the database answered this scrape, else 0 (and no genwire_jobs).",
            [({}, 0 if by_status is None else 1)],
        ),
    ]
    if by_status is not None:
        families.append(
            Metric(
                "genwire_jobs",
                "gauge",
                "Jobs in the database, by status.",
                [({"status": s.value}, by_status.get(s.value, 0)) for s in JobStatus],
            )
        )
    families += [
        Metric(
            "genwire_connections",
            "gauge",
            "Streams and long-polls open on this process: held (written by their feed) "
            "or following (still in their own request: replaying, or waiting).",
            [({"state": "held"}, held), ({"state": "following"}, following)],
        ),
        Metric("genwire_feeds", "gauge", "Scopes this process is tailing.", [({}, feeds)]),
        Metric(
            "genwire_events_appended_total",
            "counter",
            "Events this process appended to the log.",
            [({}, store.events_appended)],
        ),
        Metric(
            "genwire_store_write_seconds",
            "histogram",
            "Write transactions of this process, from being asked for to their commit.",
            histogram=store.write_seconds,
        ),
        Metric(
            "genwire_fanout_batches_total",
            "counter",
            "Batches of new events the feeds handed to held streams and long-polls, "
            "one per reader.",
            [({}, fan_outs.batches)],
        ),
        Metric(
            "genwire_event_delivery_seconds",
            "histogram",
            "From an event's append (its ts) to the end of the fan-out that handed it "
            "to held readers: one observation per batch, for its oldest event.",
            histogram=fan_outs.delay,
        ),
        Metric(
            "genwire_fanout_seconds",
            "histogram",
            "How long a feed took to hand one batch to all of its held readers.",
            histogram=fan_outs.seconds,
        ),
    ]
    families += _guard_metrics(request.app.state.census)
    families += _bus_metrics(hub)
    families += _provider_metrics(remote_of(request))
    return Response(render(families), media_type=CONTENT_TYPE)


def _guard_metrics(census: ConnectionCensus) -> list[Metric]:
    kinds = (PROCESS, ADDRESS, HEAD_TIMEOUT, BODY_TIMEOUT, HEAD_TOO_LARGE)
    return [
        Metric(
            "genwire_open_connections",
            "gauge",
            "Connections this process holds (the connection guard's count), of "
            f"{census.limits.max_connections} it may.",
            [({}, census.total)],
        ),
        Metric(
            "genwire_connections_cut_total",
            "counter",
            "Connections the guard refused (reason process or address: 503) or cut "
            "(head-timeout, body-timeout: 408; head-too-large: 431).",
            [({"reason": kind}, census.counts[kind]) for kind in kinds],
        ),
    ]


def _bus_metrics(hub: FeedHub) -> list[Metric]:
    """Only where the bus reaches other processes (`--bus redis://…`)."""
    announced = hub.bus.announced
    if announced is None or hub.backstop is None:
        return []
    return [
        Metric(
            "genwire_bus_up",
            "gauge",
            "1 while this process is subscribed to the bus, else 0 (feeds then look "
            "again every second).",
            [({}, 1 if announced.connected else 0)],
        ),
        Metric(
            "genwire_bus_messages_total",
            "counter",
            "Announcements this process sent, and received from other processes.",
            [
                ({"direction": "sent"}, announced.published),
                ({"direction": "received"}, announced.received),
            ],
        ),
        Metric(
            "genwire_bus_send_failures_total",
            "counter",
            "Announcements this process could not send (the backstop finds their events).",
            [({}, announced.publish_failures)],
        ),
        Metric(
            "genwire_bus_reconnects_total",
            "counter",
            "Times the bus subscription came back after being lost.",
            [({}, announced.outages)],
        ),
        Metric(
            "genwire_bus_unannounced_events_total",
            "counter",
            "Committed events the feeds' backstop found that no announcement on the "
            "bus had told this process of.",
            [({}, hub.backstop.unannounced)],
        ),
    ]


def _provider_metrics(remote: RemoteProviders) -> list[Metric]:
    if not remote.providers:
        return []
    return [
        Metric(
            "genwire_provider_requests_total",
            "counter",
            "Requests this process made to each provider's API; `retried` counts the "
            "tries after a first one failed (429, 5xx, network).",
            [
                ({"provider": name, "kind": kind}, value)
                for name, provider in remote.providers.items()
                for kind, value in (
                    ("made", provider.http.counter.total),
                    ("retried", provider.http.counter.retried),
                )
            ],
        ),
        Metric(
            "genwire_provider_webhooks_total",
            "counter",
            "Provider webhooks this process received: accepted, or refused with 401.",
            [
                ({"provider": name, "outcome": outcome}, remote.webhooks[name, outcome])
                for name in remote.providers
                for outcome in ("accepted", "refused")
            ],
        ),
    ]


routes = [Route("/metrics", metrics, methods=["GET"])]
