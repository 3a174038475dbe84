"""Retries of one provider call: exponential, jittered, bounded waits that honour Retry-After."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Generator
from typing import TypeVar

import backoff

from exporter.core.errors import ProviderError

T = TypeVar("T")
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0


def retry_waits(base: float, cap: float) -> Generator[float, ProviderError | None, None]:
    """Full-jitter exponential waits, never shorter than the server's Retry-After, capped."""
    error = yield  # type: ignore[misc]  # backoff primes the generator with send(None)
    attempt = 0
    while True:
        wait = random.uniform(0, min(cap, base * 2**attempt))
        if error is not None:
            floor = max(error.retry_after or 0.0, error.pause or 0.0)
            wait = max(wait, min(floor, cap))
        attempt += 1
        error = yield wait


async def call(call: Callable[[], Awaitable[T]], *, base: float, max_tries: int, max_time: float) -> T:
    """Call with backoff on retryable ProviderErrors, bounded in tries and time."""
    retrying = backoff.on_exception(
        lambda: retry_waits(base, BACKOFF_CAP_SECONDS),
        ProviderError,
        max_tries=max_tries,
        max_time=max_time,
        giveup=lambda e: not getattr(e, "retryable", False),
        jitter=None,
        logger=None,
    )(call)
    result: T = await retrying()
    return result
