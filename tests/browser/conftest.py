"""Fixtures of the browser tests: Debian's Chromium driven by Playwright (sync API, in
the test's own thread, where no event loop runs), a fresh browser context per page,
a real `genwire serve` with the built-in pipelines, screenshots kept in a folder, and
the page's console errors collected and failed on."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, expect, sync_playwright

from tests.conftest import REQUIRE_SERVICES, ServerProcess
from tests.faultproxy import FaultProxy

#: Debian's build: Playwright's own browser download cannot be had here.
CHROMIUM = Path("/usr/bin/chromium")
#: Where the screenshots go (git-ignored); `GENWIRE_SCREENSHOTS` moves them.
SCREENSHOTS = Path(os.environ.get("GENWIRE_SCREENSHOTS") or Path(__file__).parent / "screenshots")
#: How long any wait for the page may last. Generous on purpose: the machine is small
#: and shared, and no test measures time.
TIMEOUT_MS = 60_000
DESKTOP = {"width": 1280, "height": 900}
#: Chromium's own console lines for refused connections, while a test's server is down.
REFUSED = r"ERR_CONNECTION_REFUSED|Failed to load resource|Failed to fetch"
#: The `screenshot` fixture: `screenshot(page, "what")`.
Screenshot = Callable[[Page, str], Path]

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so a fixture's teardown knows whether the
    test failed (and takes a screenshot of what the page showed then)."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the folder's tests; closed when they are done."""
    if not CHROMIUM.exists():
        message = (
            f"the browser tests need Debian's chromium at {CHROMIUM}: "
            "`apt-get install chromium` (scripts/test installs it when run as root)"
        )
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            # As root, Chromium refuses to start with its sandbox; playing a clip from a
            # script is what the tests do in place of a person's click on ▶.
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        yield browser
        browser.close()


@dataclass
class Console:
    """The page's console errors and uncaught exceptions; a test may allow some."""

    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def record(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = message.location.get("url", "")
        if url.endswith("/favicon.ico"):  # the browser asks for it, not the page
            return
        self.errors.append(f"{message.text} ({url}:{message.location.get('lineNumber')})")

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Screenshot:
    """`screenshot(page, "what")` saves the whole page as `<test>-<what>.png`."""

    def take(page: Page, what: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", f"{request.node.name}-{what}")
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=path, full_page=True)
        return path

    return take


@pytest.fixture
def new_page(
    browser: Browser,
    server: ServerProcess,
    console: Console,
    screenshot: Screenshot,
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., Page]]:
    """`new_page(width=…, height=…)`: a page in a fresh browser context (its own
    localStorage). After the test: a screenshot of each page if the test failed, and
    a failure if any page logged a console error the test did not allow. The pages
    close before the server stops, which they would take for a network failure."""
    pages: list[Page] = []

    def open_page(width: int = DESKTOP["width"], height: int = DESKTOP["height"]) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.on("console", console.record)
        page.on("pageerror", lambda error: console.errors.append(f"uncaught: {error}"))
        pages.append(page)
        return page

    yield open_page
    call = request.node.stash.get(_REPORTS, {}).get("call")
    for index, page in enumerate(pages):
        if call is not None and call.failed:
            # The page may be what broke; the failure says more than its picture.
            with contextlib.suppress(Error):
                screenshot(page, f"failed{index}")
        page.context.close()
    assert not console.unexpected(), "the page logged errors:\n" + "\n".join(console.unexpected())


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    """A desktop-sized page."""
    return new_page()


@pytest.fixture
def server(serve_process: Callable[..., ServerProcess]) -> ServerProcess:
    """A real `genwire serve` (uvicorn, SQLite, 2 workers, the built-in pipelines) on a
    free port; its own origin, so nothing is left in localStorage from another test."""
    return serve_process()


@pytest.fixture
def proxy(server: ServerProcess) -> Iterator[FaultProxy]:
    """A FaultProxy in front of the server, passing everything until told otherwise.
    Ask for it before `page`, so that it outlives the page: a proxy gone first would
    leave the page logging the errors of its cut connections."""
    with FaultProxy(server.url) as running:
        yield running
