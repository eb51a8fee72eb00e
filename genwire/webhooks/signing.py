"""Standard Webhooks signatures and the server's signing secret (SPEC §5).

A delivery carries `webhook-id`, `webhook-timestamp` (integer Unix seconds) and
`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed by
the base64-decoded part of a `whsec_<base64>` secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

SECRET_PREFIX = "whsec_"
SECRET_FILE = "webhook-secret"
SECRET_BYTES = 32

log = logging.getLogger("genwire.webhooks")


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret; ValueError when it is not one."""
    encoded = secret.strip()
    if not encoded.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret must look like {SECRET_PREFIX}<base64>")
    try:
        key = base64.b64decode(encoded.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("the webhook secret is not valid base64 after whsec_") from None
    if len(key) < 16:
        raise ValueError("the webhook secret must hold at least 16 bytes")
    return key


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value of one attempt."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_headers(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, webhook_id, timestamp, body),
    }


def load_or_create_secret(data_dir: Path) -> str:
    """The secret kept in `data_dir/webhook-secret`, made (mode 0600) on first use.

    Safe against a concurrent first start: the file appears whole or not at all,
    and the first one written wins.
    """
    path = data_dir / SECRET_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        draft = data_dir / f".{SECRET_FILE}.{os.getpid()}"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(generate_secret() + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(draft, path)
            log.warning("generated a webhook signing secret in %s", path.resolve())
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    secret = path.read_text().strip()
    secret_key(secret)
    return secret
