"""What a person does on the page, in the words of its DOM contract: open it, fill the
new-job form, press Start, find a job's or a project's card."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import Locator, Page, Response, expect

#: The Quick Demo's phases, in order (SPEC §2).
VIDEO_PHASES = ("plan", "tts", "visuals", "compose", "render")
_CREATE_PATH = re.compile(r"/api/(jobs|projects)")


def open_home(page: Page, url: str) -> None:
    """Open the page and wait until its form knows the pipelines."""
    response = page.goto(url)
    assert response is not None
    assert response.ok, f"GET / answered {response.status}"
    expect(page.locator("#connection")).to_be_visible()
    expect(page.locator('select#pipeline option[value="demo.synthetic"]')).to_have_count(1)


def fill_form(page: Page, pipeline: str, batch: int = 1, **values: Any) -> None:
    """Choose the pipeline, then fill each named input (a bool ticks a checkbox, a
    select gets the option of that value, anything else is typed), unfolding "More
    options" first when one of them is there."""
    form = page.locator("form#new-job")
    form.locator("select#pipeline").select_option(pipeline)
    more = form.locator("details.more-options")
    folded = [name for name in values if more.locator(f'[name="{name}"]').count()]
    if folded and not more.evaluate("details => details.open"):
        more.locator("summary").click()
    for name, value in values.items():
        field = form.locator(f'[name="{name}"]')
        if isinstance(value, bool):
            field.set_checked(value)
        elif field.evaluate("element => element.tagName") == "SELECT":
            field.select_option(str(value))
        else:
            field.fill(str(value))
    form.locator("input#batch-size").fill(str(batch))


def start(page: Page, pipeline: str, batch: int = 1, **values: Any) -> str:
    """Fill the form, press Start, and return the id the server gave what it created
    (`job_…`, or `prj_…` for a batch)."""
    fill_form(page, pipeline, batch, **values)

    def is_create(response: Response) -> bool:
        path = urlsplit(response.url).path
        return response.request.method == "POST" and _CREATE_PATH.fullmatch(path) is not None

    with page.expect_response(is_create) as created:
        page.locator("form#new-job").get_by_role("button", name="Start").click()
    response = created.value
    assert response.status in (200, 201), response.text()
    created_id: str = response.json()["id"]
    return created_id


def job_card(page: Page, job_id: str) -> Locator:
    return page.locator(f'#jobs article.job[data-job-id="{job_id}"]')


def project_card(page: Page, project_id: str) -> Locator:
    return page.locator(f'#projects article.project[data-project-id="{project_id}"]')


def progress_of(card: Locator) -> float:
    value: float = card.locator("progress.job-progress").evaluate("bar => bar.value")
    return value


def snapshot(server_url: str, job_id: str) -> dict[str, Any]:
    """The job as the server has it, asked directly."""
    answer = httpx.get(f"{server_url}/api/jobs/{job_id}", timeout=30)
    answer.raise_for_status()
    job: dict[str, Any] = answer.json()
    return job


#: Samples the first job card at every change of the page (status, progress,
#: message, phase chips) into `window.jobSamples`.
RECORD_FIRST_JOB = """() => {
  window.jobSamples = [];
  const sample = () => {
    const card = document.querySelector('#jobs article.job');
    const bar = card && card.querySelector('progress.job-progress');
    if (!bar) return;
    const chips = {};
    for (const chip of card.querySelectorAll('.phases .chip')) {
      chips[chip.dataset.phase] = chip.dataset.state;
    }
    const message = card.querySelector('.job-message');
    const now = {
      status: card.dataset.status,
      progress: bar.value,
      message: message ? message.textContent.trim() : '',
      chips,
    };
    const last = window.jobSamples[window.jobSamples.length - 1];
    if (JSON.stringify(last) !== JSON.stringify(now)) window.jobSamples.push(now);
  };
  new MutationObserver(sample).observe(document.body, {
    subtree: true, childList: true, attributes: true, characterData: true,
  });
}"""


#: Keeps every value a job card's bar takes, in order, in the bar's `recorded` list.
#: A MutationObserver's callback comes after a burst of changes (a catch-up applies
#: many events in one task), so the values in between are read from `oldValue`.
_RECORD_BAR = """bar => {
  bar.recorded = [bar.value];
  const keep = (value) => {
    if (bar.recorded[bar.recorded.length - 1] !== value) bar.recorded.push(value);
  };
  new MutationObserver((records) => {
    records.slice(1).forEach((record) => keep(Number(record.oldValue)));
    keep(bar.value);
  }).observe(bar, { attributes: true, attributeFilter: ["value"], attributeOldValue: true });
}"""


def record_progress(card: Locator) -> None:
    """From now on, keep every value the card's progress bar takes."""
    card.locator("progress.job-progress").evaluate(_RECORD_BAR)


def recorded_progress(card: Locator) -> list[float]:
    """The values the card's bar took since `record_progress`, in order, each once."""
    values: list[float] = card.locator("progress.job-progress").evaluate("bar => bar.recorded")
    return values
