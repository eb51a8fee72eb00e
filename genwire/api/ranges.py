"""Which bytes a `Range` header asks of a file of known size (RFC 9110 §14.1–14.2).

Pure, so that a file is cut the same way whichever storage holds it.
"""

from __future__ import annotations

import re

#: More ranges than this in one request is ignored: the whole file answers instead.
MAX_RANGES = 100

_RANGE_SPEC = re.compile(r"(\d*)-(\d*)", re.ASCII)


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
            start, end = max(size - int(last), 0), size  # the last N bytes
        else:
            start = int(first)
            if last and int(last) < start:
                return []
            end = min(int(last) + 1, size) if last else size
        if start < end:
            ranges.append((start, end))
    if not ranges:
        raise RangeNotSatisfiable
    return _merged(sorted(ranges))


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged = [ranges[0]]
    for start, end in ranges[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged
