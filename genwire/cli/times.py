"""Times as people say them: "2 min ago" for when a job was created, "12 s" for how
long it took."""

from __future__ import annotations

from datetime import datetime

_MINUTE = 60
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR


def ago(moment: datetime, now: datetime) -> str:
    """How long before `now` `moment` was: "just now", "40 s ago", "2 min ago", "3 h ago",
    "5 days ago", then the date. A moment after `now` (another machine's clock) is
    "just now"."""
    seconds = (now - moment).total_seconds()
    if seconds < 10:
        return "just now"
    if seconds < _MINUTE:
        return f"{seconds:.0f} s ago"
    if seconds < _HOUR:
        return f"{seconds // _MINUTE:.0f} min ago"
    if seconds < _DAY:
        return f"{seconds // _HOUR:.0f} h ago"
    days = seconds // _DAY
    if days < 7:
        return "1 day ago" if days == 1 else f"{days:.0f} days ago"
    return f"{moment.astimezone():%Y-%m-%d}"


def took(seconds: float) -> str:
    """A duration: "0.4 s", "12 s", "3 min 5 s", "2 h 10 min"."""
    if seconds < 1:
        return f"{max(seconds, 0):.1f} s"
    whole = round(seconds)
    if whole < _MINUTE:
        return f"{whole} s"
    if whole < _HOUR:
        minutes, rest = divmod(whole, _MINUTE)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(whole, _HOUR)
    minutes = rest // _MINUTE
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
