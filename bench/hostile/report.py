"""What every scenario answers (rows of the closing table) and how progress is shown."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_STARTED = time.monotonic()


@dataclass(frozen=True)
class Row:
    """One line of the table: the issue's row, what the bench did, what happened."""

    row: str
    done: str
    happened: str


def progress(scenario: str, message: str) -> None:
    print(f"[{time.monotonic() - _STARTED:6.1f} s] {scenario}: {message}", flush=True)


def print_rows(rows: Sequence[Row]) -> None:
    """A Markdown table, so that it pastes into the issue as it is."""
    print("| row | what was done | what happened |")
    print("|---|---|---|")
    for row in rows:
        cells = (row.row, row.done, row.happened)
        print("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")


def spread(seconds: Sequence[float]) -> str:
    """`min–max s (median m)` of some durations, or `-` for none."""
    if not seconds:
        return "-"
    low, high = min(seconds), max(seconds)
    if high - low < 0.05:
        return f"{statistics.median(seconds):.1f} s"
    return f"{low:.1f}–{high:.1f} s (median {statistics.median(seconds):.1f})"


def percentiles(seconds: Sequence[float]) -> str:
    """`p50 / p99` in seconds of a set of timings."""
    if not seconds:
        return "none"
    if len(seconds) == 1:
        return f"{seconds[0]:.2f} s (one try)"
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return f"p50 {cuts[49]:.2f} s, p99 {cuts[98]:.2f} s"


def failure(error: BaseException) -> str:
    """A failed part, in one table cell: a server that did not start says why on the
    last line of its log, which ends the error's text."""
    lines = str(error).strip().splitlines()
    return f"failed: {type(error).__name__}: {lines[-1][:200] if lines else ''}"


def number(value: int) -> str:
    """`19 990`: thousands apart as the issue writes them."""
    return f"{value:,}".replace(",", " ")


def counted(counts: Mapping[str, int] | Mapping[int, int]) -> str:
    """`200 ×4 990, 429 ×10`, most frequent first."""
    ordered = sorted(counts.items(), key=lambda item: -item[1])
    return ", ".join(f"{name} ×{number(count)}" for name, count in ordered) or "none"
