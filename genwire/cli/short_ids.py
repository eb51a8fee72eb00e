"""Short job ids: what `genwire jobs` shows, and finding the job one names.

A job id (`genwire.ids`) is `job_`, ten characters of its creation millisecond, then
sixteen random ones. `jobs` shows it cut after the millisecond (`job_01m95keegj`, 14
characters instead of 30), longer only where two listed jobs were made in the same
millisecond (a project's clips): such a cut stays unique as jobs are added, since no
later job is made in that millisecond. `status`, `watch` and `cancel` take any start
of an id that only one job has, with or without its `job_`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from genwire.client import Client

ID_PREFIX = "job_"
#: The characters of an id's creation millisecond, after its prefix.
TIME_CHARS = 10
_BODY = "[0-9a-hjkmnp-tv-z]"  # Crockford base32, lower case, as `genwire.ids` writes it
_WHOLE_ID = re.compile(f"{ID_PREFIX}{_BODY}{{26}}")
_ID_START = re.compile(f"{ID_PREFIX}{_BODY}{{1,25}}")
#: Jobs per page while looking for the one a short id names (the API's maximum).
_PAGE = 100


def short_ids(ids: Sequence[str]) -> dict[str, str]:
    """Each id cut after its creation millisecond, or after the first character that
    tells it from every other of `ids`, whichever is later."""
    ordered = sorted(set(ids))
    shortest = len(ID_PREFIX) + TIME_CHARS
    shown: dict[str, str] = {}
    for index, job_id in enumerate(ordered):
        # In sorted order the longest prefix an id shares is with a neighbour.
        neighbours = ordered[max(index - 1, 0) : index] + ordered[index + 1 : index + 2]
        shared = max((_shared_length(job_id, other) for other in neighbours), default=0)
        shown[job_id] = job_id[: max(shortest, shared + 1)]
    return shown


def _shared_length(one: str, other: str) -> int:
    """How many characters `one` and `other` begin with alike."""
    pairs = zip(one, other, strict=False)
    return next((index for index, (a, b) in enumerate(pairs) if a != b), min(len(one), len(other)))


def matching_ids(client: Client, text: str) -> list[str]:
    """The ids `text` may name, newest first: a whole id (`job_` added where it was
    left out) as it is, text that starts no id as it is (the server answers 404), else
    the caller's jobs whose ids begin with it, two at most: enough to tell that it is
    ambiguous."""
    candidate = text if text.startswith(ID_PREFIX) else ID_PREFIX + text
    if _WHOLE_ID.fullmatch(candidate):
        return [candidate]
    if not _ID_START.fullmatch(candidate):
        return [text]
    return _ids_starting_with(client, candidate)


def _ids_starting_with(client: Client, start: str) -> list[str]:
    found: list[str] = []
    cursor: str | None = None
    while True:
        page = client.list(limit=_PAGE, cursor=cursor)
        for job in page:
            if job.id.startswith(start):
                found.append(job.id)
                if len(found) == 2:
                    return found
            elif job.id < start:
                # Newest first is id order (ids sort by creation): no later one matches.
                return found
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor
