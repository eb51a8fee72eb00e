"""Edges of following a provider job, each a bug a review found: what the job must
do, stated as behaviour against the providers' fakes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel

from genwire.models import JsonObject
from genwire.pipelines import PipelineContext, PipelineError, PipelineRegistry, pipeline
from genwire.providers.base import RemoteRequest
from tests import pipelines as built_for_tests
from tests.providers_world import BY_NAME, FAST, world

pytestmark = pytest.mark.timeout(90)


def test_a_url_the_result_merely_echoes_is_not_fetched(tmp_path: Path) -> None:
    """fal's image models echo the prompt: a prompt that is a URL of an internal
    address must not be downloaded into the job's files."""
    case = BY_NAME["fal"]
    with world(case, tmp_path) as w:
        model = "fal-ai/flux/dev"
        w.fake.plan(model, output="image")  # type: ignore[attr-defined]
        inside = f"{w.server.url}/healthz"
        job = w.wait_until_ended(w.submit(case.body(model=model, input={"prompt": inside}))["id"])
        assert job["status"] == "succeeded", job["error"]
        assert job["output"]["result"]["prompt"] == inside
        assert [a["type"] for a in job["artifacts"]] == ["image/png"]


def test_outputs_on_private_addresses_are_refused_unless_allowed(tmp_path: Path) -> None:
    case = BY_NAME["runware"]
    with world(case, tmp_path, providers=replace(FAST, allow_private_outputs=False)) as w:
        job = w.wait_until_ended(w.submit(case.body())["id"])
        assert job["status"] == "failed"
        assert job["error"]["code"] == "output_unavailable"
        assert "private address range" in job["error"]["message"]


def test_every_result_of_a_runware_task_is_copied_when_webhooks_come_one_per_result(
    tmp_path: Path,
) -> None:
    case = BY_NAME["runware"]
    with world(case, tmp_path, webhooks=True) as w:
        job = w.wait_until_ended(w.submit(case.body(input={"numberResults": 3}))["id"])
        assert job["status"] == "succeeded", job["error"]
        assert len(job["artifacts"]) == 3
        assert len(job["output"]["result"]) == 3


def test_a_cancel_while_the_submit_is_on_the_wire_still_reaches_the_provider(
    tmp_path: Path,
) -> None:
    case = BY_NAME["replicate"]
    with world(case, tmp_path) as w:
        w.fake.plan(case.model, outcome="never")  # type: ignore[attr-defined]
        w.fake.slow_answers["POST /v1/models/"] = 2.0
        job = w.submit(case.body())
        w.wait_submitted()  # created at the provider; its answer still 2 s away
        assert w.http.post(f"/api/jobs/{job['id']}/cancel").status_code == 202
        assert w.wait_until_ended(job["id"])["status"] == "cancelled"
        assert len(w.fake.cancelled) == 1  # type: ignore[attr-defined]


class _Two(BaseModel):
    seconds: float = 60.0


@pipeline("test.remote-past-its-limit", input=_Two, phases={"work": (0, 100)}, time_limit_s=1.5)
async def _past_its_limit(ctx: PipelineContext, params: _Two) -> JsonObject:
    await ctx.phase("work")
    request = RemoteRequest("genwire-test/video-model", {"prompt": "x"})
    made = await ctx.run_remote("replicate", request, timeout_s=params.seconds)
    return made.output


@pipeline("test.remote-key-reused", input=_Two, phases={"work": (0, 100)})
async def _key_reused(ctx: PipelineContext, params: _Two) -> JsonObject:
    await ctx.phase("work")
    await ctx.run_remote("replicate", RemoteRequest("genwire-test/video-model", {"prompt": "a"}))
    try:
        await ctx.run_remote(
            "replicate", RemoteRequest("genwire-test/other-model", {"prompt": "b"})
        )
    except PipelineError as error:
        return {"refused": error.message}
    return {"refused": None}


def _registry() -> PipelineRegistry:
    registry = built_for_tests.test_registry()
    registry.register(_past_its_limit)
    registry.register(_key_reused)
    return registry


