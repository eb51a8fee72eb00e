"""Outage recovery (issue 18): from the server's return to a live page and a moving card.

After `genwire serve` has been down, how soon the page is live again and its job's
card moves, counted from the server's first answer to `/healthz`.

Each run starts a real `genwire serve` (`--lease-ttl 2`, a fresh data dir, a free
port), opens the page in Chromium, starts a long `demo.synthetic` job from its form
and waits until the page is live and the job under way. Then it kills the server
(SIGKILL), waits `--outage` seconds, and starts it again on the same port and data
dir. A MutationObserver in the page notes, on the page's clock, each change of
`#connection` and each change of the job card's progress or status; the bench polls
`/healthz` every 20 ms from the restart on, on its own clock, and the two clocks are
compared through `Date.now()`.

    python -m bench.outage_recovery                          # one 30 s outage, this tree's page
    python -m bench.outage_recovery --outage 30 --runs 2 --web-from 7fc20ba

`--web-from REV` serves `genwire.js`, `app.js` and `app.css` as they are at git
revision REV (through a Playwright route), so the same bench measures the page
before a change; the server is always the working tree's.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from bench._report import describe_machine, print_table
from bench._server import (
    launch_logged,
    serve_command,
    stop_processes,
    surface_errors,
    wait_logged,
)
from tests.browser.ui import open_home, start

#: Debian's build: Playwright's own browser download cannot be had here.
CHROMIUM = "/usr/bin/chromium"
REPOSITORY = Path(__file__).resolve().parent.parent
#: The page's files that `--web-from` takes from git (its scripts and styles, however
#: many there were then); index.html stays the tree's.
WEB_FILE = re.compile(r"^genwire/web/([\w.-]+\.(?:js|css))$")
#: A silent worker's job is taken back this soon after the restart (default 30 s).
LEASE_TTL_S = 2
#: 40 s of job: still under way, whatever the outage, when the server comes back.
JOB = {"steps": 400, "step_ms": 100}
HEALTHZ_EVERY_S = 0.02
#: How long the restarted server may take to answer `/healthz`.
HEALTHY_WITHIN_S = 60.0
#: Any wait for the page (load, form, first live); the machine is small and shared.
PAGE_TIMEOUT_MS = 60_000
ERRORS = r" (ERROR|CRITICAL) |^Traceback"

#: Notes `#connection`'s changes and the job card's progress and status changes into
#: `window.outageLog`, with `Date.now()`. The card is looked up at each change, as the
#: page may render it anew.
RECORD = """(jobId) => {
  window.outageLog = [];
  const pill = document.querySelector('#connection');
  const cardState = () => {
    const card = document.querySelector(`#jobs article.job[data-job-id="${jobId}"]`);
    const bar = card && card.querySelector('progress');
    return card ? `${bar ? bar.value : ''} ${card.dataset.status}` : null;
  };
  let last = cardState();
  new MutationObserver(() => {
    window.outageLog.push({t: Date.now(), kind: 'pill', state: pill.dataset.state,
                           text: pill.textContent});
  }).observe(pill, {attributes: true, childList: true, characterData: true, subtree: true});
  new MutationObserver(() => {
    const now = cardState();
    if (now === last) return;
    last = now;
    window.outageLog.push({t: Date.now(), kind: 'card', state: now});
  }).observe(document.querySelector('#jobs'),
             {attributes: true, childList: true, characterData: true, subtree: true});
}"""
#: True once the log has an entry of `kind` (and `state`) at or after `since`.
SEEN = """([kind, state, since]) => window.outageLog.some(
  (e) => e.kind === kind && (state === null || e.state === state) && e.t >= since)"""


@dataclass(frozen=True)
class Recovery:
    """One run's figures; times in seconds from the first `/healthz` 200."""

    down_s: float  #: from the kill to the first `/healthz` 200
    to_live_s: float | None  #: None: not live within `--live-within`
    to_card_s: float | None  #: None: the card did not move within `--live-within`
    outage_labels: list[str]  #: the pill's texts from the kill to the first 200
    return_labels: list[str]  #: and from then until live
    clock_offset_ms: float  #: the page's `Date.now()` minus the bench's `time.time()`


def git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(REPOSITORY), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout


def web_files(revision: str) -> dict[str, str]:
    """The page's scripts and styles as they are at `revision`."""
    listed = git("ls-tree", "--name-only", revision, "genwire/web/").splitlines()
    names = [match.group(1) for match in map(WEB_FILE.match, listed) if match]
    return {name: git("show", f"{revision}:genwire/web/{name}") for name in names}


