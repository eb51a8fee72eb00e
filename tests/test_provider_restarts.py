"""A `genwire serve` SIGKILLed while a provider job runs follows that same job after
its restart: the provider saw one submission, the job succeeds, and no key or
secret was written to the log, an event or a snapshot (SPEC §7.1)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import ServerProcess
from tests.providers_world import (
    BY_NAME,
    TERMINAL,
    ProviderCase,
    provider_environment,
)
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

RESTART_CASES = [BY_NAME["runware"], BY_NAME["replicate"], BY_NAME["fal"]]


@pytest.mark.parametrize("case", RESTART_CASES, ids=str)
def test_a_server_killed_mid_job_resumes_following_it_without_submitting_again(
    case: ProviderCase,
    serve_process: Callable[..., ServerProcess],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    with case.start_fake() as fake:
        fake.plan(case.model, run_s=3.0)
        secrets = provider_environment(case, fake, monkeypatch)
        data_dir = tmp_path / "data"
        first = serve_process("--log-level", "debug", data_dir=data_dir)
        job_id = httpx.post(f"{first.url}/api/jobs", json=case.body()).json()["id"]

        def recorded() -> bool:
            events = httpx.get(f"{first.url}/api/jobs/{job_id}/poll?wait=0").json()["events"]
            return any("submitted to" in str(event.get("message")) for event in events)

        wait_until(recorded, "the provider's id to be recorded", timeout=30)
        first.kill()
        assert len(fake.submissions) == 1
        second = serve_process("--log-level", "debug", data_dir=data_dir)
        with second.client() as http:

            def ended() -> bool:
                return http.get(f"/api/jobs/{job_id}").json()["status"] in TERMINAL

            wait_until(ended, "the job to end after the restart", timeout=60)
            job = http.get(f"/api/jobs/{job_id}").json()
            events = http.get(f"/api/jobs/{job_id}/poll?wait=0").json()["events"]
        assert job["status"] == "succeeded", job["error"]
        assert job["attempt"] == 2
        assert len(fake.submissions) == 1, "the provider saw a second submission"
        assert any("again" in str(event.get("message")) for event in events)
        assert job["artifacts"]
        written = first.log() + second.log() + str(events) + str(job)
        assert secrets
        for secret in secrets:
            assert secret not in written, "a provider key was written out"


def test_webhook_secrets_stay_out_of_the_access_log(
    serve_process: Callable[..., ServerProcess],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Runware signs nothing: the call's secret rides in the webhook URL's query,
    which uvicorn's access log would print whole."""
    case = BY_NAME["runware"]
    with case.start_fake() as fake:
        secrets = provider_environment(case, fake, monkeypatch)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        public_url = f"http://127.0.0.1:{port}"
        server = serve_process(
            "--port", str(port), "--public-url", public_url, "--log-level", "info"
        )
        with server.client() as http:
            job_id = http.post("/api/jobs", json=case.body()).json()["id"]
            wait_until(
                lambda: http.get(f"/api/jobs/{job_id}").json()["status"] in TERMINAL,
                "the end",
                timeout=30,
            )
            assert http.get(f"/api/jobs/{job_id}").json()["status"] == "succeeded"
        # Polling may have ended the job before the webhook's answer was noted.
        wait_until(
            lambda: any(c.status_code == 200 for c in fake.webhook_calls), "the webhook", timeout=30
        )
        taken = [call for call in fake.webhook_calls if call.status_code == 200]
        call_secret = parse_qs(urlsplit(taken[0].url).query)["secret"][0]
        log = server.log()
        assert "/api/providers/runware/webhook" in log, "the access log shows no webhook call"
        assert "secret=[redacted]" in log
        for secret in [*secrets, call_secret]:
            assert secret not in log
