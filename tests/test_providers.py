"""Provider pipelines end to end: a real genwire server follows jobs at each
provider's fake (a real HTTP server speaking that provider's protocol), by polling
and by webhook, through lost and forged webhooks, 429s and 503s, failures, time-outs,
cancels and outputs that are gone (SPEC §7.1)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.harness import sample_mp4
from tests.providers_world import BY_NAME, CASES, ProviderCase, World, world
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(90)


def _types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


def _submitted(world: World) -> int:
    return len(world.fake.submissions)  # type: ignore[attr-defined]


def _samples(world: World, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """One metric of `/metrics`, read with Prometheus's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    text = world.http.get("/metrics").text
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def _assert_copied(world: World, job: dict[str, Any]) -> None:
    """Succeeded, with the provider's files in genwire's storage and its URLs replaced."""
    assert job["status"] == "succeeded", job["error"]
    output = job["output"]
    assert output["provider"] == job["pipeline"]
    assert output["provider_job_id"]
    assert world.fake.root_url not in str(output["result"]), "a provider URL was left"
    assert job["artifacts"], "no artifact was copied"
    expected = sample_mp4()
    for artifact in job["artifacts"]:
        assert artifact["url"] in str(output["result"])
        body = world.http.get(artifact["url"]).content
        assert body == expected
        assert artifact["sha256"] == hashlib.sha256(body).hexdigest()
        assert artifact["size_bytes"] == len(body)
        assert artifact["type"] == "video/mp4"


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_job_followed_by_polling_alone_succeeds_with_its_outputs_copied(
    case: ProviderCase, tmp_path: Path
) -> None:
    with world(case, tmp_path) as w:
        job = w.wait_until_ended(w.submit(case.body())["id"])
        _assert_copied(w, job)
        assert _submitted(w) == 1
        events = w.events(job["id"])
        phases = [
            e["phase"] for e in events if e["type"] == "step-status" and e["state"] == "started"
        ]
        assert phases[0] == "submit"
        assert phases[-1] == "copy"
        assert "generate" in phases
        assert _types(events)[-1] == "job-completed"
        assert not w.fake.webhook_calls, "no public URL: the provider was asked for no webhook"


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_job_followed_by_webhook_succeeds_and_the_webhook_was_taken(
    case: ProviderCase, tmp_path: Path
) -> None:
    with world(case, tmp_path, webhooks=True) as w:
        job = w.wait_until_ended(w.submit(case.body())["id"])
        _assert_copied(w, job)
        assert _submitted(w) == 1
        taken = w.accepted_webhooks()
        assert "/api/providers/" in taken[0].url


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_lost_webhook_is_made_up_for_by_polling(case: ProviderCase, tmp_path: Path) -> None:
    with world(case, tmp_path, webhooks=True) as w:
        w.fake.send_webhooks = False
        job = w.wait_until_ended(w.submit(case.body())["id"])
        _assert_copied(w, job)
        assert not w.fake.webhook_calls


@pytest.mark.parametrize("case", [BY_NAME["replicate"], BY_NAME["fal"]], ids=str)
def test_a_webhook_with_a_bad_signature_is_refused_and_changes_nothing(
    case: ProviderCase, tmp_path: Path
) -> None:
    with world(case, tmp_path, webhooks=True, bad_signatures=True) as w:
        job = w.wait_until_ended(w.submit(case.body())["id"])
        refused = [call.status_code for call in w.fake.webhook_calls]
        assert refused, "the fake sent no webhook"
        assert set(refused) == {401}, refused
        _assert_copied(w, job)  # by polling, as if the forged calls never came
        counted = _samples(w, "genwire_provider_webhooks_total")
        assert counted[(("outcome", "refused"), ("provider", case.name))] >= 1
        assert counted[(("outcome", "accepted"), ("provider", case.name))] == 0
        made = _samples(w, "genwire_provider_requests_total")
        assert made[(("kind", "made"), ("provider", case.name))] >= 2


def test_a_runware_webhook_without_its_calls_secret_is_refused(tmp_path: Path) -> None:
    case = BY_NAME["runware"]
    with world(case, tmp_path, webhooks=True) as w:
        w.fake.send_webhooks = False
        w.fake.plan(case.model, run_s=60)  # type: ignore[attr-defined]
        job = w.submit(case.body())
        w.wait_submitted()
        task = w.fake.submissions[0]  # type: ignore[attr-defined]
        good_url = task["webhookURL"]
        forged = {
            "taskType": "videoInference",
            "taskUUID": task["taskUUID"],
            "status": "error",
            "message": "forged",
        }
        wrong = good_url.replace("secret=", "secret=x")
        assert httpx.post(wrong, json=forged).status_code == 401
        no_secret = good_url.split("&secret=")[0]
        assert httpx.post(no_secret, json=forged).status_code == 401
        assert w.http.get(f"/api/jobs/{job['id']}").json()["status"] == "running"
        w.http.post(f"/api/jobs/{job['id']}/cancel")
        assert w.wait_until_ended(job["id"])["status"] == "cancelled"