@dataclass
class Server:
    """`genwire serve` on one data dir in `folder`, started again as the run needs."""

    folder: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, port: int = 0) -> subprocess.Popen[bytes]:
        """Starts it on `port` (0: a free one) with a log of its own."""
        command = serve_command(
            self.folder / "data",
            *("--port", str(port), "--log-level", "warning", "--lease-ttl", str(LEASE_TTL_S)),
            # Only the bench's own stop is quicker: the job is not waited for at the end.
            *("--shutdown-grace", "0"),
        )
        log = self.folder / f"serve-{len(self.processes) + 1}.log"
        self.processes.append(launch_logged(command, log))
        return self.processes[-1]

    def start_first(self) -> str:
        """Starts it on a free port; answers its URL."""
        process = self.start()
        return wait_logged(process, self.folder / "serve-1.log", r"serving on (http://\S+)")[1]

    def kill(self) -> float:
        """SIGKILL, as a crash or an OOM kill would; answers when (`time.time()`)."""
        process = self.processes[-1]
        process.kill()
        process.wait(timeout=10)
        return time.time()

    def stop(self) -> None:
        """Stops what still runs; a log with errors says so on stderr."""
        stop_processes(self.processes, grace_s=10)
        for log in sorted(self.folder.glob("serve-*.log")):
            surface_errors(log.stem, log, ERRORS)


def first_healthy(url: str, process: subprocess.Popen[bytes]) -> float:
    """Polls `/healthz` until it answers 200; answers when it did (`time.time()`)."""
    deadline = time.monotonic() + HEALTHY_WITHIN_S
    with httpx.Client(timeout=1.0) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the restarted server exited {process.returncode}")
            try:
                if http.get(f"{url}/healthz").status_code == 200:
                    return time.time()
            except httpx.TransportError:
                pass
            time.sleep(HEALTHZ_EVERY_S)
    raise RuntimeError(f"the restarted server did not answer /healthz in {HEALTHY_WITHIN_S} s")


def clock_offset_ms(page: Page) -> float:
    """The page's `Date.now()` minus the bench's `time.time()`, in ms, from the
    quickest of a few round trips (the same machine's clock: near 0, but checked)."""
    samples = []
    for _ in range(5):
        before = time.time()
        page_now: float = page.evaluate("Date.now()")
        after = time.time()
        samples.append((after - before, page_now - (before + after) * 500))
    return min(samples)[1]


def serve_web_from(page: Page, files: Mapping[str, str]) -> None:
    """The page gets `files` in place of the server's own."""
    for name, body in files.items():
        content_type = "text/css" if name.endswith(".css") else "text/javascript"
        page.route(f"**/ui/{name}", fulfil_with(body, content_type))


def fulfil_with(body: str, content_type: str) -> Callable[[Route], None]:
    # One parameter: Playwright passes a handler of two the request as its second.
    return lambda route: route.fulfill(body=body, content_type=content_type)


def start_job(page: Page, url: str) -> str:
    """The long job, started from the page's form, under way on a live page."""
    open_home(page, url)
    job_id = start(page, "demo.synthetic", **JOB)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    page.wait_for_function(
        """(jobId) => document.querySelector(
             `#jobs article.job[data-job-id="${jobId}"] progress`)?.value > 2""",
        arg=job_id,
    )
    return job_id


def wait_seen(page: Page, kind: str, state: str | None, since_ms: float, until: float) -> None:
    """Waits, until `until` (`time.monotonic()`), for a log entry; none is no error."""
    remaining_ms = (until - time.monotonic()) * 1000
    if remaining_ms <= 0:
        return
    with suppress(PlaywrightTimeout):
        page.wait_for_function(SEEN, arg=[kind, state, since_ms], polling=100, timeout=remaining_ms)


def label(text: str) -> str:
    """A pill's text without its clock and counts, so repeats collapse."""
    return re.sub(r"\d+", "N", re.sub(r"\d\d:\d\d:\d\d", "hh:mm:ss", text))


def labels(log: Sequence[Mapping[str, Any]], start_ms: float, end_ms: float) -> list[str]:
    """The pill's distinct texts between two page times, in the order first shown."""
    shown = (e["text"] for e in log if e["kind"] == "pill" and start_ms <= e["t"] < end_ms)
    return list(dict.fromkeys(label(text) for text in shown))


def first_at(
    log: Sequence[Mapping[str, Any]], kind: str, state: str | None, since_ms: float
) -> float | None:
    times = [
        e["t"]
        for e in log
        if e["kind"] == kind and (state is None or e["state"] == state) and e["t"] >= since_ms
    ]
    return min(times, default=None)


