"""A Runware job started from the page, against Runware's fake: the page shows the
provider's phases and messages, and the copied MP4 plays from genwire's storage."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Screenshot
from tests.browser.ui import RECORD_FIRST_JOB, job_card, open_home, start
from tests.conftest import ServerProcess
from tests.fakes.runware import FakeRunware, run_fake_runware
from tests.providers_world import BY_NAME, provider_environment

PROVIDER_PHASES = ("submit", "queue", "generate", "copy")


@pytest.fixture
def runware() -> Iterator[FakeRunware]:
    with run_fake_runware() as fake:
        yield fake


@pytest.fixture
def server(
    runware: FakeRunware,
    serve_process: Callable[..., ServerProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> ServerProcess:
    """The pages' server: `genwire serve` with Runware's key and its fake's URL."""
    provider_environment(BY_NAME["runware"], runware, monkeypatch)
    return serve_process()


def test_a_runware_job_from_the_page_shows_its_phases_and_its_copied_clip_plays(
    page: Page, server: ServerProcess, runware: FakeRunware, screenshot: Screenshot
) -> None:
    runware.plan("runware:test@1", run_s=2.0)
    open_home(page, server.url)
    options = page.locator("select#pipeline option")
    expect(page.locator('select#pipeline option[value="runware"]')).to_be_enabled()
    expect(page.locator('select#pipeline option[value="fal"]')).to_be_disabled()
    assert "no key configured" in (options.filter(has_text="replicate").text_content() or "")
    page.evaluate(RECORD_FIRST_JOB)

    job_id = start(
        page,
        "runware",
        task_type="videoInference",
        model="runware:test@1",
        input='{"positivePrompt": "A lighthouse at dawn", "duration": 5}',
    )
    card = job_card(page, job_id)
    expect(card).to_have_attribute("data-status", "succeeded")
    screenshot(page, "succeeded")
    assert runware.submissions[0]["positivePrompt"] == "A lighthouse at dawn"

    samples: list[dict[str, Any]] = page.evaluate("window.jobSamples")
    messages = " | ".join(sample["message"] for sample in samples)
    assert "runware" in messages, messages
    for phase in PROVIDER_PHASES:
        assert samples[-1]["chips"][phase] == "done", samples[-1]
    progress = [sample["progress"] for sample in samples]
    assert progress == sorted(progress)

    video = card.locator(".job-result video")
    expect(video).to_have_attribute("src", re.compile(r"/api/files/art_\w+"))
    page.wait_for_function("video => video.readyState >= 2", arg=video.element_handle())
    video.evaluate("video => video.play()")
    page.wait_for_function("video => video.currentTime > 0.3", arg=video.element_handle())
    screenshot(page, "playing")


def test_provider_input_that_is_not_json_is_refused_by_the_form(
    page: Page, server: ServerProcess, runware: FakeRunware
) -> None:
    open_home(page, server.url)
    form = page.locator("form#new-job")
    form.locator("select#pipeline").select_option("runware")
    form.locator('[name="model"]').fill("runware:test@1")
    form.locator('[name="input"]').fill("{not json")
    form.get_by_role("button", name="Start").click()
    expect(page.locator("#form-error")).to_contain_text("input: not valid JSON")
    expect(form.locator('[name="input"]')).to_have_attribute("aria-invalid", "true")
    assert runware.submissions == []
