"""The new-job form as a newcomer meets it (issue 18, item 7): labels written for people,
the prompt and Start on the first screen with the rest folded under "More options", and
a batch whose clips differ."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import DESKTOP, Screenshot
from tests.browser.ui import open_home, project_card, start
from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow

#: The labels pydantic makes from field names, which the page once showed as they were.
MACHINE_LABELS = {
    "Duration S",
    "Fps",
    "Step Ms",
    "Output Bytes",
    "Warn At",
    "Fail At",
    "Fail Retryable",
    "Timeout S",
    "Task Type",
}
#: The form's labels, as a person reads them.
LABELS = "(form) => [...form.querySelectorAll('label')].map((label) => label.textContent.trim())"
#: Where Start is, and how far the page has scrolled.
START_BOX = """(button) => {
  const box = button.getBoundingClientRect();
  return {top: box.top, bottom: box.bottom, left: box.left, right: box.right,
          scrolled: window.scrollY};
}"""


@pytest.mark.parametrize(
    ("pipeline", "titles"),
    [
        ("demo.video", {"duration_s": "Duration (seconds)", "fps": "Frames per second"}),
        ("demo.synthetic", {"step_ms": "Step time (ms)", "output_bytes": "Output size (bytes)"}),
    ],
)
def test_fields_are_labelled_with_titles_written_for_people(
    page: Page, server: ServerProcess, pipeline: str, titles: dict[str, str]
) -> None:
    open_home(page, server.url)
    form = page.locator("form#new-job")
    form.locator("select#pipeline").select_option(pipeline)

    labels: list[str] = form.evaluate(LABELS)
    assert not MACHINE_LABELS & set(labels), labels
    for name, title in titles.items():
        expect(form.get_by_label(title, exact=True)).to_have_attribute("name", name)


def test_at_1280_by_900_start_shows_without_scrolling_and_the_rest_is_folded(
    new_page: Callable[..., Page], server: ServerProcess, screenshot: Screenshot
) -> None:
    page: Page = new_page(**DESKTOP)
    open_home(page, server.url)
    form = page.locator("form#new-job")
    expect(form.locator("select#pipeline")).to_have_value("demo.video")
    expect(form.get_by_label("Prompt")).to_be_visible()
    screenshot(page, "first-screen")

    start_button = form.get_by_role("button", name="Start")
    box = start_button.evaluate(START_BOX)
    assert box["scrolled"] == 0, box
    assert box["top"] >= 0, box
    assert box["bottom"] <= DESKTOP["height"], box
    assert box["left"] >= 0, box
    assert box["right"] <= DESKTOP["width"], box

    more = form.locator("details.more-options")
    expect(more.locator("summary")).to_have_text("More options")
    expect(more).not_to_have_attribute("open", "")
    for name in ("duration_s", "width", "height", "fps", "scenes", "voice", "seed"):
        expect(more.locator(f'[name="{name}"]')).to_be_hidden()
    more.locator("summary").click()
    expect(more.locator('[name="fps"]')).to_be_visible()

    form.locator("select#pipeline").select_option("demo.synthetic")
    expect(more).not_to_have_attribute("open", "")
    expect(form.locator('[name="step_ms"]')).to_be_hidden()


def test_a_batch_of_video_clips_from_the_page_gives_each_clip_its_own_seed(
    page: Page, server: ServerProcess, screenshot: Screenshot
) -> None:
    open_home(page, server.url)
    smallest = {"duration_s": 1, "width": 160, "height": 90, "fps": 1}
    project_id = start(page, "demo.video", batch=3, prompt="Tide pools at noon", **smallest)
    clips = project_card(page, project_id).locator(".clip")
    expect(clips).to_have_count(3)
    for index in range(3):
        expect(clips.nth(index)).to_have_attribute("data-status", "succeeded")
    screenshot(page, "batch")

    with server.client() as client:
        answer = client.get("/api/jobs", params={"project_id": project_id})
    assert answer.status_code == 200, answer.text
    jobs = answer.json()["items"]
    assert len(jobs) == 3
    seeds = [job["input"].get("seed") for job in jobs]
    assert all(isinstance(seed, int) for seed in seeds), seeds
    assert len(set(seeds)) == 3, seeds
    posters = {
        artifact["sha256"]
        for job in jobs
        for artifact in job["artifacts"]
        if artifact["name"] == "poster.png"
    }
    assert len(posters) == 3, jobs
