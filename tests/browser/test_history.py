"""History that scales: finished jobs fold into rows (a thumbnail, how they ended, when,
and actions), running jobs and the newest finished one stay open, a filter shows one
status read from the server, and "Load older jobs" pages back through `GET /api/jobs`.

Before, every finished job kept a full-width card with its player (seven jobs made a
5 650 px page), and there was no filter, no paging, no row action, no percentage and
no creation time."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from playwright.sync_api import Locator, Page, Response, Route, expect

from genwire.client import Client
from tests.browser.conftest import Screenshot
from tests.browser.ui import job_card, open_home, snapshot, start
from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow

#: A job and its input, as `POST /api/jobs` takes them.
Spec = tuple[str, dict[str, Any]]

#: About 2 s each (two workers): a clip, its poster.png and its subtitles.
VIDEO: Spec = ("demo.video", {"prompt": "A lighthouse at dawn", "duration_s": 2})
#: Done at once, with no file.
SYNTHETIC: Spec = ("demo.synthetic", {"steps": 2, "step_ms": 10})
FAILING: Spec = ("demo.synthetic", {"steps": 4, "step_ms": 10, "fail_at": 2})
JOBS = "#jobs article.job"
KEY = "sesame"
#: How tall the page may be with seven finished jobs at 1280×900, one of them open.
#: Measured: 1 959 px (the form, the open video card with its 448 px player, six
#: rows of 105 to 120 px); before, each job kept its card and player: 5 650 px.
MAX_PAGE_HEIGHT = 2_600
TOOK = re.compile(r"^ · took (\d+\.\d) s$")
#: A job's log, read (`GET /api/jobs/{id}/poll`) to show its phases, warnings, files.
LOG_PATH = re.compile(r"/api/jobs/(job_\w+)/poll")
CREATED = re.compile(r"^Created \d\d:\d\d:\d\d$")


def run_jobs(server_url: str, specs: Sequence[Spec], api_key: str | None = None) -> list[str]:
    """Create the jobs one after another (their ids sort in that order) and wait until
    every one has ended."""
    with Client(server_url, api_key) as client:
        ids = [client.submit(pipeline, values).id for pipeline, values in specs]
        for job_id in ids:
            client.wait(job_id, timeout=90)
    return ids


def shown_ids(page: Page, *, visible_only: bool = False) -> list[str]:
    """The ids of the lone jobs' cards, top to bottom (those not hidden, if asked)."""
    ids: list[str] = page.locator(JOBS).evaluate_all(
        "(cards, visibleOnly) => cards.filter((card) => !visibleOnly || !card.hidden)"
        ".map((card) => card.dataset.jobId)",
        visible_only,
    )
    return ids


def expect_open(card: Locator) -> None:
    expect(card).not_to_have_attribute("data-collapsed", "")
    expect(card.locator("button.job-toggle")).to_have_attribute("aria-expanded", "true")


def expect_folded(card: Locator) -> None:
    expect(card).to_have_attribute("data-collapsed", "")
    expect(card.locator("button.job-toggle")).to_have_attribute("aria-expanded", "false")
    expect(card.locator(".job-body")).to_be_hidden()
    expect(card.locator(".job-result")).to_be_hidden()


def expect_loaded(image: Locator) -> None:
    """The `<img>` (lazily loaded) shows a picture once scrolled to."""
    image.scroll_into_view_if_needed()
    image.page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
    )


def expect_took(card: Locator, job: dict[str, Any]) -> None:
    """The row says how long the job took, from its creation to its end."""
    took = TOOK.match(card.locator(".job-took").text_content() or "")
    assert took is not None, card.locator(".job-times").text_content()
    elapsed = seconds_between(job["created_at"], job["finished_at"])
    assert float(took.group(1)) == pytest.approx(elapsed, abs=0.051)


def seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def is_list_of(status: str = "") -> Callable[[Response], bool]:
    """Whether a response answers `GET /api/jobs` for that status ("" for all)."""

    def matches(response: Response) -> bool:
        url = urlsplit(response.url)
        return url.path == "/api/jobs" and parse_qs(url.query).get("status", [""]) == [status]

    return matches


def is_create(response: Response) -> bool:
    return response.request.method == "POST" and urlsplit(response.url).path == "/api/jobs"


