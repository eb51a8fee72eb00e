"""A genwire server wired to the fake providers: each case names a provider's fake,
the settings that point genwire at it, and a job body for one of its models."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from genwire.api import create_app
from genwire.config import Settings
from genwire.pipelines import PipelineRegistry
from genwire.providers.settings import ProviderSettings
from tests.conftest import SHARED_WEBHOOK_SECRET, ThreadedServer
from tests.fakes.fal import run_fake_fal
from tests.fakes.harness import FakeBase
from tests.fakes.replicate import run_fake_replicate
from tests.fakes.runware import run_fake_runware
from tests.http_calls import wait_for_status
from tests.pipelines import test_registry
from tests.waiting import wait_until

#: polls quickly, so that a test waits tenths of a second rather than seconds
FAST = ProviderSettings(
    poll_s=(0.1, 0.3),
    poll_with_webhooks_s=(0.3, 0.6),
    retry_backoff_s=(0.05, 0.1, 0.2, 0.3),
    allow_private_outputs=True,  # the fakes serve their files on loopback
)
TERMINAL = {"succeeded", "failed", "cancelled"}


@dataclass(frozen=True)
class ProviderCase:
    name: str
    model: str
    start_fake: Callable[..., AbstractContextManager[Any]]
    configure: Callable[[ProviderSettings, Any], ProviderSettings]
    extra_input: dict[str, Any]

    def __str__(self) -> str:
        return self.name

    def body(self, model: str | None = None, **input_fields: Any) -> dict[str, Any]:
        job_input: dict[str, Any] = {
            "model": model or self.model,
            "input": {"prompt": "a lighthouse at dawn"},
            **self.extra_input,
        }
        job_input.update(input_fields)
        return {"pipeline": self.name, "input": job_input}


CASES = [
    ProviderCase(
        "replicate",
        "genwire-test/video-model",
        run_fake_replicate,
        lambda settings, fake: replace(
            settings, replicate_token=fake.key, replicate_url=fake.api_url
        ),
        {},
    ),
    ProviderCase(
        "fal",
        "fal-ai/test-video/v2/text-to-video",
        run_fake_fal,
        lambda settings, fake: replace(
            settings, fal_key=fake.key, fal_queue_url=fake.api_url, fal_jwks_url=fake.jwks_url
        ),
        {},
    ),
    ProviderCase(
        "runware",
        "runware:test@1",
        run_fake_runware,
        lambda settings, fake: replace(settings, runware_key=fake.key, runware_url=fake.api_url),
        {"task_type": "videoInference"},
    ),
]


BY_NAME = {case.name: case for case in CASES}


class _Deferred:
    """An ASGI app set after its server's port is known (the public URL needs it)."""

    app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@dataclass
class World:
    fake: FakeBase
    server: ThreadedServer
    http: httpx.Client
    settings: Settings

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.http.post("/api/jobs", json=body)
        assert answer.status_code == 201, answer.text
        job: dict[str, Any] = answer.json()
        return job

    def wait_until_ended(self, job_id: str, timeout: float = 30) -> dict[str, Any]:
        return wait_for_status(self.http, job_id, TERMINAL, timeout)

    def wait_submitted(self, count: int = 1) -> None:
        """Until the provider got `count` submissions."""
        submissions = self.fake.submissions  # type: ignore[attr-defined]
        wait_until(
            lambda: len(submissions) >= count, f"{count} submission(s) at the provider", timeout=30
        )

    def accepted_webhooks(self) -> list[Any]:
        """The fake's webhook calls that genwire answered 200, once there is one (the
        job may end by polling before a webhook's answer is noted)."""

        def taken() -> list[Any]:
            return [call for call in self.fake.webhook_calls if call.status_code == 200]

        wait_until(
            lambda: list(self.fake.webhook_calls),
            "an accepted webhook",
            until=lambda calls: any(call.status_code == 200 for call in calls),
            timeout=30,
        )
        return taken()

    def events(self, job_id: str) -> list[dict[str, Any]]:
        answer = self.http.get(f"/api/jobs/{job_id}/poll", params={"wait": 0})
        events: list[dict[str, Any]] = answer.json()["events"]
        return events


@contextmanager
def world(
    case: ProviderCase,
    tmp_path: Path,
    *,
    webhooks: bool = False,
    providers: ProviderSettings = FAST,
    registry: PipelineRegistry | None = None,
    database_url: str | None = None,
    **knobs: Any,
) -> Iterator[World]:
    """The case's fake and a genwire server configured for it (webhooks: with a
    public URL, so the provider calls back)."""
    with case.start_fake(**knobs) as fake:
        deferred = _Deferred()
        server = ThreadedServer(deferred)
        settings = Settings(
            data_dir=tmp_path / f"data-{case.name}",
            providers=case.configure(providers, fake),
            public_url=server.url if webhooks else None,
            database_url=database_url,
            webhook_secret=SHARED_WEBHOOK_SECRET if database_url else None,
        )
        deferred.app = create_app(settings, registry or test_registry())
        with server, httpx.Client(base_url=server.url, timeout=30) as http:
            yield World(fake, server, http, settings)


def provider_environment(
    case: ProviderCase, fake: Any, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """Point a child `genwire serve` at the case's fake through the environment
    variables of SPEC §7.1; returns the secrets it must never write out."""
    settings = case.configure(ProviderSettings(), fake)
    names = {
        "REPLICATE_API_TOKEN": settings.replicate_token,
        "GENWIRE_REPLICATE_API_URL": settings.replicate_url,
        "FAL_KEY": settings.fal_key,
        "GENWIRE_FAL_QUEUE_URL": settings.fal_queue_url,
        "GENWIRE_FAL_JWKS_URL": settings.fal_jwks_url,
        "RUNWARE_API_KEY": settings.runware_key,
        "GENWIRE_RUNWARE_API_URL": settings.runware_url,
        "GENWIRE_PROVIDER_POLL_S": "0.2,0.5",
        "GENWIRE_PROVIDER_WEBHOOK_POLL_S": "0.5,1",
        "GENWIRE_ALLOW_PRIVATE_OUTPUTS": "1",
    }
    for name, value in names.items():
        if value:
            monkeypatch.setenv(name, value)
    return settings.secrets
