"""Per-account request pacing: a concurrency cap and a sliding-window call rate.

Every task set using an account shares its limiter, so the account's call rate never
exceeds its cap however many sets poll it. Throttling answers halve the rate for a while
(additive recovery on success), so a throttled account backs off as a whole, and a server's
Retry-After holds every call on the account until the time it asked for.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

# Calls land at the server a little later than we send them, and not all with the same
# delay; a window slightly longer than a second keeps every server-side second within cap.
WINDOW_SECONDS = 1.1
HOLD_CAP_SECONDS = 300.0  # the longest Retry-After honoured; longer asks are cut to this

log = logging.getLogger(__name__)


class Limiter(Protocol):
    """What an account's HTTP calls need of its pacing, kept in this process or shared by replicas."""

    def slot(self) -> AbstractAsyncContextManager[None]:
        """Wait until a call may start within the account's caps, and hold its place while it runs."""
        ...

    def hold(self, seconds: float) -> None:
        """The server asked for no call on the account before `seconds` from now (Retry-After)."""
        ...

    def throttled(self) -> None:
        """The API said slow down: the account's rate is halved."""
        ...

    def succeeded(self) -> None:
        """A call succeeded: the account's rate recovers towards its cap."""
        ...


class AccountLimiter:
    """Caps concurrent calls and calls per second for one account."""

    def __init__(
        self,
        rate: float,
        concurrency: int,
        *,
        name: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.max_rate = max(rate, 0.1)
        self.not_before = 0.0  # on `clock`: no call starts before this (Retry-After)
        self._hold_logged = False
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
                if now < self.not_before:
                    await asyncio.sleep(self.not_before - now)
                    continue
                # With a fractional rate, one call per 1/rate seconds.
                window = WINDOW_SECONDS if self.rate >= 1 else WINDOW_SECONDS / self.rate
                cap = max(int(self.rate), 1)
                while self._sent and self._sent[0] <= now - window:
                    self._sent.popleft()
                if len(self._sent) < cap:
                    self._sent.append(now)
                    return
                await asyncio.sleep(self._sent[0] + window - now)

    def hold(self, seconds: float) -> None:
        """The server asked for no call before `seconds` from now: every set on the account waits."""
        wanted = seconds
        seconds = min(max(seconds, 0.0), HOLD_CAP_SECONDS)
        until = self._clock() + seconds
        if until <= self.not_before + 1.0:  # already holding about as long: said once
            return
        self.not_before = until
        if not self._hold_logged:  # once until a call succeeds again
            self._hold_logged = True
            capped = f" (asked for {wanted:.0f}s, capped)" if wanted > HOLD_CAP_SECONDS else ""
            log.info(
                "account %s: the server asked to wait (Retry-After); no call for %.1fs%s", self.name, seconds, capped
            )

    def throttled(self) -> None:
        """The API said slow down: halve the rate (not below one call every ten seconds)."""
        self.rate = max(self.rate / 2, 0.1)

    def succeeded(self) -> None:
        """Recover a tenth of the cap per successful call, up to the configured cap."""
        self._hold_logged = False
        if self.rate < self.max_rate:
            self.rate = min(self.max_rate, self.rate + self.max_rate / 10)
