"""Provider keys and addresses, from the environment (SPEC §7.1)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from genwire.providers.http import RETRY_BACKOFF_S

REPLICATE_API_URL = "https://api.replicate.com/v1"
FAL_QUEUE_URL = "https://queue.fal.run"
FAL_JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"
RUNWARE_API_URL = "https://api.runware.ai/v1"


@dataclass(frozen=True)
class ProviderSettings:
    replicate_token: str | None = None
    replicate_url: str = REPLICATE_API_URL
    #: `whsec_…`; None: asked of Replicate (`GET /v1/webhooks/default/secret`)
    replicate_webhook_secret: str | None = None
    fal_key: str | None = None
    fal_queue_url: str = FAL_QUEUE_URL
    fal_jwks_url: str = FAL_JWKS_URL
    runware_key: str | None = None
    runware_url: str = RUNWARE_API_URL
    #: (first, longest) pause between polls of a provider job, with no webhook…
    poll_s: tuple[float, float] = (1.0, 10.0)
    #: …and beside webhooks, which get lost, so polling goes on, more slowly
    poll_with_webhooks_s: tuple[float, float] = (10.0, 60.0)
    #: a provider unreachable this long (past each request's retries) fails the job
    give_up_unreachable_s: float = 600.0
    #: copy outputs from private addresses too (a provider's fake on loopback)
    allow_private_outputs: bool = False
    #: pauses between tries of a request that may be tried again
    retry_backoff_s: tuple[float, ...] = RETRY_BACKOFF_S

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProviderSettings:
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            replicate_token=env.get("REPLICATE_API_TOKEN") or None,
            replicate_url=env.get("GENWIRE_REPLICATE_API_URL") or REPLICATE_API_URL,
            replicate_webhook_secret=env.get("GENWIRE_REPLICATE_WEBHOOK_SECRET") or None,
            fal_key=env.get("FAL_KEY") or None,
            fal_queue_url=env.get("GENWIRE_FAL_QUEUE_URL") or FAL_QUEUE_URL,
            fal_jwks_url=env.get("GENWIRE_FAL_JWKS_URL") or FAL_JWKS_URL,
            runware_key=env.get("RUNWARE_API_KEY") or None,
            runware_url=env.get("GENWIRE_RUNWARE_API_URL") or RUNWARE_API_URL,
            allow_private_outputs=env.get("GENWIRE_ALLOW_PRIVATE_OUTPUTS") == "1",
            poll_s=_pair(env.get("GENWIRE_PROVIDER_POLL_S"), defaults.poll_s),
            poll_with_webhooks_s=_pair(
                env.get("GENWIRE_PROVIDER_WEBHOOK_POLL_S"), defaults.poll_with_webhooks_s
            ),
        )

    @property
    def secrets(self) -> list[str]:
        """Every value that must never be written anywhere."""
        values = (
            self.replicate_token,
            self.replicate_webhook_secret,
            self.fal_key,
            self.runware_key,
        )
        return [value for value in values if value]


def _pair(raw: str | None, default: tuple[float, float]) -> tuple[float, float]:
    """`FIRST,LONGEST` seconds (e.g. `1,10`)."""
    if not raw:
        return default
    first, _, longest = raw.partition(",")
    try:
        low = float(first)
        high = float(longest) if longest else low
    except ValueError:
        raise ValueError(f"expected FIRST,LONGEST seconds, got {raw!r}") from None
    if not 0 < low <= high:
        raise ValueError(f"expected 0 < FIRST <= LONGEST, got {raw!r}")
    return low, high