def recover(
    page: Page, server: Server, url: str, outage_s: float, live_within_s: float
) -> Recovery:
    """Kills the server under the live page, starts it again on its port and data
    after `outage_s`, and times the page's recovery."""
    port = urlsplit(url).port
    assert port is not None
    offset_ms = clock_offset_ms(page)
    page.evaluate(RECORD, start_job(page, url))
    killed = server.kill()
    time.sleep(outage_s)  # the outage itself: nothing to wait for
    relaunched = time.time()
    healthy = first_healthy(url, server.start(port))
    # Nothing before the relaunch can come from the new server: events of the old one
    # still in flight at the kill must not count as the card moving.
    since_ms = relaunched * 1000 + offset_ms
    until = time.monotonic() + live_within_s
    wait_seen(page, "pill", "live", since_ms, until)
    wait_seen(page, "card", None, since_ms, until)
    log: list[dict[str, Any]] = page.evaluate("window.outageLog")
    healthy_ms = healthy * 1000 + offset_ms
    live_ms = first_at(log, "pill", "live", since_ms)
    card_ms = first_at(log, "card", None, since_ms)
    return Recovery(
        down_s=healthy - killed,
        to_live_s=None if live_ms is None else (live_ms - healthy_ms) / 1000,
        to_card_s=None if card_ms is None else (card_ms - healthy_ms) / 1000,
        outage_labels=labels(log, killed * 1000 + offset_ms, healthy_ms),
        return_labels=labels(log, healthy_ms, float("inf") if live_ms is None else live_ms),
        clock_offset_ms=offset_ms,
    )


def measure(
    browser: Browser, outage_s: float, live_within_s: float, files: Mapping[str, str] | None
) -> Recovery:
    """One run on its own server, data dir and browser context (its own origin and
    localStorage); all of them are gone when it returns, whatever happened."""
    with tempfile.TemporaryDirectory(prefix="genwire-bench-") as folder, ExitStack() as stack:
        server = Server(Path(folder))
        # Unwound last in, first out: the server is stopped even if closing the page fails.
        stack.callback(server.stop)
        context = browser.new_context()
        stack.callback(context.close)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        page = context.new_page()
        if files is not None:
            serve_web_from(page, files)
        url = server.start_first()
        return recover(page, server, url, outage_s, live_within_s)


def seconds(value: float | None, bound_s: float) -> str:
    return f"> {bound_s:g}" if value is None else f"{value:.2f}"


def report(runs: Sequence[Recovery], live_within_s: float) -> None:
    print_table(
        ["run", "outage s", "to live s", "to card change s", "labels seen (outage; then)"],
        [
            [
                index,
                f"{run.down_s:.1f}",
                seconds(run.to_live_s, live_within_s),
                seconds(run.to_card_s, live_within_s),
                " → ".join(run.outage_labels) + "; " + (" → ".join(run.return_labels) or "-"),
            ]
            for index, run in enumerate(runs, start=1)
        ],
    )
    live = [run.to_live_s for run in runs if run.to_live_s is not None]
    card = [run.to_card_s for run in runs if run.to_card_s is not None]
    missed = f"; not live within {live_within_s:g} s: {len(runs) - len(live)} run(s)"
    offset = max((abs(run.clock_offset_ms) for run in runs), default=0.0)
    print(
        f"median of {len(runs)} run(s) after the first /healthz 200: live {median(live)} s, "
        f"card change {median(card)} s{missed if len(live) < len(runs) else ''} "
        f"(page clock − bench clock within {offset:.1f} ms)"
    )


def median(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outage", type=float, default=30.0, help="seconds the server is down")
    parser.add_argument("--runs", type=int, default=1, help="outages, one server each")
    parser.add_argument("--web-from", metavar="REV", help="genwire.js, app.js, app.css from git")
    parser.add_argument(
        "--live-within", type=float, default=120.0, help="seconds to wait for live after the return"
    )
    args = parser.parse_args()
    files = None if args.web_from is None else web_files(args.web_from)
    page_from = "the working tree" if args.web_from is None else f"git {args.web_from}"
    print(f"outage_recovery; page from {page_from}; {describe_machine()}")
    expect.set_options(timeout=PAGE_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            runs = [
                measure(browser, args.outage, args.live_within, files) for _ in range(args.runs)
            ]
        finally:
            browser.close()
    report(runs, args.live_within)


if __name__ == "__main__":
    main()