def video_of(job: dict[str, Any]) -> dict[str, Any]:
    video: dict[str, Any] = next(a for a in job["artifacts"] if a["type"].startswith("video/"))
    return video


def test_a_first_visit_opens_the_newest_finished_job_and_folds_the_others_into_rows(
    page: Page, server: ServerProcess, screenshot: Screenshot
) -> None:
    ids = run_jobs(server.url, [VIDEO, SYNTHETIC, VIDEO, SYNTHETIC, VIDEO, SYNTHETIC, VIDEO])
    videos, synthetics = ids[0::2], ids[1::2]
    logs_read: list[str] = []
    page.on("request", lambda request: logs_read.extend(LOG_PATH.findall(request.url)))
    open_home(page, server.url)
    expect(page.locator(JOBS)).to_have_count(7)
    assert shown_ids(page) == ids[::-1], "not newest first"

    newest = job_card(page, ids[-1])
    expect(page.locator(f"{JOBS}:not([data-collapsed])")).to_have_count(1)
    expect_open(newest)
    player = newest.locator(".job-result video")
    expect(player).to_be_visible()
    page.wait_for_function("video => video.readyState >= 1", arg=player.element_handle())
    for job_id in ids[:-1]:
        row = job_card(page, job_id)
        expect_folded(row)
        expect(row.locator("time.job-created")).to_have_text(CREATED)
        expect_took(row, snapshot(server.url, job_id))
    for job_id in videos[:-1]:
        expect_loaded(job_card(page, job_id).locator(".job-thumb img"))
    for job_id in synthetics:
        expect(job_card(page, job_id).locator(".job-thumb span.job-thumb-sign")).to_be_visible()
    expect(page.locator("#jobs video:visible")).to_have_count(1)
    assert set(logs_read) == {ids[-1]}, "a folded job's log is read only when it opens"

    page.evaluate("window.scrollTo(0, 0)")
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < MAX_PAGE_HEIGHT, f"seven jobs make a {height} px page"
    screenshot(page, "rows")


def test_a_folded_rows_actions_download_copy_show_json_play_and_rerun(
    page: Page, server: ServerProcess, screenshot: Screenshot
) -> None:
    video_id, newer_id = run_jobs(server.url, [VIDEO, SYNTHETIC])
    video_job = snapshot(server.url, video_id)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    open_home(page, server.url)
    row = job_card(page, video_id)
    expect_folded(row)
    expect_open(job_card(page, newer_id))
    actions = row.locator(".job-actions")

    download = actions.locator("a.job-download")
    expect(download).to_be_visible()
    expect(download).to_have_attribute("download", video_of(video_job)["name"])
    href = download.get_attribute("href") or ""
    assert urlsplit(href).path == urlsplit(video_of(video_job)["url"]).path, href
    assert "token=" not in href
    answer = httpx.get(urljoin(server.url, href), timeout=30)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("video/")

    copy = actions.locator("button.job-copy")
    expect(copy).to_have_text("Copy id")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == video_id
    expect(copy).to_have_text("Copy id")  # after 2 s

    actions.locator("button.job-json").click()
    dialog = page.locator("dialog#json-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#json-title")).to_have_text(video_id)
    text = dialog.locator("pre#json-text")
    expect(text).to_have_text(re.compile(r"^\{.*\}$", re.S))
    assert json.loads(text.text_content() or "") == snapshot(server.url, video_id)
    screenshot(page, "json")
    dialog.locator("button#json-close").click()
    expect(dialog).to_be_hidden()

    play = actions.locator("button.job-play")
    expect(play).to_have_text("Play")
    play.click()
    expect_open(row)
    expect(play).to_be_hidden()  # only a folded row offers it
    player = row.locator(".job-result video")
    expect(player).to_be_visible()
    page.wait_for_function("video => video.currentTime > 0", arg=player.element_handle())
    screenshot(page, "playing")
    player.evaluate("video => video.pause()")

    with page.expect_response(is_create) as created:
        row.locator("button.job-rerun").click()
    rerun_id: str = created.value.json()["id"]
    rerun = job_card(page, rerun_id)
    expect(page.locator(JOBS).first).to_have_attribute("data-job-id", rerun_id)
    expect_open(rerun)
    again = snapshot(server.url, rerun_id)
    assert (again["pipeline"], again["input"]) == (video_job["pipeline"], video_job["input"])
    expect(rerun).to_have_attribute("data-status", "succeeded")
    expect_open(rerun)
    expect_open(row)  # a person opened it: it stays open
    expect_folded(job_card(page, newer_id))
    screenshot(page, "rerun")