@pytest.mark.parametrize("case", CASES, ids=str)
def test_429_with_retry_after_and_503s_are_waited_out(case: ProviderCase, tmp_path: Path) -> None:
    with world(case, tmp_path) as w:
        w.fake.fail_next(2, 429, retry_after=0.2)
        w.fake.fail_next(2, 503)
        job = w.wait_until_ended(w.submit(case.body())["id"])
        _assert_copied(w, job)
        assert _submitted(w) == 1
        assert not w.fake.failures, "every scripted failure was met"


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_model_failure_fails_the_job_with_the_providers_words(
    case: ProviderCase, tmp_path: Path
) -> None:
    with world(case, tmp_path) as w:
        w.fake.plan(case.model, outcome="failed", error="CUDA out of memory")  # type: ignore[attr-defined]
        job = w.wait_until_ended(w.submit(case.body())["id"])
        assert job["status"] == "failed"
        assert job["error"]["code"] == "provider_failed"
        assert "CUDA out of memory" in job["error"]["message"]
        assert job["artifacts"] == []


@pytest.mark.parametrize("case", CASES, ids=str)
def test_input_the_provider_refuses_fails_with_provider_rejected(
    case: ProviderCase, tmp_path: Path
) -> None:
    with world(case, tmp_path) as w:
        w.fake.plan(case.model, outcome="rejected")  # type: ignore[attr-defined]
        job = w.wait_until_ended(w.submit(case.body())["id"])
        assert job["status"] == "failed"
        assert job["error"]["code"] == "provider_rejected"
        assert job["error"]["retryable"] is False


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_job_that_never_finishes_times_out_and_is_cancelled_at_the_provider(
    case: ProviderCase, tmp_path: Path
) -> None:
    with world(case, tmp_path) as w:
        w.fake.plan(case.model, outcome="never")  # type: ignore[attr-defined]
        job = w.wait_until_ended(w.submit(case.body(timeout_s=1.5))["id"])
        assert job["status"] == "failed"
        assert job["error"]["code"] == "provider_timeout"
        assert job["error"]["retryable"] is True
        warnings = [e for e in w.events(job["id"]) if e["type"] == "warning"]
        provider_job_id = w.fake.submissions[0].get("taskUUID")  # type: ignore[attr-defined]
        if case.name == "runware":
            assert warnings[-1]["code"] == "provider_cannot_cancel"
            assert provider_job_id in warnings[-1]["message"]
        else:
            assert warnings[-1]["code"] == "provider_cancelled"
            assert len(w.fake.cancelled) == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_an_output_that_404s_fails_the_job_output_unavailable(
    case: ProviderCase, tmp_path: Path
) -> None:
    with world(case, tmp_path) as w:
        w.fake.all_files_missing = True
        job = w.wait_until_ended(w.submit(case.body())["id"])
        assert job["status"] == "failed"
        assert job["error"]["code"] == "output_unavailable"
        assert "404" in job["error"]["message"]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_cancel_of_the_job_is_forwarded_to_the_provider(case: ProviderCase, tmp_path: Path) -> None:
    with world(case, tmp_path) as w:
        w.fake.plan(case.model, outcome="never")  # type: ignore[attr-defined]
        job = w.submit(case.body())
        w.wait_submitted()  # a cancel while the submit's answer is on its way waits for it
        assert w.http.post(f"/api/jobs/{job['id']}/cancel").status_code == 202
        ended = w.wait_until_ended(job["id"])
        assert ended["status"] == "cancelled"
        warnings = [e for e in w.events(job["id"]) if e["type"] == "warning"]
        if case.name == "runware":
            assert warnings[-1]["code"] == "provider_cannot_cancel"
        else:
            assert warnings[-1]["code"] == "provider_cancelled"
            assert len(w.fake.cancelled) == 1  # type: ignore[attr-defined]


def test_events_say_what_the_provider_says(tmp_path: Path) -> None:
    """Replicate's tqdm logs become progress and the last log line the message."""
    case = BY_NAME["replicate"]
    with world(case, tmp_path) as w:
        w.fake.plan(case.model, queue_s=0.5, run_s=2.0, steps=20)  # type: ignore[attr-defined]
        job = w.wait_until_ended(w.submit(case.body())["id"])
        assert job["status"] == "succeeded"
        events = w.events(job["id"])
        generating = [
            e for e in events if e["type"] == "step-progress" and e["phase"] == "generate"
        ]
        assert len(generating) >= 2, _types(events)
        assert any("it/s" in e.get("message", "") for e in generating)
        progress = [e["progress"] for e in events if "progress" in e]
        assert progress == sorted(progress), "overall progress went down"
        assert any(5 < e["progress"] < 90 for e in generating)


