"""Time-ordered identifiers: newer ids sort after older ones, as strings."""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
_lock = threading.Lock()
_last_ms = 0
_last_random = 0


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A ULID-style id (48-bit milliseconds + 80 bits) with a type prefix.

    Within one process ids are strictly increasing, even inside one millisecond,
    so "newest first" and "oldest queued first" can order by id alone.
    """
    global _last_ms, _last_random
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            now_ms = _last_ms
            random_part = _last_random + 1
        else:
            random_part = int.from_bytes(os.urandom(10), "big") >> 1
        _last_ms, _last_random = now_ms, random_part
    return f"{prefix}_{_encode(now_ms, 10)}{_encode(random_part, 16)}"
