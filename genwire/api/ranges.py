"""Which bytes a `Range` header asks of a file of known size (RFC 9110 §14.1–14.2).

Pure, so that a file is cut the same way whichever storage holds it.
"""

from __future__ import annotations

import re

#: More ranges than this in one request is ignored: the whole file answers instead.
MAX_RANGES = 100

_RANGE_SPEC = re.compile(r"(\d*)-(\d*)", re.ASCII)
_MAX_DIGITS = 18
_PAST_EVERY_END = 10**_MAX_DIGITS


class RangeNotSatisfiable(Exception):
    """No range asked for has a byte in the file (answered with 416)."""


def requested_ranges(header: str | None, size: int) -> list[tuple[int, int]]:
    """The `[start, end)` ranges asked for, sorted, overlapping ones merged.

    Empty means the whole file: no header, a unit other than bytes, a malformed
    range or too many of them, all of which RFC 9110 §14.2 lets a server ignore.
    Ranges past the end are dropped; when none is left, RangeNotSatisfiable.
    """
    if header is None:
        return []
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes":
        return []
    parts = [part.strip() for part in specs.split(",") if part.strip()]
    if not parts or len(parts) > MAX_RANGES:
        return []
    ranges: list[tuple[int, int]] = []
    for part in parts:
        spec = _RANGE_SPEC.fullmatch(part)
        if spec is None or spec.group(1) == spec.group(2) == "":
            return []
        first, last = spec.group(1), spec.group(2)
        if first == "":
            start, end = max(size - _position(last), 0), size  # the last N bytes
        else:
            start = _position(first)
            if last and _position(last) < start:
                return []
            end = min(_position(last) + 1, size) if last else size
        if start < end:
            ranges.append((start, end))
    if not ranges:
        raise RangeNotSatisfiable
    return _merged(sorted(ranges))


def _position(digits: str) -> int:
    """A byte position; one of more digits than any file's size is past every end.
    (int() refuses more than 4 300 digits, and a client may send any number.)"""
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= _MAX_DIGITS else _PAST_EVERY_END


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged = [ranges[0]]
    for start, end in ranges[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged
