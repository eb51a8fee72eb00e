"""Which bytes a `Range` header asks for (RFC 9110 §14), the same for every storage."""

from __future__ import annotations

import pytest

from genwire.api.ranges import MAX_RANGES, RangeNotSatisfiable, requested_ranges


@pytest.mark.parametrize(
    ("header", "ranges"),
    [
        (None, []),
        ("bytes=0-99", [(0, 100)]),
        ("bytes=990-5000", [(990, 1000)]),
        ("bytes=-100", [(900, 1000)]),
        ("bytes=-5000", [(0, 1000)]),
        ("bytes=500-", [(500, 1000)]),
        ("Bytes = 1-2", [(1, 3)]),
        ("bytes=20-29,0-9", [(0, 10), (20, 30)]),
        ("bytes=0-9,5-29,30-31", [(0, 32)]),
        ("bytes=0-9,2000-3000", [(0, 10)]),
        # Past int()'s 4 300 digits (a 500, once): zeros pad, a longer number is past the end.
        ("bytes=" + "0" * 4400 + "1-" + "0" * 4400 + "9", [(1, 10)]),
        ("bytes=-" + "9" * 4400, [(0, 1000)]),
        ("bytes=0-" + "9" * 4400, [(0, 1000)]),
    ],
)
def test_a_range_header_names_the_bytes_it_asks_for(
    header: str | None, ranges: list[tuple[int, int]]
) -> None:
    assert requested_ranges(header, 1000) == ranges


@pytest.mark.parametrize(
    "header",
    ["lines=1-2", "bytes=abc", "bytes=5-3", "bytes=-", "bytes=", "bytes=٣-٤", "bytes=0-1;x"],
)
def test_a_range_header_it_cannot_read_is_ignored_for_the_whole_file(header: str) -> None:
    assert requested_ranges(header, 1000) == []


def test_more_ranges_than_the_limit_are_ignored_for_the_whole_file() -> None:
    header = "bytes=" + ",".join(f"{2 * n}-{2 * n}" for n in range(MAX_RANGES + 1))

    assert requested_ranges(header, 1000) == []


@pytest.mark.parametrize(
    "header", ["bytes=1000-", "bytes=-0", "bytes=1000-1001,2000-", "bytes=" + "9" * 4400 + "-"]
)
def test_ranges_with_no_byte_in_the_file_are_not_satisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        requested_ranges(header, 1000)


def test_every_range_of_an_empty_file_is_unsatisfiable() -> None:
    with pytest.raises(RangeNotSatisfiable):
        requested_ranges("bytes=-10", 0)
