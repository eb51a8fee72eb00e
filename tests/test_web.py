"""The page and its scripts as served by a real server (the browser tests drive them)."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx

from tests.conftest import ThreadedServer


def test_the_page_is_served_at_the_root_and_loads_its_module(http: httpx.Client) -> None:
    page = http.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    assert '<script type="module" src="/ui/app.js">' in page.text
    assert 'id="connection"' in page.text


def test_scripts_are_javascript_modules_revalidated_on_every_load(http: httpx.Client) -> None:
    for name in ("genwire.js", "app.js"):
        script = http.get(f"/ui/{name}")
        assert script.status_code == 200
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"
        assert script.headers["cache-control"] == "no-cache"
        assert "export" in script.text or "import" in script.text
        again = http.get(f"/ui/{name}", headers={"If-None-Match": script.headers["etag"]})
        assert again.status_code == 304
    assert http.get("/ui/app.css").headers["content-type"].startswith("text/css")


def test_every_module_and_stylesheet_the_pages_ask_for_is_served(http: httpx.Client) -> None:
    """The pages' scripts import each other by relative URL: one file missing from the
    package or the static route, and the page is blank. Walks the imports from each
    page's own tags, so a new module is checked without being listed here."""
    pending = {"/ui/base.css"}
    for page in ("/", "/docs"):
        pending.update(re.findall(r'(?:src|href)="(/ui/[^"]+)"', http.get(page).text))
    seen: set[str] = set()
    while pending:
        path = pending.pop()
        seen.add(path)
        answer = http.get(path)
        assert answer.status_code == 200, path
        if path.endswith(".js"):
            assert answer.headers["content-type"] == "text/javascript; charset=utf-8", path
            imported = re.findall(r'^import .* from "\./([\w.-]+\.js)";$', answer.text, re.M)
            pending.update(f"/ui/{name}" for name in imported if f"/ui/{name}" not in seen)
        else:
            assert answer.headers["content-type"].startswith("text/css"), path
    assert {"/ui/app.js", "/ui/genwire.js", "/ui/job-view.js", "/ui/docs.js"} <= seen, seen


def test_files_outside_the_web_folder_are_not_served(http: httpx.Client) -> None:
    # (A literal "/ui/../" never leaves httpx: it normalises the path. The encoded
    # form reaches the static files handler.)
    for path in ("/ui/%2e%2e/api/web.py", "/ui/missing.js", "/index.html"):
        answer = http.get(path)
        assert answer.status_code == 404, path
        assert "starlette" not in answer.text.lower()


def test_the_api_keeps_answering_problems_beside_the_page(http: httpx.Client) -> None:
    answer = http.get("/api/nothing-here")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"


def test_listed_origins_may_call_the_api_and_others_may_not(
    live_server: Callable[..., ThreadedServer],
) -> None:
    server = live_server(cors_origins=("https://app.example",))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        preflight = client.options(
            "/api/jobs",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "idempotency-key, content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        assert "idempotency-key" in preflight.headers["access-control-allow-headers"].lower()

        created = client.post(
            "/api/jobs",
            json={"pipeline": "demo.synthetic", "input": {"steps": 1, "step_ms": 1}},
            headers={"Origin": "https://app.example"},
        )
        assert created.status_code == 201
        assert created.headers["access-control-allow-origin"] == "https://app.example"
        assert "location" in created.headers["access-control-expose-headers"].lower()

        stranger = client.get("/api/pipelines", headers={"Origin": "https://evil.example"})
        assert stranger.status_code == 200
        assert "access-control-allow-origin" not in stranger.headers


def test_no_origin_is_allowed_unless_configured(http: httpx.Client) -> None:
    answer = http.get("/api/pipelines", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in answer.headers
