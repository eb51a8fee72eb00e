"""Ids (SPEC §8): time-ordered, and no id tells its neighbours."""

from __future__ import annotations

from itertools import pairwise

import pytest

from genwire import ids
from genwire.ids import new_id

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


@pytest.fixture(autouse=True)
def fresh_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the ids this process made before, so that a test's clock rules."""
    monkeypatch.setattr(ids, "_last_ms", 0)
    monkeypatch.setattr(ids, "_last_random", 0)


def random_part(job_id: str) -> int:
    """The 80 bits after an id's 48-bit millisecond."""
    value = 0
    for char in job_id.partition("_")[2][10:]:
        value = value * 32 + _ALPHABET.index(char)
    return value


def test_ids_made_in_one_millisecond_differ_in_far_more_than_their_last_bits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bug: ids made in the same millisecond differed by 1, so one id told its
    neighbours (another tenant's job a token could be tried on)."""
    monkeypatch.setattr(ids.time, "time_ns", lambda: 1_700_000_000_000 * 1_000_000)
    made = [new_id("job") for _ in range(200)]

    assert len({job_id[:14] for job_id in made}) == 1, "one millisecond"
    assert made == sorted(made), "still increasing within the millisecond"
    steps = [random_part(b) - random_part(a) for a, b in pairwise(made)]
    assert min(steps) > 1 << 32, steps


def test_ids_sort_by_the_millisecond_they_were_made_in(monkeypatch: pytest.MonkeyPatch) -> None:
    now_ms = [1_700_000_000_000]
    monkeypatch.setattr(ids.time, "time_ns", lambda: now_ms[0] * 1_000_000)
    made = []
    for _ in range(50):
        made += [new_id("job") for _ in range(3)]
        now_ms[0] += 1

    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert len({job_id[:14] for job_id in made}) == 50, "one millisecond each three"


def test_a_millisecond_whose_ids_run_out_goes_on_in_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ids.time, "time_ns", lambda: 1_700_000_000_000 * 1_000_000)
    monkeypatch.setattr(ids, "_STEP_BITS", 78)  # two or three ids to a millisecond
    made = [new_id("job") for _ in range(30)]

    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert len({job_id[:14] for job_id in made}) > 1
