"""Time-ordered identifiers: newer ids sort after older ones, as strings."""

from __future__ import annotations

import secrets
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
_RANDOM_BITS = 80
#: Bits of the random step between two ids of one millisecond: a neighbour of a known
#: id is one of 2**64 candidates, never the id plus one.
_STEP_BITS = 64
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
    """A ULID-style id (48-bit milliseconds + 80 random bits) with a type prefix.

    Within one process ids are strictly increasing, even inside one millisecond,
    so "newest first" and "oldest queued first" can order by id alone. Within a
    millisecond each id is a random step above the one before, not its successor:
    knowing one id does not tell its neighbours (SPEC §8).
    """
    global _last_ms, _last_random
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        random_part = _last_random + 1 + secrets.randbits(_STEP_BITS)
        if now_ms <= _last_ms and random_part < 1 << _RANDOM_BITS:
            now_ms = _last_ms
        else:
            # A new millisecond, or this one's ids ran out: a later one starts afresh,
            # with room below its top for 2**15 steps.
            now_ms = max(now_ms, _last_ms + 1)
            random_part = secrets.randbits(_RANDOM_BITS - 1)
        _last_ms, _last_random = now_ms, random_part
    return f"{prefix}_{_encode(now_ms, 10)}{_encode(random_part, 16)}"
