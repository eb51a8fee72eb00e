"""The store's errors leave it as genwire's `StoreUnavailable`: the API answers 503
with a problem, never the driver's words, and a worker gives the job back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy.exc import OperationalError

from genwire.ids import new_id
from tests.conftest import ThreadedServer


def test_a_read_the_database_refuses_is_a_503_problem(
    live_server: Callable[..., ThreadedServer],
) -> None:
    server = live_server()
    runner = server.app.state.service.store._runner.runner
    original = runner.read

    async def refusing(fn: Any) -> Any:
        raise OperationalError("SELECT", {}, Exception("disk I/O error at /secret/path"))

    runner.read = refusing
    try:
        answer = httpx.get(f"{server.url}/api/jobs/{new_id('job')}", timeout=10)
    finally:
        runner.read = original
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "store-unavailable"
    assert "/secret/path" not in answer.text
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
