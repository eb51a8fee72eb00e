"""Waiting for what another thread, process or task makes true: one waiter for plain
tests (`wait_until`) and one for async tests (`eventually`), both polling.

A timeout is a ceiling that fails a hung test, never an asserted speed."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

import httpx

T = TypeVar("T")

#: Seconds between two looks.
POLL_S = 0.02


def wait_until(
    probe: Callable[[], T],
    what: str,
    *,
    until: Callable[[T], object] = bool,
    timeout: float = 10.0,
) -> T:
    """`probe()`'s value once `until` takes it (by default: once it is truthy).

    After `timeout` seconds, fail naming `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(_not_yet(what, timeout, value))
        time.sleep(POLL_S)


@overload
async def eventually(
    probe: Callable[[], Awaitable[T]],
    what: str,
    *,
    until: Callable[[T], object] = ...,
    timeout: float = ...,
) -> T: ...


@overload
async def eventually(
    probe: Callable[[], T],
    what: str,
    *,
    until: Callable[[T], object] = ...,
    timeout: float = ...,
) -> T: ...


async def eventually(
    probe: Callable[[], Any],
    what: str,
    *,
    until: Callable[[Any], object] = bool,
    timeout: float = 10.0,
) -> Any:
    """`wait_until` for async tests: `probe` may return a value or an awaitable one,
    and the timeout also bounds a probe that hangs."""
    seen = None
    try:
        async with asyncio.timeout(timeout) as bound:
            while True:
                value = probe()
                if inspect.isawaitable(value):
                    value = await value
                if until(value):
                    return value
                seen = value
                await asyncio.sleep(POLL_S)
    except TimeoutError:
        if not bound.expired():
            raise
        raise AssertionError(_not_yet(what, timeout, seen)) from None


def _not_yet(what: str, timeout: float, value: object) -> str:
    message = f"timed out after {timeout} s waiting for: {what}"
    # A plain `False` says nothing the message does not already say.
    if value is None or isinstance(value, bool):
        return message
    if isinstance(value, httpx.Response):
        return f"{message}; last answer: {value.status_code} {value.text}"
    return f"{message}; last seen: {value!r}"
