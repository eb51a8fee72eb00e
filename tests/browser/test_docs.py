"""The page at `/docs` renders `/openapi.json` in a real browser, from its own files."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow


def test_the_docs_page_lists_every_operation_with_its_problem_codes(
    server: ServerProcess, new_page: Callable[..., Page]
) -> None:
    page = new_page()
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))

    page.goto(f"{server.url}/docs")

    expect(page.get_by_role("status")).to_contain_text("operations")
    create_job = page.locator("#op-post--api-jobs")
    expect(create_job).to_contain_text("Queue a job")
    expect(create_job).to_contain_text("idempotency-key-reused")
    expect(page.locator("#schema-CreateJobBody")).to_contain_text("pipeline")
    video = create_job.locator(".variant", has_text='pipeline: "demo.video"')
    expect(video).to_contain_text("duration_s number (minimum 1, maximum 300)")
    assert asked
    assert [url for url in asked if not url.startswith(server.url)] == []
