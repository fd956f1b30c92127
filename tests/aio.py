"""Run a test's async code to completion from synchronous tests, whatever ran before it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import anyio


def run_async[T](function: Callable[[], Awaitable[T]]) -> T:
    """`anyio.run(function)` in a thread of its own: once a browser test has run, pytest-playwright's
    session keeps an asyncio loop running in the main thread, and anyio.run refuses to nest in it."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(anyio.run, function).result()
