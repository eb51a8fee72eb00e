"""`GET /metrics` (SPEC §3): Prometheus's text format, read back with Prometheus's own
parser; jobs by status, connections, events appended, and the latencies of writes,
fan-outs and delivery, each moving with what the server did."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from genwire.metrics import Histogram, Metric, render
from tests.http_calls import _drop_database
from tests.waiting import eventually
from tests.wire import (
    LiveServer,
    all_events,
    cancel,
    caught_up_streams,
    client_of,
    direct_sinks,
    finished_job,
    idle_running_job,
    wait_for,
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    """Every sample of `/metrics`, by name and labels."""
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def test_jobs_are_counted_by_status(live_server: LiveServer) -> None:
    async with asyncio.timeout(60), client_of(live_server()) as client:
        before = await scrape(client)
        assert {value(before, "genwire_jobs", status=s) for s in ("queued", "succeeded")} == {0}
        for _ in range(2):
            await finished_job(client, "demo.synthetic", steps=2, step_ms=1)
        running, _ = await idle_running_job(client)
        try:
            after = await scrape(client)
        finally:
            await cancel(client, running)
        await wait_for(client, running, lambda job: job["status"] == "cancelled")
        last = await scrape(client)

    assert value(after, "genwire_jobs", status="succeeded") == 2
    assert value(after, "genwire_jobs", status="running") == 1
    assert value(after, "genwire_jobs", status="failed") == 0
    assert value(last, "genwire_jobs", status="running") == 0
    assert value(last, "genwire_jobs", status="cancelled") == 1


async def test_appended_events_and_write_times_count_what_the_server_wrote(
    live_server: LiveServer,
) -> None:
    async with asyncio.timeout(60), client_of(live_server()) as client:
        before = await scrape(client)
        job_id = await finished_job(client, "demo.synthetic", steps=5, step_ms=1)
        events = await all_events(client, job_id)
        after = await scrape(client)

    appended = value(after, "genwire_events_appended_total") - value(
        before, "genwire_events_appended_total"
    )
    assert appended == len(events) > 5
    writes = value(after, "genwire_store_write_seconds_count")
    assert writes - value(before, "genwire_store_write_seconds_count") >= len(events)
    assert value(after, "genwire_store_write_seconds_bucket", le="+Inf") == writes
    assert value(after, "genwire_store_write_seconds_sum") > 0


async def test_held_streams_fan_outs_and_delivery_delay_are_measured(
    live_server: LiveServer,
) -> None:
    server = live_server()
    async with (
        asyncio.timeout(60),
        client_of(server) as client,
        caught_up_streams(server, client, 3) as (job_id, streams),
    ):
        held = await scrape(client)
        await cancel(client, job_id)  # the job's last events reach the three
        for stream in streams:
            while (event := await stream.next_event()) is not None:
                if event.type == "job-cancelled":
                    break
        await eventually(lambda: direct_sinks(server) == 0, "the streams ended")
        after = await scrape(client)

    assert value(held, "genwire_connections", state="held") == 3
    assert value(held, "genwire_feeds") >= 1
    assert value(after, "genwire_connections", state="held") == 0
    fan_outs = value(after, "genwire_fanout_seconds_count")
    assert fan_outs > value(held, "genwire_fanout_seconds_count")
    handed = value(after, "genwire_fanout_batches_total")
    assert handed - value(held, "genwire_fanout_batches_total") >= 3
    delays = value(after, "genwire_event_delivery_seconds_count")
    assert delays == fan_outs
    # A loopback delivery of a just-appended event: well under a minute, above zero.
    assert 0 < value(after, "genwire_event_delivery_seconds_sum") < 60 * delays


async def test_metrics_live_at_the_root_and_ask_for_a_key_where_keys_are_set(
    live_server: LiveServer,
) -> None:
    server = live_server(api_keys={"k1": "alice"})
    async with client_of(server) as anonymous, client_of(server, "k1") as alice:
        refused = await anonymous.get("/metrics")
        under_api = await alice.get("/api/metrics")
        samples = await scrape(alice)

    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert under_api.status_code == 404
    assert value(samples, "genwire_jobs", status="queued") == 0


def test_histograms_count_each_value_under_every_bound_it_does_not_exceed() -> None:
    histogram = Histogram(bounds=(0.1, 1.0))
    for observed in (0.05, 0.1, 0.5, 3.0):
        histogram.observe(observed)
    text = render(
        [
            Metric("t_seconds", "histogram", "A test.", histogram=histogram),
            Metric("t_total", "counter", 'Quotes " and \\ in help.', [({"k": 'a"b\\c'}, 2)]),
        ]
    )
    families = {family.name: family for family in text_string_to_metric_families(text)}
    buckets = {
        sample.labels["le"]: sample.value
        for sample in families["t_seconds"].samples
        if sample.name == "t_seconds_bucket"
    }

    assert buckets == {"0.1": 2, "1.0": 3, "+Inf": 4}  # `le` is "at most"
    assert [sample.labels for sample in families["t"].samples] == [{"k": 'a"b\\c'}]
    assert families["t"].samples[0].value == 2


def test_with_the_database_gone_metrics_still_answer_and_say_so(
    live_server: LiveServer, postgres_url: str
) -> None:
    """The process's own numbers are what an operator needs during an outage: the
    scrape succeeds, `genwire_database_up` is 0, and the database's error stays in
    the log."""
    database_name = postgres_url.rsplit("/", 1)[1]
    with httpx.Client(base_url=live_server(workers=0, database_url=postgres_url).url) as client:
        before = client.get("/metrics")
        asyncio.run(_drop_database(postgres_url))

        during = client.get("/metrics")

    up = {f.name: f for f in text_string_to_metric_families(before.text)}
    down = {f.name: f for f in text_string_to_metric_families(during.text)}
    assert up["genwire_database_up"].samples[0].value == 1
    assert "genwire_jobs" in up
    assert during.status_code == 200
    assert down["genwire_database_up"].samples[0].value == 0
    assert "genwire_jobs" not in down
    assert "genwire_events_appended" in down  # the process's own numbers stay
    assert database_name not in during.text
