"""The checks in the order `genwire doctor` runs them, and `run_checks`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from genwire.client.doctor.endpoints import check_download, check_health, check_providers
from genwire.client.doctor.events import (
    E2E_TIMEOUT_S,
    check_buffering,
    check_end_to_end,
    check_keepalive,
    check_long_poll,
)
from genwire.client.doctor.session import Check, Doctor

#: Each check, in order, with what it does, for a spinner to show while it runs
#: (`{wait}`: the keepalive wait).
CHECKS: tuple[tuple[str, Callable[[Doctor], Check]], ...] = (
    ("health: GET /healthz", check_health),
    (
        f"job over SSE: following a demo.synthetic job to its end (up to {E2E_TIMEOUT_S:g} s)",
        check_end_to_end,
    ),
    ("no buffering proxy: comparing when events were appended and arrived", check_buffering),
    ("long-poll: following the same job by long-poll", check_long_poll),
    ("file download: downloading the job's file, then a Range of it", check_download),
    ("keepalive: waiting for a keepalive on an idle stream (up to {wait:g} s)", check_keepalive),
    ("providers: each configured provider's key, tried by the server", check_providers),
)


def run_checks(
    server: str | None,
    keepalive_wait_s: float = 25.0,
    api_key: str | None = None,
    on_check: Callable[[Check], None] | None = None,
    running: Callable[[str], contextlib.AbstractContextManager[object]] | None = None,
) -> list[Check]:
    """Every check, in order; after an unreachable server, only the health check.

    `running(activity)` wraps each check (a spinner that says what it does);
    `on_check(result)` hears each result as it comes."""
    doctor = Doctor(server or "", keepalive_wait_s, api_key)
    results: list[Check] = []
    try:
        for activity, check in CHECKS:
            shown = running(activity.format(wait=keepalive_wait_s)) if running else None
            with shown or contextlib.nullcontext():
                result = check(doctor)
            results.append(result)
            if on_check is not None:
                on_check(result)
            if not doctor.reachable:
                break
    finally:
        doctor.close()
    return results
