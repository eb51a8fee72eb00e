"""Stream tokens (SPEC §8): a browser can follow one job without holding the API key.

A token is read-only, for one job only, and it expires. It is
`<expiry>.<signature>`: an HMAC over the job id, its tenant and the expiry. The key
is derived from the webhook secret, which every node of a shared database already
holds alike, so a token made on one node is accepted on any other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import NoReturn

from genwire.errors import NotAuthenticated

TOKEN_TTL_S = 24 * 3600  #: long enough for the longest job and a day of reloads
_CONTEXT = b"genwire stream token v1"
_NOT_THIS_JOB = "the stream token is not valid for this job"


class StreamTokens:
    def __init__(
        self, webhook_key: bytes, ttl_s: float = TOKEN_TTL_S, clock: Callable[[], float] = time.time
    ) -> None:
        # A key of its own: a token never doubles as a webhook signature.
        self._key = hmac.new(webhook_key, _CONTEXT, hashlib.sha256).digest()
        self._ttl_s = ttl_s
        self._clock = clock

    def issue(self, job_id: str, tenant: str) -> str:
        expiry = int(self._clock() + self._ttl_s)
        return f"{expiry}.{self._sign(job_id, tenant, expiry)}"

    def check(self, job_id: str, tenant: str, token: str) -> None:
        """Raises `NotAuthenticated` unless `token` was issued for this job and is current."""
        expiry, signature = self._parts(token)
        # As bytes: compare_digest refuses a str with a character past ASCII.
        expected = self._sign(job_id, tenant, expiry).encode()
        if not hmac.compare_digest(signature.encode(), expected):
            raise NotAuthenticated(_NOT_THIS_JOB)
        if expiry < self._clock():
            raise NotAuthenticated("the stream token has expired: read the job again for a new one")

    def refuse(self, token: str) -> NoReturn:
        """Refuses `token` for an id that names no job as `check` refuses it for
        another tenant's job, so that a token tells nothing of which ids exist."""
        self._parts(token)
        raise NotAuthenticated(_NOT_THIS_JOB)

    def _parts(self, token: str) -> tuple[int, str]:
        expiry_text, _, signature = token.partition(".")
        if not (expiry_text.isascii() and expiry_text.isdigit() and len(expiry_text) <= 12):
            raise NotAuthenticated("the stream token is malformed")
        return int(expiry_text), signature

    def _sign(self, job_id: str, tenant: str, expiry: int) -> str:
        message = f"{job_id}\n{tenant}\n{expiry}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode()
