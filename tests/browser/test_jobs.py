"""The web page (SPEC §6) in a real Chromium against a real `genwire serve`: a video
made and played, a job recovered after a reload, cancelled, failed, checked, and a
batch."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Locator, Page, Request, Response, Route, expect

from genwire.client import Client
from tests.browser.conftest import Screenshot
from tests.browser.ui import (
    RECORD_FIRST_JOB,
    VIDEO_PHASES,
    job_card,
    open_home,
    progress_of,
    project_card,
    snapshot,
    start,
)
from tests.conftest import ServerProcess
from tests.faultproxy import Fault, FaultProxy

pytestmark = pytest.mark.slow

CLIP_S = 6.0

#: Records, on every change of the page, the first job card's status, progress,
#: message and phase chips, so that the steps a job went through can be checked
#: after it ended, however fast it ran.


#: Whether the clip's subtitle track loaded cues (the page may hand the browser the SRT
#: converted to WebVTT, which is all a <track> reads).
SUBTITLES_LOADED = """(video) => {
  const track = video.querySelector('track[kind="subtitles"]').track;
  if (track.mode === 'disabled') track.mode = 'hidden';
  return track.cues !== null && track.cues.length > 0;
}"""

SEEK = """(video, to) => new Promise((resolve) => {
  video.addEventListener('seeked', () => resolve(video.currentTime), {once: true});
  video.currentTime = to;
})"""


def test_a_video_job_goes_through_its_phases_and_its_clip_plays_and_seeks(
    page: Page, server: ServerProcess, screenshot: Screenshot
) -> None:
    files: list[Response] = []
    page.on("response", lambda r: files.append(r) if "/api/files/" in r.url else None)
    open_home(page, server.url)
    connection = page.locator("#connection")
    expect(connection).to_have_attribute("data-state", "live")
    expect(connection).to_contain_text(re.compile("live", re.I))
    page.evaluate(RECORD_FIRST_JOB)

    job_id = start(page, "demo.video", prompt="A lighthouse at dawn", duration_s=CLIP_S)
    card = job_card(page, job_id)
    expect(card).to_have_attribute("data-status", "succeeded")
    screenshot(page, "succeeded")

    samples: list[dict[str, Any]] = page.evaluate("window.jobSamples")
    progress = [sample["progress"] for sample in samples]
    assert progress == sorted(progress), "progress went down"
    assert len(set(progress)) >= 3, f"progress seen only at {sorted(set(progress))}"
    assert progress[-1] == 100
    assert any(sample["message"] for sample in samples), "no message was ever shown"
    assert [sample["status"] for sample in samples][-1] == "succeeded"
    for phase in VIDEO_PHASES:
        states = [sample["chips"].get(phase) for sample in samples]
        assert states[-1] == "done", f"{phase}: {states}"
    seen_active = {
        phase for sample in samples for phase, state in sample["chips"].items() if state == "active"
    }
    assert seen_active, "no phase was ever shown active"

    result = card.locator(".job-result")
    video = result.locator("video")
    expect(video).to_have_attribute("src", re.compile(r"/api/files/art_\w+"))
    expect(video.locator('track[kind="subtitles"]')).to_have_count(1)
    assert video.evaluate("video => video.controls")
    downloads = result.locator("a[download]")
    expect(downloads.first).to_be_visible()
    hrefs = [link.get_attribute("href") or "" for link in downloads.all()]
    video_src = video.get_attribute("src") or ""
    assert any(urlsplit(href).path == urlsplit(video_src).path for href in hrefs), hrefs

    page.wait_for_function("video => video.readyState >= 2", arg=video.element_handle())
    page.wait_for_function(SUBTITLES_LOADED, arg=video.element_handle())
    assert abs(video.evaluate("video => video.duration") - CLIP_S) < 0.5
    video.evaluate("video => video.play()")
    page.wait_for_function("video => video.currentTime > 0.3", arg=video.element_handle())
    screenshot(page, "playing")
    video.evaluate("video => video.pause()")
    assert abs(video.evaluate(SEEK, 4.0) - 4.0) < 0.5
    assert any(r.status == 206 for r in files if urlsplit(r.url).path == urlsplit(video_src).path)


def test_a_job_followed_before_a_reload_is_followed_after_it(
    page: Page, server: ServerProcess, screenshot: Screenshot
) -> None:
    open_home(page, server.url)
    job_id = start(page, "demo.synthetic", steps=40, step_ms=100)
    card = job_card(page, job_id)
    expect(card.locator(".job-message")).to_contain_text(re.compile(r"step \d+/40"))
    expect(card.locator(".job-eta")).not_to_be_empty()
    screenshot(page, "before-reload")
    assert job_id in page.evaluate("JSON.stringify({...localStorage})")

    page.reload()
    expect(card).to_have_count(1)
    screenshot(page, "after-reload")
    expect(card).to_have_attribute("data-status", "succeeded")
    assert progress_of(card) == 100
    screenshot(page, "succeeded")


def test_cancel_stops_a_running_job(
    page: Page, server: ServerProcess, screenshot: Screenshot
) -> None:
    open_home(page, server.url)
    job_id = start(page, "demo.synthetic", steps=600, step_ms=100)
    card = job_card(page, job_id)
    expect(card).to_have_attribute("data-status", "running")

    with page.expect_response(re.compile(r"/cancel$")):
        card.locator("button.job-cancel").click()
    expect(card).to_have_attribute("data-status", "cancelled")
    expect(card.locator('.chip[data-phase="work"]')).to_have_attribute("data-state", "stopped")
    screenshot(page, "cancelled")
    assert snapshot(server.url, job_id)["status"] == "cancelled"
    cancel = card.locator("button.job-cancel")
    assert not cancel.is_visible() or cancel.is_disabled(), "an ended job still offers cancel"
    assert_stays_cancelled(page, card, job_id)


def test_a_late_answer_to_cancel_does_not_undo_the_cancellation_the_stream_showed(
    page: Page, server: ServerProcess, screenshot: Screenshot
) -> None:
    """Regression: the answer to `POST …/cancel` is the job as it was then (running,
    cancel requested). When it reached the page after the stream's `job-cancelled`, the
    page put the job back to running, for good."""
    open_home(page, server.url)
    job_id = start(page, "demo.synthetic", steps=600, step_ms=100)
    card = job_card(page, job_id)
    expect(card).to_have_attribute("data-status", "running")

    def answer_after_the_stream(route: Route) -> None:
        answer = route.fetch()
        expect(card).to_have_attribute("data-status", "cancelled")
        route.fulfill(response=answer)

    page.route(re.compile(r"/cancel$"), answer_after_the_stream)
    with page.expect_response(re.compile(r"/cancel$")):
        card.locator("button.job-cancel").click()
    screenshot(page, "answered")
    assert_stays_cancelled(page, card, job_id)


def assert_stays_cancelled(page: Page, card: Locator, job_id: str) -> None:
    """The card shows the job cancelled once everything the page had under way is done,
    a "Check now" included (it runs after all of it)."""

    def asks_for_the_job(request: Request) -> bool:
        return request.method == "GET" and urlsplit(request.url).path == f"/api/jobs/{job_id}"

    with page.expect_request(asks_for_the_job):
        card.locator("button.job-check").click()
    expect(card).to_have_attribute("data-status", "cancelled")


def test_a_failed_job_shows_its_warning_and_its_error(
    page: Page, server: ServerProcess, screenshot: Screenshot
) -> None:
    open_home(page, server.url)
    job_id = start(page, "demo.synthetic", steps=10, step_ms=20, warn_at=2, fail_at=5)
    card = job_card(page, job_id)
    expect(card).to_have_attribute("data-status", "failed")
    expect(card.locator(".job-warnings li")).to_contain_text(["synthetic warning at step 2"])
    expect(card.locator(".job-error")).to_contain_text("synthetic failure at step 5")
    # It failed inside its first phase: that chip says so, the next never started.
    expect(card.locator('.chip[data-phase="work"]')).to_have_attribute("data-state", "failed")
    expect(card.locator('.chip[data-phase="output"]')).to_have_attribute("data-state", "pending")
    screenshot(page, "failed")


def test_check_now_asks_the_server_and_shows_what_it_says(
    server: ServerProcess, proxy: FaultProxy, page: Page, screenshot: Screenshot
) -> None:
    """The page's stream is held silent by a proxy, so it learns that the job ended
    only from the request that "Check now" makes."""
    proxy.set(Fault("stall", r"^/api/events"))
    open_home(page, proxy.url)
    job_id = start(page, "demo.synthetic", steps=5, step_ms=10)
    card = job_card(page, job_id)
    expect(card).to_have_count(1)
    with Client(server.url) as client:
        assert client.wait(job_id, timeout=60).status == "succeeded"

    def asks_for_the_job(request: Request) -> bool:
        return request.method == "GET" and urlsplit(request.url).path == f"/api/jobs/{job_id}"

    check = card.locator("button.job-check")
    expect(check).to_have_text("Check now")
    with page.expect_request(asks_for_the_job) as asked:
        check.click()
    answer = asked.value.response()
    assert answer is not None
    assert answer.status == 200
    expect(card).to_have_attribute("data-status", "succeeded")
    assert progress_of(card) == 100
    screenshot(page, "checked")


def test_a_batch_makes_a_project_whose_clips_all_end_and_a_reload_keeps_it(
    page: Page, server: ServerProcess, screenshot: Screenshot
) -> None:
    open_home(page, server.url)
    project_id = start(page, "demo.synthetic", batch=3, steps=10, step_ms=50)
    assert project_id.startswith("prj_")
    project = project_card(page, project_id)
    clips = project.locator(".clip")
    expect(clips).to_have_count(3)
    for index in range(3):
        expect(clips.nth(index)).to_have_attribute("data-status", "succeeded")
    all_three = re.compile(r"\b3\s*(/|of)\s*3\b")
    expect(project.locator(".project-counts")).to_contain_text(all_three)
    screenshot(page, "done")
    shown = sorted(clip.get_attribute("data-job-id") or "" for clip in clips.all())
    with server.client() as client:
        jobs = client.get(f"/api/projects/{project_id}").json()["jobs"]
    assert shown == sorted(job["id"] for job in jobs)

    page.reload()
    expect(project.locator(".project-counts")).to_contain_text(all_three)
    expect(clips).to_have_count(3)
    screenshot(page, "after-reload")


def test_a_batch_created_elsewhere_appears_and_is_followed(
    page: Page, server: ServerProcess, screenshot: Screenshot
) -> None:
    open_home(page, server.url)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    clip = {"pipeline": "demo.synthetic", "input": {"steps": 10, "step_ms": 50}}
    with server.client() as client:
        created = client.post("/api/projects", json={"name": "from the API", "clips": [clip] * 2})
    assert created.status_code == 201, created.text
    project_id = created.json()["id"]
    project = project_card(page, project_id)
    clips = project.locator(".clip")
    expect(clips).to_have_count(2)
    for index in range(2):
        expect(clips.nth(index)).to_have_attribute("data-status", "succeeded")
    expect(project.locator(".project-counts")).to_contain_text(re.compile(r"\b2\s*(/|of)\s*2\b"))
    assert page.locator("#jobs .job").count() == 0, "a clip was shown as a lone job"
    screenshot(page, "from-elsewhere")
    page.reload()
    expect(clips).to_have_count(2)