def test_the_filter_shows_one_status_with_its_jobs_read_from_the_server(
    page: Page, server: ServerProcess, screenshot: Screenshot
) -> None:
    failed_id, *succeeded = run_jobs(server.url, [FAILING] + [SYNTHETIC] * 12)
    open_home(page, server.url)
    expect(page.locator(JOBS)).to_have_count(10)
    assert shown_ids(page) == succeeded[::-1][:10]
    choose = page.locator("select#status-filter")
    no_jobs = page.locator("#no-jobs")

    with page.expect_response(is_list_of("failed")):
        choose.select_option("failed")
    failed = job_card(page, failed_id)
    expect(failed).to_be_visible()
    expect(failed).to_have_attribute("data-status", "failed")
    expect_open(failed)  # the newest finished job shown
    expect(page.locator(f"{JOBS}:visible")).to_have_count(1)
    for job_id in succeeded[-10:]:
        expect(job_card(page, job_id)).to_have_attribute("hidden", "")
    expect(no_jobs).to_be_hidden()
    screenshot(page, "failed")

    with page.expect_response(is_list_of("cancelled")):
        choose.select_option("cancelled")
    expect(page.locator(f"{JOBS}:visible")).to_have_count(0)
    expect(no_jobs).to_be_visible()
    expect(no_jobs).to_have_text("No cancelled jobs on this page.")

    choose.select_option("")
    for job_id in [failed_id, *succeeded[-10:]]:
        expect(job_card(page, job_id)).to_be_visible()
    expect(no_jobs).to_be_hidden()
    shown = shown_ids(page)
    assert shown == sorted(shown, reverse=True), "not newest first"
    expect_open(job_card(page, succeeded[-1]))
    expect_folded(failed)

    # A re-run while the filter would hide it (it starts queued) brings back all jobs.
    with page.expect_response(is_list_of("failed")):
        choose.select_option("failed")
    expect(page.locator(f"{JOBS}:visible")).to_have_count(1)
    with page.expect_response(is_create) as created:
        failed.locator("button.job-rerun").click()
    rerun_id: str = created.value.json()["id"]
    expect(choose).to_have_value("")
    expect(page.locator(JOBS).first).to_have_attribute("data-job-id", rerun_id)
    expect(job_card(page, rerun_id)).to_be_visible()
    expect(job_card(page, succeeded[-1])).to_be_visible()
    screenshot(page, "rerun")


def test_load_older_jobs_pages_back_through_the_history_without_the_clips_of_batches(
    page: Page, server: ServerProcess, screenshot: Screenshot
) -> None:
    pipeline, values = SYNTHETIC
    with Client(server.url) as client:
        lone = [client.submit(pipeline, values).id for _ in range(5)]
        with server.client() as http:
            project = http.post(
                "/api/projects",
                json={"name": "a batch", "clips": [{"pipeline": pipeline, "input": values}] * 2},
            )
            assert project.status_code == 201, project.text
            batch = http.get(f"/api/projects/{project.json()['id']}").json()
        clips = [job["id"] for job in batch["jobs"]]
        lone += [client.submit(pipeline, values).id for _ in range(20)]
        for job_id in lone + clips:
            client.wait(job_id, timeout=60)
    newest_first = lone[::-1]

    open_home(page, server.url)
    expect(page.locator(JOBS)).to_have_count(10)
    assert shown_ids(page) == newest_first[:10]
    more = page.locator("button#load-more")
    expect(more).to_have_text("Load older jobs")

    counts = []
    for _ in range(5):
        if more.is_hidden():
            break
        with page.expect_response(is_list_of()):
            more.click()
        page.wait_for_function(
            "() => { const more = document.querySelector('#load-more');"
            " return more.hidden || !more.disabled; }"
        )
        counts.append(page.locator(JOBS).count())
    expect(more).to_be_hidden()
    expect(page.locator("#history-status")).to_have_text("No older jobs.")
    assert shown_ids(page) == newest_first, f"cards after each click: {counts}"
    assert counts[0] == 20, f"the first click adds the rest of the newest page: {counts}"
    for clip_id in clips:
        expect(page.locator(f'#jobs [data-job-id="{clip_id}"]')).to_have_count(0)
    expect(page.locator(f"{JOBS}[data-collapsed]")).to_have_count(24)
    screenshot(page, "all")


