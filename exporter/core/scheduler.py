"""Polls every task set on its interval: due tasks, batches, retries and failure policy.

One runner per set. A poll takes the set's due tasks (pending, past their "not before"
time), splits them into batches of the provider's cap, fetches them with retries
(exponential, jittered, bounded backoff that honours Retry-After), and hands everything
it learned to the state store as one unit. The poll's deadline (`poll_timeout`) covers
fetches, retries and rate-limit waits: past it the poll ends, what it learned is applied
and the set is down. A failed poll keeps the last known state, marks the set down and is
logged once; the recovery is logged once. An unexpected exception in one set is logged
with its traceback and never stops the others.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol

from exporter.core import partitions, retries
from exporter.core.config import TaskSetConfig
from exporter.core.errors import AuthFailed, ProviderError, StateFileError, StoreUnavailable, Unavailable
from exporter.core.memory import collector_paused, release_free_memory
from exporter.core.model import FetchResult, RequestTally
from exporter.core.provider import Discovering, Provider
from exporter.core.retries import BACKOFF_BASE_SECONDS
from exporter.core.sources import TaskIdSource
from exporter.core.state import PollOutcome, StateStore

log = logging.getLogger(__name__)

MAX_WORKERS = 8  # batches in flight per set; the account limiter has the last word
TOMBSTONE_SWEEP_SECONDS = 3600.0  # how often expired tombstones are looked for


class Holding(Protocol):
    """A set held for a while by this process among replicas (see exporter/cluster)."""

    def valid(self) -> bool:
        """Whether the hold is still good for calls (checked before each batch)."""
        ...

    async def pushed(self) -> list[str]:
        """IDs pushed to the set through any replica, to track."""
        ...


class TaskSetRunner:
    """Polls one task set."""

    def __init__(
        self,
        config: TaskSetConfig,
        provider: Provider,
        store: StateStore,
        *,
        tally: RequestTally | None = None,
        account_cap: int | None = None,  # the account's own cap of task IDs per request, if it has one
        clock: Callable[[], float] = time.time,
        backoff_base: float = BACKOFF_BASE_SECONDS,
        ensure: Callable[[], object] = lambda: None,
        holding: Holding | None = None,
    ) -> None:
        self.config = config
        self.ensure = ensure  # makes the set's state exist (restored when it first runs)
        self.holding = holding
        self.woken = asyncio.Event()  # set to poll now (IDs were pushed elsewhere)
        self.tally = tally or RequestTally()  # the provider's HTTP client counts its calls here
        self.provider = provider
        self.state = store.handle(config.name)  # the set this runner polls
        self.clock = clock
        self.backoff_base = backoff_base
        self.source = TaskIdSource(config.tasks, config.name)
        cap = min(provider.batch_size, account_cap or provider.batch_size)
        self.batch_size = min(config.batch_size or cap, cap)
        self._was_down = False
        self._next_sweep = 0.0
        self._next_forget = 0.0

    async def run(self, stop: asyncio.Event, on_fatal: Callable[[Exception], None] | None = None) -> None:
        """Restore the set's saved state, then poll on the interval with jitter until `stop` is set.
        A state file that cannot be restored is fatal: `on_fatal` is told and the set does not run."""
        try:
            self.ensure()
            await self.state.restore()
        except StateFileError as err:
            if on_fatal is None:
                raise
            on_fatal(err)
            return
        except StoreUnavailable as err:
            log.warning("set %s stops polling here: %s", self.config.name, err)
            return
        # Spread the first polls of many sets over a tenth of their interval.
        delay = random.uniform(0, self.config.interval * self.config.jitter)
        while not stop.is_set():
            if await self._wait(stop, delay):
                return
            started = time.monotonic()
            try:
                with collector_paused():  # its lists freed when this returns, before any collection
                    await self.poll_once()
            except asyncio.CancelledError:
                raise
            except StoreUnavailable as err:
                log.warning("set %s stops polling here: %s", self.config.name, err)
                return
            except Exception:
                log.exception("unexpected error polling set %s; the other sets go on", self.config.name)
            elapsed = time.monotonic() - started
            jitter = random.uniform(-self.config.jitter, self.config.jitter) * self.config.interval
            delay = max(0.0, self.config.interval + jitter - elapsed)

    async def _wait(self, stop: asyncio.Event, delay: float) -> bool:
        """Wait `delay` seconds, less if woken; True when asked to stop."""
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.woken.wait())]
        try:
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        self.woken.clear()
        return stop.is_set()

    async def poll_once(self) -> PollOutcome:
        """One poll of the set: new IDs, due batches, one state update."""
        await self.state.restore()
        now = self.clock()
        for where, ids in self.source.read():
            self.state.track(self._mine(ids), now, where)
        if self.holding is not None:
            self.state.track(await self.holding.pushed(), now, "a push")
        started_mono = time.monotonic()
        results: list[FetchResult] = []
        error: ProviderError | None = None
        try:
            async with asyncio.timeout(self.config.poll_timeout):
                await self._fetch(now, results)
        except ProviderError as err:
            error = err.with_traceback(None)  # its frames would hold this poll's answers in a cycle
        except TimeoutError:
            error = Unavailable(
                f"the poll passed its deadline of {self.config.poll_timeout:g}s (poll_timeout); "
                f"{len(results)} answers applied",
                result="timeout",
            )
        outcome = PollOutcome(
            started=now,
            duration=time.monotonic() - started_mono,
            results=results,
            error=None if error is None else error.message,
            requests=self.tally.take(),
        )
        await self.state.apply(outcome)
        if now >= self._next_forget:
            # A walk over every task: often enough that a task is forgotten at most 1/24 late.
            self._next_forget = now + self.config.forget_final_after / 24
            await self.state.forget_final(now - self.config.forget_final_after, now)
        await self._sweep_tombstones(now)
        await self.state.flush()
        await asyncio.to_thread(release_free_memory)  # it walks the heap: not on the event loop
        self._log_health(error)
        return outcome

    def _mine(self, ids: Iterable[str]) -> Iterable[str]:
        """The IDs of this runner's partition (all of them for a set of one partition)."""
        partition, count = self.config.partition, self.config.partitions
        if partition is None:
            return ids
        return [i for i in ids if partitions.partition_of(i, count) == partition]

    async def _fetch(self, now: float, results: list[FetchResult]) -> None:
        """Discovery where configured, then the due tasks; answers land in `results` as they come."""
        due = await self.state.due(now)
        if self.config.tasks.discover and isinstance(self.provider, Discovering):
            listing = await self._with_retries(self.provider.discover)
            results.append(listing)
            listed = set(listing.task_ids())
            due = [t for t in due if t not in listed]
        await self._fetch_batches(due, results)

    async def _sweep_tombstones(self, now: float) -> None:
        """Hourly: tombstones past their retention go, unless a configured source still lists them."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + TOMBSTONE_SWEEP_SECONDS
        expiring = self.state.state.tombstones.expiring(now - self.config.tombstone_retention)
        if expiring:
            listed = await asyncio.to_thread(self.source.listed)  # reads the ID files: off the event loop
            self.state.expire_tombstones(expiring, listed, now)

    async def _fetch_batches(self, due: Sequence[str], results: list[FetchResult]) -> None:
        """Fetch all batches, a few at a time; after the first failure no new batch starts."""
        starts = iter(range(0, len(due), self.batch_size))  # each batch sliced when its turn comes
        failures: list[ProviderError] = []

        async def worker() -> None:
            for start in starts:
                batch = due[start : start + self.batch_size]
                if failures:
                    return
                if self.holding is not None and not self.holding.valid():
                    raise StoreUnavailable("its lease ran out before the poll ended; no further calls")
                try:
                    results.append(await self._with_retries(functools.partial(self.provider.fetch, batch)))
                except ProviderError as err:
                    # Its traceback would hold the frames (and a refused body) in a cycle with this list.
                    failures.append(err.with_traceback(None))

        # The account limiter caps concurrency across sets; this bounds the tasks we start.
        await asyncio.gather(*(worker() for _ in range(MAX_WORKERS)))
        if failures:
            raise failures[0]

    async def _with_retries(self, call: Callable[[], Awaitable[FetchResult]]) -> FetchResult:
        return await retries.call(
            call, base=self.backoff_base, max_tries=self.config.max_tries, max_time=self.config.max_retry_time
        )

    def _log_health(self, error: ProviderError | None) -> None:
        name, provider = self.config.name, self.provider.name
        if error is None:
            if self._was_down:
                log.info("set %s (%s) recovered", name, provider)
            self._was_down = False
            return
        if self._was_down:
            log.debug("set %s (%s) still down: %s", name, provider, error.message)
            return
        self._was_down = True
        what = (
            "credentials refused; fix the account's credentials or permissions"
            if isinstance(error, AuthFailed)
            else "keeping the last known state and retrying"
        )
        log.warning(
            "set %s (%s) is down: %s (%s, result=%s%s)",
            name,
            provider,
            error.message,
            what,
            error.result,
            f", code={error.api_code}" if error.api_code else "",
        )


class Scheduler:
    """Runs the runners it is told to (every set's, in one process) until stopped."""

    def __init__(self, runners: Sequence[TaskSetRunner]) -> None:
        self.runners = list(runners)
        self._stops: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._on_fatal: Callable[[Exception], None] | None = None

    def start(self, on_fatal: Callable[[Exception], None] | None = None, *, only: Sequence[str] | None = None) -> None:
        """Start the runners of every set, or of the sets named in `only`."""
        self._on_fatal = on_fatal
        for r in self.runners:
            if only is None or r.config.name in only:
                self.start_runner(r.config.name)

    def start_runner(self, name: str) -> None:
        """Start one set's runner, unless it is running."""
        if self.running(name):
            return
        runner = next(r for r in self.runners if r.config.name == name)
        runner.ensure()  # the set exists from now on (a push may come before the runner's first turn)
        stop = self._stops[name] = asyncio.Event()
        self._tasks[name] = asyncio.create_task(runner.run(stop, self._on_fatal), name=f"poll:{name}")

    def running(self, name: str) -> bool:
        task = self._tasks.get(name)
        return task is not None and not task.done()

    def ended(self, name: str) -> bool:
        """The runner stopped by itself (its store failed it), not because it was asked to."""
        task = self._tasks.get(name)
        return task is not None and task.done()

    async def stop_runner(self, name: str, timeout: float = 5.0) -> None:
        """Ask one runner to stop, cancel it if it still runs after `timeout`, and wait."""
        task = self._tasks.pop(name, None)
        stop = self._stops.pop(name, None)
        if stop is not None:
            stop.set()
        if task is None:
            return
        done, _ = await asyncio.wait([task], timeout=timeout)
        if not done:
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def stop(self, timeout: float = 5.0) -> None:
        """Ask every runner to stop, cancel what is still running after `timeout`, and wait."""
        await asyncio.gather(*(self.stop_runner(name, timeout) for name in list(self._tasks)))
