"""The providers this process may call: their adapters, built from the settings, the
durable record of their calls, and where their webhooks come back."""

from __future__ import annotations

from collections import Counter
from urllib.parse import quote

from genwire.bus import Bus
from genwire.pipelines.base import PipelineContext
from genwire.providers.base import Provider, RemotePhases, RemoteRequest, RemoteResult
from genwire.providers.fal import Fal
from genwire.providers.follow import CallFollower
from genwire.providers.http import ProviderHttp, redact
from genwire.providers.replicate import Replicate
from genwire.providers.runware import Runware
from genwire.providers.settings import ProviderSettings
from genwire.store import Store
from genwire.store.provider_calls import ProviderCall

PROVIDER_NAMES = ("replicate", "fal", "runware")


def build_providers(settings: ProviderSettings) -> dict[str, Provider]:
    """An adapter for each provider whose key is set."""

    def http(name: str, base_url: str, authorization: str) -> ProviderHttp:
        headers = {"Authorization": authorization}
        return ProviderHttp(
            name, base_url, headers, settings.secrets, backoff_s=settings.retry_backoff_s
        )

    providers: dict[str, Provider] = {}
    if settings.replicate_token:
        replicate = http("replicate", settings.replicate_url, f"Bearer {settings.replicate_token}")
        providers["replicate"] = Replicate(replicate, settings.replicate_webhook_secret)
    if settings.fal_key:
        fal = http("fal", settings.fal_queue_url, f"Key {settings.fal_key}")
        providers["fal"] = Fal(fal, settings.fal_jwks_url)
    if settings.runware_key:
        runware = http("runware", settings.runware_url, f"Bearer {settings.runware_key}")
        providers["runware"] = Runware(runware)
    return providers


class RemoteProviders:
    """What following a provider call needs; handed to every pipeline's context."""

    def __init__(
        self,
        settings: ProviderSettings,
        store: Store,
        bus: Bus,
        public_url: str | None,
        providers: dict[str, Provider] | None = None,
    ) -> None:
        self.settings = settings
        self.calls = store.provider_calls
        self.bus = bus
        self.public_url = public_url.rstrip("/") if public_url else None
        self.providers = build_providers(settings) if providers is None else providers
        #: webhooks received, by (provider, "accepted" | "refused"), for `/metrics`
        self.webhooks: Counter[tuple[str, str]] = Counter()

    def get(self, name: str) -> Provider | None:
        return self.providers.get(name)

    def configured(self) -> dict[str, bool]:
        return {name: name in self.providers for name in PROVIDER_NAMES}

    def webhook_url(self, call: ProviderCall) -> str | None:
        """Where the provider calls back: only with a public URL to be reached at."""
        if self.public_url is None:
            return None
        return (
            f"{self.public_url}/api/providers/{call.provider}/webhook"
            f"?call={quote(call.id)}&secret={quote(call.secret)}"
        )

    def redact(self, text: str) -> str:
        """`text` without the keys, nor a webhook URL's secret (a provider may quote
        the URL back in an error)."""
        return redact(text, self.settings.secrets)

    async def follow(
        self,
        ctx: PipelineContext,
        provider: str,
        request: RemoteRequest,
        *,
        key: str,
        timeout_s: float,
        phases: RemotePhases | None,
        copy_outputs: bool,
    ) -> RemoteResult:
        follower = CallFollower(self, ctx, provider, phases)
        return await follower.run(request, key=key, timeout_s=timeout_s, copy_outputs=copy_outputs)

    async def close(self) -> None:
        for provider in self.providers.values():
            await provider.http.close()