def test_a_running_job_shows_its_percentage_and_times_and_a_persons_fold_choice_sticks(
    page: Page, server: ServerProcess, screenshot: Screenshot
) -> None:
    older_id, newer_id = run_jobs(server.url, [SYNTHETIC, SYNTHETIC])
    open_home(page, server.url)
    older, newer = job_card(page, older_id), job_card(page, newer_id)
    expect_folded(older)
    expect_open(newer)
    older.locator("button.job-toggle").click()
    newer.locator("button.job-toggle").click()
    expect_open(older)
    expect_folded(newer)

    job_id = start(page, "demo.synthetic", steps=40, step_ms=100)
    card = job_card(page, job_id)
    expect(card).to_have_attribute("data-status", "running")
    expect_open(card)
    percent = card.locator(".job-percent")
    expect(percent).to_be_visible()
    expect(percent).to_have_text(re.compile(r"^\d+ %$"))
    before = percent.text_content() or ""
    expect(percent).not_to_have_text(before)
    after = percent.text_content() or ""
    assert int(after.split()[0]) > int(before.split()[0]), (before, after)
    expect(card.locator(".job-took")).to_have_text("")
    created_at = snapshot(server.url, job_id)["created_at"]
    created = card.locator("time.job-created")
    expect(created).to_have_attribute("datetime", created_at)
    local = datetime.fromisoformat(created_at).astimezone().strftime("%H:%M:%S")
    expect(created).to_have_text(f"Created {local}")
    # The jobs were arranged again when this one came: the choices held.
    expect_open(older)
    expect_folded(newer)
    screenshot(page, "running")

    expect(card).to_have_attribute("data-status", "succeeded")
    expect(percent).to_be_hidden()
    expect_took(card, snapshot(server.url, job_id))
    expect_open(card)
    expect_open(older)
    expect_folded(newer)
    screenshot(page, "ended")


class TestWithApiKeys:
    """A `<img>` or a download link cannot send the key: their URLs carry the job's
    token; the JSON dialog fetches the snapshot with the key."""

    @pytest.fixture
    def server(
        self, serve_process: Callable[..., ServerProcess], monkeypatch: pytest.MonkeyPatch
    ) -> ServerProcess:
        monkeypatch.setenv("GENWIRE_API_KEYS", f"{KEY}:alice")
        return serve_process()

    def test_a_folded_rows_thumbnail_download_and_json_work_with_the_key(
        self, page: Page, server: ServerProcess, screenshot: Screenshot
    ) -> None:
        video_id, _ = run_jobs(server.url, [VIDEO, SYNTHETIC], api_key=KEY)
        page.add_init_script(f"localStorage.setItem('genwire.apiKey', {json.dumps(KEY)})")
        open_home(page, server.url)
        row = job_card(page, video_id)
        expect_folded(row)

        thumb = row.locator(".job-thumb img")
        expect(thumb).to_have_attribute("src", re.compile(r"[?&]token="))
        expect_loaded(thumb)
        download = row.locator("a.job-download")
        href = download.get_attribute("href") or ""
        assert "token=" in href, href
        answer = httpx.get(urljoin(server.url, href), timeout=30)  # no key: the token opens it
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("video/")

        row.locator("button.job-json").click()
        text = page.locator("dialog#json-dialog pre#json-text")
        expect(text).to_have_text(re.compile(r"^\{.*\}$", re.S))
        shown = json.loads(text.text_content() or "")
        with Client(server.url, KEY) as client:
            job = client.get(video_id)
        assert (shown["id"], shown["status"]) == (video_id, "succeeded")
        assert [a["id"] for a in shown["artifacts"]] == [a.id for a in job.artifacts]
        screenshot(page, "keyed")


