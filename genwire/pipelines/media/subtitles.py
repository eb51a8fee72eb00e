"""SubRip (SRT) subtitles: numbered cues with start and end times."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from dataclasses import dataclass

LINE_CHARS = 42  #: a common subtitle line length


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str


def format_timestamp(seconds: float) -> str:
    """SRT time, `HH:MM:SS,mmm`."""
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def format_srt(cues: Iterable[Cue]) -> str:
    """The SRT document: cues numbered from 1, text wrapped, no blank line inside a cue."""
    blocks = []
    for number, cue in enumerate(cues, start=1):
        text = textwrap.fill(" ".join(cue.text.split()), LINE_CHARS)
        span = f"{format_timestamp(cue.start_s)} --> {format_timestamp(cue.end_s)}"
        blocks.append(f"{number}\n{span}\n{text}\n")
    return "\n".join(blocks)
