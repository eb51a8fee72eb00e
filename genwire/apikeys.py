"""API keys and the tenants they map to (SPEC §8): `GENWIRE_API_KEYS`, and a keys
file of hashed keys that the server reads again when it changes.

A keys file holds one key a line, its SHA-256 and its tenant; `#` starts a comment:

    # alice's CI, 2025-05
    sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae  alice

`genwire keys hash TENANT` makes such a line from a key read on stdin. A plain
SHA-256, not a salted slow hash: API keys are long random strings, not passwords
that a dictionary could reach, so a fast hash protects them as well (GitHub and
Stripe keep theirs so), and a key's tenant stays one dict lookup away.

Every key, the environment's too, is looked up by its digest, so no raw key is
compared with anything: the time a lookup takes could tell at most how much of a
digest a guess shares, which says nothing of the key.

The file is read again when its modification time, size or inode change, looked
at when a request asks and at most once a second (`RECHECK_S`): no thread, and a
removed key stops working within a second of the file's change. A file that then
cannot be read, or has a malformed line, is logged and the keys read before stay.
Write it whole and rename it into place, so that no reader sees half of it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path

log = logging.getLogger("genwire.apikeys")

DIGEST_PREFIX = "sha256:"
RECHECK_S = 1.0  #: how often a request may look whether the keys file changed
MAX_TENANT_LENGTH = 100  #: the jobs table's tenant column
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
_LINE_FORMAT = f"`{DIGEST_PREFIX}<64 hex digits> TENANT` (`genwire keys hash TENANT` makes one)"


class KeysFileError(ValueError):
    """A keys file that cannot be read, or a line of it that is not a key."""


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def keys_file_line(key: str, tenant: str) -> str:
    """The keys file's line for `key` of `tenant`."""
    if not _is_tenant(tenant):
        raise ValueError(f"a tenant is 1–{MAX_TENANT_LENGTH} printable characters, no space or #")
    if not key:
        raise ValueError("an API key cannot be empty")
    return f"{DIGEST_PREFIX}{hashlib.sha256(key.encode()).hexdigest()}  {tenant}"


def parse_keys_file(
    text: str, source: str, fixed: Mapping[bytes, str] | None = None
) -> dict[bytes, str]:
    """Each key's digest and tenant. `fixed`: the digests of keys set elsewhere (the
    environment), which the file may repeat, but for the same tenant only. The
    errors name the line, never its text: a raw key put there by mistake stays out
    of the log."""
    digests: dict[bytes, str] = {}
    lines: dict[bytes, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.partition("#")[0].split()
        if not fields:
            continue
        where = f"{source}, line {number}"
        if len(fields) != 2 or not fields[0].startswith(DIGEST_PREFIX):
            raise KeysFileError(f"{where}: not {_LINE_FORMAT}")
        hex_digest, tenant = fields[0].removeprefix(DIGEST_PREFIX), fields[1]
        if not _HEX_DIGEST.fullmatch(hex_digest):
            raise KeysFileError(f"{where}: a SHA-256 is 64 hex digits; {_LINE_FORMAT}")
        if not _is_tenant(tenant):
            raise KeysFileError(f"{where}: a tenant is 1–{MAX_TENANT_LENGTH} printable characters")
        digest = bytes.fromhex(hex_digest)
        if digest in digests and digests[digest] != tenant:
            raise KeysFileError(
                f"{where}: the key of line {lines[digest]} again, with another tenant"
            )
        if fixed is not None and fixed.get(digest, tenant) != tenant:
            raise KeysFileError(f"{where}: a key of GENWIRE_API_KEYS, with another tenant")
        digests[digest] = tenant
        lines.setdefault(digest, number)
    return digests


def _is_tenant(text: str) -> bool:
    return (
        0 < len(text) <= MAX_TENANT_LENGTH
        and text.isprintable()
        and not any(character.isspace() or character == "#" for character in text)
    )


class ApiKeys:
    """The tenant of each key: `GENWIRE_API_KEYS`'s, and a keys file's, read again
    when it changes. With either configured, every caller needs a key (`required`),
    even while the file lists none."""

    def __init__(
        self,
        env_keys: Mapping[str, str],
        keys_file: Path | None = None,
        *,
        recheck_s: float = RECHECK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Raises KeysFileError when the keys file cannot be read or is malformed."""
        self.required = bool(env_keys) or keys_file is not None
        self._fixed = {key_digest(key): tenant for key, tenant in env_keys.items()}
        self._tenants = dict(self._fixed)
        self._file = keys_file
        self._recheck_s = recheck_s
        self._clock = clock
        self._checked_at = -math.inf
        self._signature: tuple[int, int, int] | None = None
        if keys_file is not None:
            self._signature = _signature(keys_file)
            self._tenants = self._read(keys_file)
            self._checked_at = clock()

    @property
    def tenant_count(self) -> int:
        """How many tenants the keys read so far name."""
        return len(set(self._tenants.values()))

    def tenant_of(self, key: str) -> str | None:
        """The tenant of `key`; None for a key no source lists, and for no key at all
        (`Authorization: Bearer ` with nothing after it is not the empty key)."""
        if not key:
            return None
        if self._file is not None:
            now = self._clock()
            if now - self._checked_at >= self._recheck_s:
                self._checked_at = now
                self._reread_if_changed(self._file)
        return self._tenants.get(key_digest(key))

    def _reread_if_changed(self, path: Path) -> None:
        signature = _signature(path)
        if signature == self._signature:
            return
        # Noted before reading: a file that changes meanwhile is read again at the
        # next look, and a malformed or missing one is logged once, not at every look.
        self._signature = signature
        try:
            self._tenants = self._read(path)
        except KeysFileError as error:
            log.error("%s; the keys read before still hold", error)
            return
        log.info("read the keys file %s again: %d key(s)", path, len(self._tenants))

    def _read(self, path: Path) -> dict[bytes, str]:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise KeysFileError(f"cannot read the keys file {path}: {error}") from None
        return {**self._fixed, **parse_keys_file(text, str(path), self._fixed)}


def _signature(path: Path) -> tuple[int, int, int] | None:
    """What changes when the file does (None: it cannot be found)."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size, status.st_ino
