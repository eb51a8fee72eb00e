"""The delivery routes' own query parsing agrees with Starlette's `query_params`."""

from __future__ import annotations

import pytest
from starlette.datastructures import QueryParams

from genwire.api.requests import _parse_query

QUERIES = [
    b"",
    b"after=0000000000000042&wait=30",
    b"after=1&after=2",  # the last of several, as Starlette gives it
    b"token=a%2Bb%3D%3D&wait=",
    b"x=a+b&y=%E2%9C%93&z",
    b"&&after=7&",
    b"%61fter=9",
    b"bad=%ZZ&odd=%",
]


@pytest.mark.parametrize("raw", QUERIES)
def test_query_values_are_those_starlette_gives(raw: bytes) -> None:
    starlette = QueryParams(raw)
    assert _parse_query(raw) == {key: starlette[key] for key in starlette}
