"""Secrets out of every log line (SPEC §8; docs/SECURITY.md, "What is logged").

A stream token rides in a job's `urls.events` (`?token=`) and a provider call's
secret in the webhook URL the provider calls (`?secret=`), and uvicorn logs every
path whole; a webhook target may hold a password or a token of its receiver's; an
exception's message or a repr of headers can carry an `Authorization` value; a
provider may quote its key back. `RedactSecrets` masks all of these in a record's
message, arguments and traceback before any handler formats it, and `redact_logs`
puts that one filter where every line passes: on the root logger's handlers, and on
uvicorn's loggers, whose lines never reach the root (`uvicorn.config.LOGGING_CONFIG`
gives them handlers of their own and `propagate: False`). uvicorn's `Config()` runs
that `dictConfig` after the CLI has set up logging: it replaces a logger's handlers
but keeps its filters, so the filter sits on the loggers, not on their handlers.
"""

from __future__ import annotations

import binascii
import contextlib
import logging
import numbers
import re
import threading
from base64 import b64decode
from collections.abc import Iterable, Mapping
from typing import Any

from genwire.config import parse_api_keys
from genwire.providers.settings import ProviderSettings

MASK = "[redacted]"
#: A known secret shorter than this is not masked by value: it would mask ordinary
#: text (ids, words). It is still masked after `Bearer`, `Authorization:`, `token=`.
MIN_KNOWN_LENGTH = 8
#: uvicorn's loggers (`uvicorn/config.py`); their records stop at uvicorn's handlers.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")

#: Each shape is a named prefix that stays and a value that is masked.
_SHAPES = (
    # a stream token, a provider call's secret; also `access_token=`, `api_key=`
    r"(?P<query>(?:token|secret|password|api[-_]?key)=)[^&\s\"']+",
    # a header as text (`Authorization: …`, to the line's end), in a dict's repr
    # (`'authorization': '…'`), as ASGI has it (`(b'authorization', b'…')`), or in
    # JSON quoted inside a string (`{\"authorization\": \"…\"}`)
    r"(?P<header>(?:authorization|api[-_]?key)(?:\\?[\"']\s*[:=,]|\s*:)\s*(?:b?\\?[\"'])?)"
    r"[^\"'\\\r\n]+",
    r"(?P<bearer>bearer\s+)[^\s\"'<>,;]+",
    # masked only when it decodes to `user:password`: "basic settings" stays
    r"(?P<basic>basic\s+)(?P<credentials>[a-z0-9+/]{4,}={0,2})(?![a-z0-9+/=])",
    r"(?P<whsec>whsec_)[a-z0-9+/=_-]+",
    r"(?P<userinfo>://[^/\s:@]*:)[^/\s@]+(?=@)",
)
#: Text without any of these (lowercased) holds none of the shapes above.
_TRIGGERS = re.compile(r"token=|secret=|password=|api.?key|authorization|bearer|basic|whsec_|://")


class SecretMask:
    """`mask(text)`: `text` with every secret's value replaced by `[redacted]`, by
    shape (above) and, for the secrets it was told, by value. One regular
    expression, one pass over the text."""

    def __init__(self, known: Iterable[str] = ()) -> None:
        self._known: frozenset[str] = frozenset()
        self._lock = threading.Lock()
        self._pattern = _compile(self._known)
        self.learn(known)

    def learn(self, known: Iterable[str]) -> None:
        """Mask these values too from now on (those under `MIN_KNOWN_LENGTH` excepted)."""
        with self._lock:
            values = self._known | {value for value in known if len(value) >= MIN_KNOWN_LENGTH}
            if values != self._known:
                self._known = frozenset(values)
                self._pattern = _compile(self._known)

    def may_hold(self, text: str) -> bool:
        """Whether `text` may hold a secret; False is certain. Cheap: most lines hold
        none and skip the full expression, which tries every shape at every position."""
        if _TRIGGERS.search(text.lower()) is not None:
            return True
        return any(value in text for value in self._known)

    def __call__(self, text: str) -> str:
        return self._pattern.sub(_replace, text) if self.may_hold(text) else text


def _compile(known: frozenset[str]) -> re.Pattern[str]:
    # Longest first, so that a key holding another is masked whole.
    values = sorted(known, key=len, reverse=True)
    # Case-sensitive: another case of a key is not the key.
    shapes = (
        [f"(?-i:(?P<known>{'|'.join(map(re.escape, values))}))", *_SHAPES] if values else _SHAPES
    )
    return re.compile("|".join(shapes), re.IGNORECASE)


