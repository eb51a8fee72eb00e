"""The page on a server with API keys: it asks for the key, keeps it, and shows
results whose files a `<video>` or `<img>` fetches with the job's stream token
(SPEC §8), since neither can send the key."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Console, Screenshot
from tests.browser.ui import job_card, open_home, start
from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def server(
    serve_process: Callable[..., ServerProcess], monkeypatch: pytest.MonkeyPatch
) -> ServerProcess:
    """The server `new_page` is for, here one with an API key (and the only one
    started): its pages close before it stops."""
    monkeypatch.setenv("GENWIRE_API_KEYS", "sesame:alice")
    return serve_process()


def test_on_a_keyed_server_the_page_takes_the_key_and_shows_the_result(
    server: ServerProcess,
    new_page: Callable[..., Page],
    console: Console,
    screenshot: Screenshot,
) -> None:
    page = new_page()
    console.allow(r"status of 401")  # the first load, before the key is given
    page.goto(server.url)
    expect(page.locator("details#settings")).to_have_attribute("open", "")
    page.get_by_label("API key").fill("sesame")
    page.get_by_role("button", name="Save and reload").click()

    open_home(page, server.url)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    job_id = start(page, "demo.image", prompt="A red fox", width=128, height=96)
    card = job_card(page, job_id)
    expect(card).to_have_attribute("data-status", "succeeded")
    image = card.locator(".job-result img")
    expect(image).to_be_visible()
    image.evaluate("img => img.decode()")
    assert image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [128, 96]
    assert "token=" in (card.locator(".job-result a[download]").first.get_attribute("href") or "")
    screenshot(page, "keyed")
