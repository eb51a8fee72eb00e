"""The page's one event stream refused by a proxy (SPEC §6): it falls back, says so,
and still follows a job to its result."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Console, Screenshot
from tests.browser.ui import job_card, open_home, progress_of, start
from tests.conftest import ServerProcess
from tests.faultproxy import Fault, FaultProxy

pytestmark = pytest.mark.slow


def test_a_refused_stream_falls_back_to_polling_and_the_job_still_ends(
    server: ServerProcess,
    proxy: FaultProxy,
    page: Page,
    console: Console,
    screenshot: Screenshot,
) -> None:
    proxy.set(Fault("502", r"^/api/events"))
    console.allow(r"status of 502")  # Chromium's own line for each refused stream
    open_home(page, proxy.url)
    job_id = start(page, "demo.synthetic", steps=30, step_ms=100, output_bytes=4096)
    connection = page.locator("#connection")
    expect(connection).to_have_attribute("data-state", "polling")
    expect(connection).to_contain_text(re.compile("poll", re.I))
    screenshot(page, "polling")

    card = job_card(page, job_id)
    expect(card).to_have_attribute("data-status", "succeeded")
    expect(card.locator(".job-result a[download]")).to_have_count(1)
    assert progress_of(card) == 100
    screenshot(page, "succeeded")
    assert proxy.targets("502"), "the page never tried its stream"
    assert not any(target.startswith("/api/events") for target in proxy.targets("pass"))