def _replace(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind == "known":
        return MASK
    if kind == "credentials":
        try:
            credentials = b64decode(match["credentials"], validate=True)
        except (binascii.Error, ValueError):
            return match[0]
        return match["basic"] + MASK if b":" in credentials else match[0]
    assert kind is not None  # each shape's last group is its prefix (Basic: its value)
    return match[kind] + MASK


class _Masked:
    """An argument that is neither text nor a number, masked when formatted: `%s`
    and `%r` of an exception, a URL, a dict of headers."""

    __slots__ = ("mask", "value")

    def __init__(self, value: object, mask: SecretMask) -> None:
        self.value = value
        self.mask = mask

    def __str__(self) -> str:
        return self.mask(str(self.value))

    def __repr__(self) -> str:
        return self.mask(repr(self.value))


class RedactSecrets(logging.Filter):
    """Masks a record's message, arguments, traceback and stack in place; keeps
    every record. Arguments keep their place and numbers their type, so
    `%d` and uvicorn's access formatter (which unpacks them) still work."""

    def __init__(self, mask: SecretMask | None = None) -> None:
        super().__init__()
        self.mask = mask if mask is not None else SecretMask()

    def filter(self, record: logging.LogRecord) -> bool:
        plain = _plain_text(record)
        if plain is not None and not self.mask.may_hold(plain):
            return True  # most records, the access log's among them: one cheap look
        mask = self.mask
        template = record.msg if isinstance(record.msg, str) else str(record.msg)
        masked = mask(template)
        if record.args:
            record.args = self._masked_args(record.args)
            if masked != template:
                # The template itself holds a secret's prefix (`"token=%s"`): the value
                # is in an argument, so the whole message is masked, formatted.
                try:
                    masked = mask(template % record.args)
                    record.args = None
                except (TypeError, ValueError, KeyError):
                    pass  # logging reports the bad format itself, with masked parts
        record.msg = masked
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True

    def _masked_args(self, args: Any) -> Any:
        if isinstance(args, tuple):
            return tuple(self._masked_arg(arg) for arg in args)
        if isinstance(args, Mapping):
            return {key: self._masked_arg(value) for key, value in args.items()}
        return self._masked_arg(args)

    def _masked_arg(self, value: object) -> object:
        if isinstance(value, str):
            return self.mask(value)
        if value is None or isinstance(value, int | float | numbers.Number | _Masked):
            return value
        return _Masked(value, self.mask)


def _plain_text(record: logging.LogRecord) -> str | None:
    """A record's template and text arguments as one text, when that is all there is
    to mask: None when it has a traceback, a stack or an argument of another type."""
    if record.exc_info or record.exc_text or record.stack_info or not isinstance(record.msg, str):
        return None
    args = record.args
    if not args:
        return record.msg
    if not isinstance(args, tuple):
        return None
    parts = [record.msg]
    for arg in args:
        if isinstance(arg, str):
            parts.append(arg)
        elif not (arg is None or isinstance(arg, int | float)):
            return None
    return "\n".join(parts)


#: What a handler's formatter would make of a traceback: the text is then cached
#: on the record (`exc_text`), masked, and every formatter prints that instead.
_FORMATTER = logging.Formatter()
_FILTER = RedactSecrets()


def redact_logs(known_secrets: Iterable[str] = ()) -> None:
    """Mask secrets in every record that reaches the root logger's handlers (set up
    before this call) or comes from uvicorn's loggers, at every level, and mask
    `known_secrets` by value from now on too. Again: adds, never removes."""
    _FILTER.mask.learn(known_secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_FILTER)
    for name in UVICORN_LOGGERS:
        logging.getLogger(name).addFilter(_FILTER)


def secrets_from_env(environ: Mapping[str, str]) -> list[str]:
    """The API keys, webhook secret and provider keys that the environment sets
    (SPEC §7.1, §8). The keys file holds digests only: its keys are masked by shape."""
    found = [
        *parse_api_keys(environ.get("GENWIRE_API_KEYS")),
        environ.get("GENWIRE_WEBHOOK_SECRET"),
    ]
    # A malformed provider setting (a pause, not a key) stops the process just after.
    with contextlib.suppress(ValueError):
        found += ProviderSettings.from_env(environ).secrets
    return [value for value in found if value]
