"""Stream tokens (SPEC §8): a job's stream without the API key, for that job only,
read-only, until the token expires."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest

from genwire.api.log_redaction import RedactSecrets
from genwire.errors import NotAuthenticated
from genwire.ids import new_id
from genwire.tokens import StreamTokens
from tests.conftest import ThreadedServer

KEY = b"k" * 32
SYNTHETIC = {"pipeline": "demo.synthetic", "input": {"steps": 3, "step_ms": 1}}


def test_a_token_is_good_for_its_own_job_and_tenant_until_it_expires() -> None:
    now = [1_000_000.0]
    tokens = StreamTokens(KEY, ttl_s=60, clock=lambda: now[0])
    token = tokens.issue("job_a", "alice")
    tokens.check("job_a", "alice", token)

    for job_id, tenant, text in [
        ("job_b", "alice", token),
        ("job_a", "bob", token),
        ("job_a", "alice", token[:-2] + "xx"),
        ("job_a", "alice", f"{int(now[0]) + 10**6}.{token.partition('.')[2]}"),
        ("job_a", "alice", "garbage"),
        ("job_a", "alice", ""),
        ("job_a", "alice", "\u00b2.x"),  # a digit to isdigit(), not to int()
        ("job_a", "alice", f"{token.partition('.')[0]}.\u00e9"),  # compare_digest: TypeError
    ]:
        with pytest.raises(NotAuthenticated):
            tokens.check(job_id, tenant, text)

    now[0] += 61
    with pytest.raises(NotAuthenticated, match="expired"):
        tokens.check("job_a", "alice", token)


def test_tokens_of_another_key_are_refused() -> None:
    token = StreamTokens(b"x" * 32).issue("job_a", "alice")
    with pytest.raises(NotAuthenticated):
        StreamTokens(KEY).check("job_a", "alice", token)


def test_a_browser_follows_a_job_with_its_token_and_nothing_else(
    live_server: Callable[..., ThreadedServer],
) -> None:
    server = live_server(api_keys={"k1": "alice", "k2": "bob"})
    with (
        httpx.Client(
            base_url=server.url, timeout=30, headers={"Authorization": "Bearer k1"}
        ) as alice,
        httpx.Client(base_url=server.url, timeout=30) as browser,
    ):
        job = alice.post("/api/jobs", json=SYNTHETIC, headers={"Prefer": "wait=20"}).json()
        other = alice.post("/api/jobs", json=SYNTHETIC).json()
        events_url = job["urls"]["events"]
        assert "?token=" in events_url
        assert "?token=" in job["urls"]["poll"]

        stream = browser.get(events_url)
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert "event: job-completed" in stream.text
        polled = browser.get(job["urls"]["poll"] + "&wait=0").json()
        assert polled["done"] is True
        assert polled["events"][-1]["type"] == "job-completed"

        token = events_url.partition("?token=")[2]
        refused = [
            browser.get(f"/api/jobs/{other['id']}/events", params={"token": token}),
            browser.get(f"/api/jobs/{job['id']}", params={"token": token}),
            browser.post(f"/api/jobs/{job['id']}/cancel", params={"token": token}),
            browser.get("/api/events", params={"token": token}),
            browser.get(events_url.replace(token, token[:-3] + "abc")),
        ]
        for answer in refused:
            assert answer.status_code == 401, answer.request.url
            assert answer.headers["content-type"] == "application/problem+json"

        # Another tenant's key does not turn into access through someone's token.
        bobs = browser.get(events_url, headers={"Authorization": "Bearer k2"})
        assert bobs.status_code == 404


def test_without_api_keys_urls_carry_no_token(http: httpx.Client) -> None:
    job = http.post("/api/jobs", json=SYNTHETIC).json()
    assert job["urls"]["events"] == f"/api/jobs/{job['id']}/events"
    project = http.post("/api/projects", json={"clips": [SYNTHETIC]}).json()
    assert "?token=" not in project["jobs"][0]["urls"]["events"]


def test_clips_of_a_project_carry_tokens_too(live_server: Callable[..., ThreadedServer]) -> None:
    server = live_server(api_keys={"k1": "alice"})
    with httpx.Client(base_url=server.url, timeout=30) as client:
        headers = {"Authorization": "Bearer k1"}
        project = client.post("/api/projects", json={"clips": [SYNTHETIC]}, headers=headers).json()
        clip = project["jobs"][0]
        answer = client.get(clip["urls"]["poll"] + "&wait=0")
        assert answer.status_code == 200
        events = answer.json()["events"]
        assert events
        assert {event["job_id"] for event in events} == {clip["id"]}


def test_a_jobs_token_opens_its_files_and_no_others(
    live_server: Callable[..., ThreadedServer],
) -> None:
    server = live_server(api_keys={"k1": "alice"})
    with (
        httpx.Client(
            base_url=server.url, timeout=30, headers={"Authorization": "Bearer k1"}
        ) as alice,
        httpx.Client(base_url=server.url, timeout=30) as browser,
    ):
        with_file = {**SYNTHETIC, "input": {"steps": 1, "step_ms": 1, "output_bytes": 4096}}
        first = alice.post("/api/jobs", json=with_file, headers={"Prefer": "wait=20"}).json()
        second = alice.post("/api/jobs", json=with_file, headers={"Prefer": "wait=20"}).json()
        token = first["urls"]["events"].partition("?token=")[2]
        own = first["artifacts"][0]["url"]
        other = second["artifacts"][0]["url"]

        assert browser.get(own).status_code == 401
        ranged = browser.get(own, params={"token": token}, headers={"Range": "bytes=0-99"})
        assert ranged.status_code == 206
        assert ranged.content == alice.get(own, headers={"Range": "bytes=0-99"}).content
        assert browser.get(other, params={"token": token}).status_code == 401
        assert browser.get("/api/files/art_nothing", params={"token": token}).status_code == 404


def test_a_token_answers_alike_for_another_tenants_job_and_for_no_job(
    live_server: Callable[..., ThreadedServer],
) -> None:
    """Bug: with a token and no key, another tenant's job was a 401 and an unknown id a
    404, so anyone could tell which ids exist. Both are now the 401 of a token that is
    not for that job, and the token still opens its own job."""
    server = live_server(api_keys={"k1": "alice", "k2": "bob"})
    with (
        httpx.Client(base_url=server.url, timeout=30) as client,
        httpx.Client(base_url=server.url, timeout=30) as browser,
    ):
        with_file = {**SYNTHETIC, "input": {"steps": 1, "step_ms": 1, "output_bytes": 64}}
        wait = {"Prefer": "wait=20"}
        alices = client.post(
            "/api/jobs", json=with_file, headers={**wait, "Authorization": "Bearer k1"}
        ).json()
        bobs = client.post(
            "/api/jobs", json=with_file, headers={**wait, "Authorization": "Bearer k2"}
        ).json()
        token = alices["urls"]["events"].partition("?token=")[2]
        assert browser.get(alices["urls"]["poll"] + "&wait=0").status_code == 200
        assert (
            browser.get(alices["artifacts"][0]["url"], params={"token": token}).status_code == 200
        )

        routes = [
            (f"/api/jobs/{bobs['id']}/events", f"/api/jobs/{new_id('job')}/events"),
            (f"/api/jobs/{bobs['id']}/poll", f"/api/jobs/{new_id('job')}/poll"),
            (bobs["artifacts"][0]["url"], f"/api/files/{new_id('art')}"),
        ]
        for existing, unknown in routes:
            for text in (token, "garbage", f"{token.partition('.')[0]}.x"):
                answers = [
                    browser.get(path, params={"token": text, "wait": "0"})
                    for path in (existing, unknown)
                ]
                assert [answer.status_code for answer in answers] == [401, 401], existing
                assert answers[0].json() == answers[1].json()
                assert answers[0].headers["content-type"] == "application/problem+json"


def test_a_stream_token_stays_out_of_the_access_log() -> None:
    """Bug: uvicorn logged `/events?token=…` whole, and a token reads the job's stream
    and files until it expires."""
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/api/jobs/job_1/events?token=v1.abc.def&x=1", "1.1", 200),
        None,
    )

    assert RedactSecrets().filter(record)
    assert record.getMessage() == (
        '127.0.0.1:5000 - "GET /api/jobs/job_1/events?token=[redacted]&x=1 HTTP/1.1" 200'
    )