def test_a_job_started_under_a_filter_that_hides_it_shows_even_when_the_stream_drew_it_first(
    page: Page, server: ServerProcess, screenshot: Screenshot
) -> None:
    """The stream's `job-status queued` can draw a job started here before the answer
    to its `POST /api/jobs` comes (a slow answer): the filter then hid its card. The
    answer put the filter back to all jobs, but left that card and the others hidden
    until some job ended."""
    (done_id,) = run_jobs(server.url, [SYNTHETIC])
    open_home(page, server.url)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    choose = page.locator("select#status-filter")
    with page.expect_response(is_list_of("failed")):
        choose.select_option("failed")
    expect(page.locator("#no-jobs")).to_have_text("No failed jobs on this page.")

    def answer_after_the_stream(route: Route) -> None:
        answer = route.fetch()
        expect(job_card(page, answer.json()["id"])).to_have_count(1)
        route.fulfill(response=answer)

    page.route(re.compile(r"/api/jobs$"), answer_after_the_stream)
    job_id = start(page, "demo.synthetic", steps=600, step_ms=100)  # runs past the test
    expect(page.locator("#announcer")).to_have_text("demo.synthetic started")
    screenshot(page, "started")
    expect(choose).to_have_value("")
    shown = shown_ids(page, visible_only=True)
    assert shown == [job_id, done_id], f"the filter says all jobs, yet it shows {shown}"
    expect(job_card(page, job_id)).to_have_attribute("data-status", "running")
    with server.client() as client:
        assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 202


def test_a_complete_batch_folds_to_its_counts_and_posters_once_a_newer_one_completes(
    page: Page, server: ServerProcess, screenshot: Screenshot
) -> None:
    """Batches scale like jobs: the one still running and the newest complete one are
    open; an older complete one shows its counts and a strip of its clips' posters
    until a person opens it. A clip shows its poster, and its player once pressed.
    Before, every batch kept every clip's player."""
    open_home(page, server.url)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")

    def make_batch(name: str, clip: Spec) -> str:
        pipeline, values = clip
        body = {"name": name, "clips": [{"pipeline": pipeline, "input": values}] * 2}
        with server.client() as http:
            created = http.post("/api/projects", json=body)
        assert created.status_code == 201, created.text
        project_id: str = created.json()["id"]
        card = page.locator(f'#projects article.project[data-project-id="{project_id}"]')
        expect(card).to_have_attribute("data-complete", "true")
        return project_id

    older_id = make_batch("older", VIDEO)
    older = page.locator(f'#projects article.project[data-project-id="{older_id}"]')
    expect(older).not_to_have_attribute("data-collapsed", "")  # the newest complete batch
    # Its clips show their posters; a player, and a read of the video, only when asked.
    expect(older.locator(".clips button.poster-play")).to_have_count(2)
    expect(older.locator(".clips video")).to_have_count(0)

    newer_id = make_batch("newer", SYNTHETIC)
    newer = page.locator(f'#projects article.project[data-project-id="{newer_id}"]')
    expect(newer).not_to_have_attribute("data-collapsed", "")
    expect(older).to_have_attribute("data-collapsed", "")
    assert page.locator("#projects article.project").evaluate_all(
        "cards => cards.map((card) => card.dataset.projectId)"
    ) == [newer_id, older_id]
    toggle = older.locator(":scope > h3 > button.job-toggle")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(older.locator(".clips")).to_be_hidden()
    expect(older.locator(".project-counts")).to_contain_text("2/2 completed")
    posters = older.locator(".project-thumbs img")
    expect(posters).to_have_count(2)
    for index in range(2):
        expect_loaded(posters.nth(index))
    screenshot(page, "older-folded")

    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    poster = older.locator(".clips button.poster-play").first
    expect(poster).to_be_visible()
    poster.click()
    video = older.locator(".clips video")
    expect(video).to_have_count(1)
    page.wait_for_function("video => video.currentTime > 0", arg=video.element_handle())
    expect(older.locator(".project-thumbs")).to_be_hidden()

    page.reload()  # a person's choice lasts the page; after a reload, the rule again
    expect(older).to_have_attribute("data-collapsed", "")
    expect(newer).not_to_have_attribute("data-collapsed", "")
