"""Polling helpers for asynchronous outcomes (no fixed sleeps in tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def wait_for(
    check: Callable[[], Awaitable[bool] | bool],
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
    message: str = "condition",
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not met within {timeout}s")
        await asyncio.sleep(interval)


async def eventually_equals(
    get: Callable[[], Awaitable[Any]], expected: Any, *, timeout: float = 30.0
) -> None:
    last: list[Any] = [None]

    async def check() -> bool:
        last[0] = await get()
        return bool(last[0] == expected)

    try:
        await wait_for(check, timeout=timeout)
    except AssertionError:
        raise AssertionError(f"expected {expected!r}, last value {last[0]!r}") from None
