"""Per-account request pacing: a concurrency cap and a sliding-window call rate.

Every task set using an account shares its limiter, so the account's call rate never
exceeds its cap however many sets poll it. Throttling answers halve the rate for a while
(additive recovery on success), so a throttled account backs off as a whole.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

# Calls land at the server a little later than we send them, and not all with the same
# delay; a window slightly longer than a second keeps every server-side second within cap.
WINDOW_SECONDS = 1.1


class AccountLimiter:
    """Caps concurrent calls and calls per second for one account."""

    def __init__(
        self,
        rate: float,
        concurrency: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_rate = max(rate, 0.1)
        self.rate = self.max_rate
        self._clock = clock
        self._sem = asyncio.Semaphore(max(concurrency, 1))
        self._sent: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for a free slot within the concurrency and the rate cap, then hold it."""
        async with self._sem:
            await self._wait_for_rate()
            yield

    async def _wait_for_rate(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                # With a fractional rate, one call per 1/rate seconds.
                window = WINDOW_SECONDS if self.rate >= 1 else WINDOW_SECONDS / self.rate
                cap = max(int(self.rate), 1)
                while self._sent and self._sent[0] <= now - window:
                    self._sent.popleft()
                if len(self._sent) < cap:
                    self._sent.append(now)
                    return
                await asyncio.sleep(self._sent[0] + window - now)

    def throttled(self) -> None:
        """The API said slow down: halve the rate (not below one call every ten seconds)."""
        self.rate = max(self.rate / 2, 0.1)

    def succeeded(self) -> None:
        """Recover a tenth of the cap per successful call, up to the configured cap."""
        if self.rate < self.max_rate:
            self.rate = min(self.max_rate, self.rate + self.max_rate / 10)