def test_a_provider_without_its_key_is_refused_at_create(http: httpx.Client) -> None:
    listing = http.get("/api/pipelines").json()
    assert listing["providers"] == {"replicate": False, "fal": False, "runware": False}
    answer = http.post(
        "/api/jobs",
        json={"pipeline": "runware", "input": {"task_type": "imageInference", "model": "m:1@1"}},
    )
    assert answer.status_code == 422
    assert answer.json()["code"] == "provider-not-configured"


def test_a_project_of_three_runware_clips_completes_with_every_clip_copied(
    tmp_path: Path,
) -> None:
    case = BY_NAME["runware"]
    with world(case, tmp_path, webhooks=True) as w:
        clips = [case.body(input={"positivePrompt": f"scene {n}"}) for n in range(3)]
        answer = w.http.post("/api/projects", json={"name": "three clips", "clips": clips})
        assert answer.status_code == 201, answer.text
        project_id = answer.json()["id"]

        def snapshot() -> dict[str, Any]:
            read: dict[str, Any] = w.http.get(f"/api/projects/{project_id}").json()
            return read

        wait_until(lambda: snapshot()["all_complete"], "every clip to end", timeout=30)
        project = snapshot()
        assert (project["total_clips"], project["completed"], project["failed"]) == (3, 3, 0)
        assert all(url.startswith("/api/files/") for url in project["clips"].values())
        prompts = sorted(task["positivePrompt"] for task in w.fake.submissions)  # type: ignore[attr-defined]
        assert prompts == ["scene 0", "scene 1", "scene 2"]
        seen: list[str] = []
        with w.http.stream("GET", f"/api/projects/{project_id}/events", timeout=10) as stream:
            for line in stream.iter_lines():
                seen.append(line)
                if line == "event: project-completed":
                    break
        assert seen[-1] == "event: project-completed"


def test_doctor_says_which_providers_key_works(tmp_path: Path) -> None:
    from genwire.client.doctor import Doctor
    from genwire.client.doctor.endpoints import check_providers

    with world(BY_NAME["replicate"], tmp_path) as w:
        doctor = Doctor(w.server.url)
        try:
            works = check_providers(doctor)
            w.fake.key = "r8_revoked"  # type: ignore[attr-defined]
            fails = check_providers(doctor)
        finally:
            doctor.close()
    assert works.verdict == "ok"
    assert "replicate: works" in works.detail
    assert fails.verdict == "fail"
    assert "replicate: FAILS" in fails.detail
    assert "401" in fails.detail
    assert "REPLICATE_API_TOKEN" in fails.fix


def test_fals_queue_position_and_logs_reach_the_events(tmp_path: Path) -> None:
    case = BY_NAME["fal"]
    with world(case, tmp_path) as w:
        w.fake.plan(case.model, queue_s=1.0, run_s=1.5)  # type: ignore[attr-defined]
        job = w.wait_until_ended(w.submit(case.body())["id"])
        assert job["status"] == "succeeded"
        events = w.events(job["id"])
        queued = [
            e
            for e in events
            if e["type"] == "job-status" and e["status"] == "running" and "queue_position" in e
        ]
        assert queued, _types(events)
        assert queued[0]["phase"] == "queue"
        assert "queued at fal" in queued[0]["message"]
        running = [e for e in events if e.get("phase") == "generate" and e.get("message")]
        assert any(e["message"] != "running at fal" for e in running), "no log line was shown"


@pytest.mark.postgres
@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_provider_job_on_postgresql_is_followed_by_webhook_to_its_copied_output(
    case: ProviderCase, tmp_path: Path, postgres_url: str
) -> None:
    with world(case, tmp_path, webhooks=True, database_url=postgres_url) as w:
        job = w.wait_until_ended(w.submit(case.body())["id"])
        _assert_copied(w, job)
        assert _submitted(w) == 1
        assert w.accepted_webhooks()


async def test_a_providers_words_lose_the_keys_and_any_webhook_secret_they_quote(
    tmp_path: Path,
) -> None:
    """A provider may quote the webhook URL, or the key, back in an error."""
    from genwire.bus import LocalBus
    from genwire.providers.remote import RemoteProviders
    from genwire.providers.settings import ProviderSettings
    from genwire.store import SqlStore

    settings = ProviderSettings(replicate_token="r8_topsecret", runware_key="rw-key-123")
    store = SqlStore(f"sqlite:///{tmp_path / 'genwire.db'}")
    remote = RemoteProviders(settings, store, LocalBus(), None)
    await remote.close()
    await store.close()
    said = remote.redact(
        "could not POST https://x.example/api/providers/replicate/webhook?call=call_1"
        "&secret=abc-DEF_123 with token r8_topsecret (key rw-key-123)"
    )
    assert "abc-DEF_123" not in said
    assert "r8_topsecret" not in said
    assert "rw-key-123" not in said
    assert "call=call_1&secret=[redacted]" in said