def test_a_pipeline_past_its_time_limit_stops_its_provider_job(tmp_path: Path) -> None:
    case = BY_NAME["replicate"]
    with world(case, tmp_path, registry=_registry()) as w:
        w.fake.plan(case.model, outcome="never")  # type: ignore[attr-defined]
        job = w.wait_until_ended(w.submit({"pipeline": "test.remote-past-its-limit"})["id"])
        assert job["status"] == "failed"
        assert job["error"]["code"] == "timeout"
        assert len(w.fake.cancelled) == 1  # type: ignore[attr-defined]


def test_a_call_key_reused_for_another_request_is_refused_not_answered_with_the_first(
    tmp_path: Path,
) -> None:
    case = BY_NAME["replicate"]
    with world(case, tmp_path, registry=_registry()) as w:
        job = w.wait_until_ended(w.submit({"pipeline": "test.remote-key-reused"})["id"])
        assert job["status"] == "succeeded", job["error"]
        assert "another request" in job["output"]["refused"]
        assert len(w.fake.submissions) == 1  # type: ignore[attr-defined]


def test_a_provider_outage_of_a_while_is_waited_out(tmp_path: Path) -> None:
    case = BY_NAME["replicate"]
    with world(case, tmp_path) as w:
        w.fake.plan(case.model, run_s=2.0)  # type: ignore[attr-defined]
        job = w.submit(case.body())
        w.wait_submitted()
        w.fake.fail_next(15, 502)
        ended = w.wait_until_ended(job["id"])
        assert ended["status"] == "succeeded", ended["error"]
        warnings = [e for e in w.events(job["id"]) if e["type"] == "warning"]
        assert any(e["code"] == "provider_unreachable" for e in warnings)


def test_a_job_that_ended_at_the_provider_just_before_its_deadline_is_not_cancelled(
    tmp_path: Path,
) -> None:
    """The deadline falls between two polls, after the provider finished: one last
    look finds it done."""
    case = BY_NAME["replicate"]
    slow_polls = replace(FAST, poll_s=(30.0, 30.0))
    with world(case, tmp_path, providers=slow_polls) as w:
        w.fake.plan(case.model, run_s=0.5)  # type: ignore[attr-defined]
        job = w.wait_until_ended(w.submit(case.body(timeout_s=1.5))["id"])
        assert job["status"] == "succeeded", job["error"]
        assert w.fake.cancelled == []  # type: ignore[attr-defined]


def test_a_webhook_with_a_secret_that_is_not_ascii_is_a_401(tmp_path: Path) -> None:
    case = BY_NAME["runware"]
    with world(case, tmp_path, webhooks=True) as w:
        w.fake.plan(case.model, outcome="never")  # type: ignore[attr-defined]
        job = w.submit(case.body())
        w.wait_submitted()
        url = w.fake.submissions[0]["webhookURL"].split("&secret=")[0]  # type: ignore[attr-defined]
        assert httpx.post(f"{url}&secret=%C3%A9", json={}).status_code == 401
        w.http.post(f"/api/jobs/{job['id']}/cancel")
        assert w.wait_until_ended(job["id"])["status"] == "cancelled"


async def test_runware_refusing_a_taskuuid_it_has_means_it_was_submitted(tmp_path: Path) -> None:
    """A submit that reached Runware, tried again with the same taskUUID, is
    followed, not failed (Runware answers conflictTaskUUID)."""
    from genwire.providers.remote import build_providers
    from tests.fakes.runware import run_fake_runware

    with run_fake_runware() as fake:
        settings = BY_NAME["runware"].configure(FAST, fake)
        runware = build_providers(settings)["runware"]
        request = RemoteRequest("runware:test@1", {"positivePrompt": "x"}, "videoInference")
        task_uuid = runware.new_job_id()
        first = await runware.submit(request, webhook_url=None, job_id=task_uuid)
        again = await runware.submit(request, webhook_url=None, job_id=task_uuid)
        await runware.http.close()
    assert first.provider_job_id == again.provider_job_id == task_uuid
    assert len(fake.submissions) == 1
    assert fake.conflicts == [task_uuid]
