"""The page at a phone's width: nothing scrolls sideways, and the new-job form can be
used from the keyboard and read by a screen reader."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Screenshot
from tests.browser.ui import job_card, open_home, start
from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow

#: How wide the page scrolls against the window, and the first elements sticking out
#: (or whose content does).
OVERFLOW = """() => {
  const name = (e) => e.tagName.toLowerCase() + (e.id ? `#${e.id}` : '')
    + [...e.classList].map(c => `.${c}`).join('');
  const sticking = [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5
      || (e.scrollWidth > e.clientWidth && getComputedStyle(e).overflowX === 'visible'))
    .slice(0, 5)
    .map(e => `${name(e)} to ${Math.round(e.getBoundingClientRect().right)}px`);
  return {scroll_width: document.scrollingElement.scrollWidth, window: window.innerWidth, sticking};
}"""
#: How a control is named in these tests: its id, else its name, else its text.
KEY = """(e) => e.id || e.getAttribute('name')
  || `${e.tagName.toLowerCase()}:${e.tagName === 'BUTTON' ? e.textContent.trim() : ''}`"""
#: The form's controls a person can use (shown, enabled, not hidden), in page order.
FORM_CONTROLS = f"""(form) => [...form.elements]
  .filter(e => e.type !== 'hidden' && !e.disabled && e.getClientRects().length > 0)
  .map({KEY})"""
FOCUSED = f"() => ({KEY})(document.activeElement)"


def assert_no_sideways_scroll(page: Page) -> None:
    overflow = page.evaluate(OVERFLOW)
    assert overflow["scroll_width"] <= overflow["window"], overflow


def test_on_a_phone_nothing_scrolls_sideways(
    new_page: Callable[..., Page], server: ServerProcess, screenshot: Screenshot
) -> None:
    page = new_page(width=375, height=740)
    open_home(page, server.url)
    screenshot(page, "form")
    assert_no_sideways_scroll(page)

    job_id = start(page, "demo.video", prompt="A lighthouse at dawn", duration_s=2)
    card = job_card(page, job_id)
    expect(card).to_have_attribute("data-status", "succeeded")
    expect(card.locator(".job-result video")).to_be_visible()
    screenshot(page, "video")
    assert_no_sideways_scroll(page)


def test_on_a_phone_the_form_works_from_the_keyboard_with_labels(
    new_page: Callable[..., Page], server: ServerProcess, screenshot: Screenshot
) -> None:
    page = new_page(width=375, height=740)
    open_home(page, server.url)
    form = page.locator("form#new-job")
    controls: list[str] = form.evaluate(FORM_CONTROLS)
    assert controls[0] == "pipeline"

    expect(page.get_by_role("combobox", name=re.compile("pipeline", re.I))).to_have_id("pipeline")
    expect(form.get_by_role("button", name="Start")).to_be_visible()
    for control in form.locator("input, select, textarea, button").all():
        if control.is_visible():
            expect(control).to_have_accessible_name(re.compile(r"\S"))

    start_button = form.get_by_role("button", name="Start")
    start_key: str = start_button.evaluate(KEY)
    focused: list[str] = []
    for _ in range(len(controls) + 20):
        page.keyboard.press("Tab")
        focused.append(page.evaluate(FOCUSED))
        if focused[-1] == start_key:
            break
    screenshot(page, "tabbed")
    assert focused[-1] == start_key, f"Tab never reached Start; it went {focused}"
    expected = controls[: controls.index(start_key) + 1]
    reached = list(dict.fromkeys(key for key in focused if key in expected))
    assert reached == expected, f"Tab went {focused}"
