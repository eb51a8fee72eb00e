"""What a provider's logs say: the last line, and progress when a line shows it.

Replicate's models print tqdm bars (`45%|████▌     | 45/100 [00:02<00:03, 17.1it/s]`),
redrawn with carriage returns; fal's print lines such as `Step 12/50` or `40%`.
"""

from __future__ import annotations

import re

MAX_LINE = 300
_TQDM_PERCENT = re.compile(r"(\d{1,3})%\|")
_FRACTION = re.compile(r"\b(\d{1,7})\s*/\s*(\d{1,7})\b")
_PERCENT = re.compile(r"(\d{1,3}(?:\.\d+)?)\s?%")


def log_lines(text: str) -> list[str]:
    """Non-empty lines; a carriage return starts a line too (tqdm redraws with one)."""
    return [line.strip() for line in re.split(r"[\r\n]+", text) if line.strip()]


def last_line(lines: list[str]) -> str | None:
    return lines[-1][:MAX_LINE] if lines else None


def progress_of(lines: list[str]) -> float | None:
    """Progress, 0–100, from the latest line that shows any."""
    for line in reversed(lines):
        found = _line_progress(line)
        if found is not None:
            return found
    return None


def _line_progress(line: str) -> float | None:
    tqdm = _TQDM_PERCENT.search(line)
    if tqdm:
        return min(float(tqdm.group(1)), 100.0)
    percent = _PERCENT.search(line)
    if percent:
        return min(float(percent.group(1)), 100.0)
    fraction = _FRACTION.search(line)
    if fraction and int(fraction.group(2)) > 0 and re.search(r"step|it/s|s/it|frame", line, re.I):
        done, total = int(fraction.group(1)), int(fraction.group(2))
        return min(100.0 * done / total, 100.0) if done <= total else None
    return None
