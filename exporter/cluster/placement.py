"""Which task sets this replica polls: those it holds a lease on, taken and given up as
replicas come and go.

Every tick (a third of the lease TTL) the replica sends its heartbeat, renews its leases
and looks for free ones. It takes a free unit when it is the unit's rightful holder
(rendezvous over the live members), or when the unit stayed free for a grace period
(its rightful holder does not take it: another config, or stuck). It gives a unit up to a
newly arrived rightful holder after saving it. A lease it failed to renew is lost: the
runner stops and its series go. When Redis cannot be reached, polling stops before the
local lease deadline (monotonic clock), the last snapshot stays on /metrics with
`upload_store_up 0`, /-/ready says 503, and everything resumes when Redis answers again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client.registry import Collector
from redis.asyncio import Redis
from redis.exceptions import RedisError

from exporter.cluster import inbox
from exporter.cluster.budget import SharedLimiter
from exporter.cluster.keys import ClusterKeys
from exporter.cluster.leases import Leases, config_hash, rightful
from exporter.cluster.metrics import ClusterCollector
from exporter.cluster.store import RedisSink
from exporter.core import partitions
from exporter.core.config import Config, TaskSetConfig
from exporter.core.provider import IdSyntax
from exporter.core.scheduler import Scheduler
from exporter.core.state import StateStore

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 15.0
PUSHED_PER_POLL = 100_000  # pushed IDs a runner takes from the inbox per poll


@dataclass
class Held:
    token: str
    renewed: float  # monotonic time the last confirmed renewal was sent


class Holding:
    """A runner's view of its unit's lease."""

    def __init__(self, placement: RedisPlacement, unit: str) -> None:
        self.placement = placement
        self.unit = unit

    def valid(self) -> bool:
        return self.placement.valid(self.unit)

    async def pushed(self) -> list[str]:
        return await self.placement.sink.take_inbox(self.unit, PUSHED_PER_POLL)


class RedisPlacement:
    """The Placement of a replica among others sharing one Redis."""

    def __init__(
        self,
        redis: Redis,
        *,
        keys: ClusterKeys | None = None,
        replica: str = "",
        ttl: float = DEFAULT_TTL_SECONDS,
        grace: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self.keys = keys or ClusterKeys()
        self.replica = replica or secrets.token_hex(6)
        self.ttl = ttl
        self.tick = ttl / 3
        self.grace = ttl if grace is None else grace
        self.clock = clock
        self.config_hash = ""
        self.leases = Leases(redis, self.keys, self.replica, "", ttl)
        self.sink = RedisSink(redis, self.keys, self.token, lost=self._refused)
        self.store = StateStore(self.sink)
        self.held: dict[str, Held] = {}
        self.members: dict[str, str] = {}
        self.store_up = False
        self.joined = False
        self.units: dict[str, TaskSetConfig] = {}
        self.providers: dict[str, str] = {}  # unit -> provider key
        self.unowned = 0
        self.lease_lost: collections.Counter[str] = collections.Counter()
        self._free_since: dict[str, float] = {}
        self._scheduler: Scheduler | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ticking = asyncio.Lock()

    # -- what runners and the daemon ask ------------------------------------------------------
    def token(self, unit: str) -> str | None:
        held = self.held.get(unit)
        return None if held is None else held.token

    def valid(self, unit: str) -> bool:
        """Held, and the lease surely not expired yet: a third of the TTL is kept in hand."""
        held = self.held.get(unit)
        return held is not None and self.clock() < held.renewed + self.ttl * 2 / 3

    def holding(self, name: str) -> Holding:
        return Holding(self, name)

    def holds(self, name: str) -> bool:
        return name in self.held

    def limiter(self, rate: float, concurrency: int, *, name: str) -> SharedLimiter:
        return SharedLimiter(self.redis, rate, concurrency, name=name, prefix=self.keys.prefix)

    def not_ready(self) -> str | None:
        if not self.store_up:
            return "the shared state store (Redis) cannot be reached" if self.joined else "joining the replicas"
        return None

    def collector(self) -> Collector:
        return ClusterCollector(self)

    async def push(self, task_set: TaskSetConfig, ids: list[str], id_syntax: IdSyntax | None) -> int:
        added = await inbox.push(self.redis, self.keys, task_set, ids, id_syntax)
        with contextlib.suppress(RedisError):
            await self.redis.publish(self.keys.wake, task_set.name)
        return added

    # -- start and stop -------------------------------------------------------------------------
    def start(self, scheduler: Scheduler, config: Config, on_fatal: Callable[[Exception], None]) -> None:
        self._scheduler = scheduler
        scheduler.start(on_fatal, only=list(self.held))
        self.units = {unit: ts for ts in config.task_sets for unit in partitions.units(ts)}
        self.providers = {unit: config.accounts[ts.account].provider for unit, ts in self.units.items()}
        self.config_hash = self.leases.config_hash = config_hash(config)
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._run(), name="cluster"),
                asyncio.create_task(self._listen(), name="cluster:wake"),
            ]

    async def halt(self) -> None:
        """Take and give up nothing more (the daemon is stopping)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def stop(self) -> None:
        """Called after the runners stopped and saved: give every lease back and leave."""
        await self.halt()
        with contextlib.suppress(RedisError):
            for unit, held in list(self.held.items()):
                await self.leases.release(unit, held.token)
            await self.leases.leave()
        self.held.clear()
        await self.redis.aclose()

    # -- the tick -------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:
                log.exception("unexpected error placing the task sets; trying again")
            await asyncio.sleep(self.tick)

    async def step(self) -> None:
        """One tick: heartbeat, renewals, hand-overs and take-overs."""
        async with self._ticking:
            sent = self.clock()
            try:
                self.members = await self.leases.heartbeat()
                renewed = await self.leases.renew({u: h.token for u, h in self.held.items()})
                free = await self.leases.free([u for u in self.units if u not in self.held])
            except RedisError as err:
                await self._store_down(err)
                return
            if not self.store_up and self.joined:
                log.info("the shared state store (Redis) answers again; taking task sets back")
            self.store_up = self.joined = True
            for unit in [u for u in self.store.sets if u not in self.held]:
                self.store.discard(unit)  # a snapshot kept while Redis was away: its holder shows it now
            for unit in list(self.held):
                if unit in renewed:
                    self.held[unit].renewed = sent
                else:
                    await self._lost(unit, "its lease expired or was taken over")
            for unit in list(self.held):
                owner = rightful(self.members, unit)
                ended = self._scheduler is not None and self._scheduler.ended(unit)
                if unit not in self.units or (owner not in (None, self.replica)) or ended:
                    await self._give_up(unit)
            await self._take_free(free, sent)

    async def _take_free(self, free: set[str], sent: float) -> None:
        for unit in [u for u in self._free_since if u not in free]:
            del self._free_since[unit]
        unowned = 0
        for unit in sorted(free):
            since = self._free_since.setdefault(unit, sent)
            mine = rightful(self.members, unit) == self.replica
            if (mine or sent - since >= self.grace) and await self._take(unit, sent):
                continue
            unowned += 1
        self.unowned = unowned

    async def _take(self, unit: str, sent: float) -> bool:
        token = secrets.token_hex(16)
        try:
            if not await self.leases.acquire(unit, token):
                return False
        except RedisError as err:
            await self._store_down(err)
            return False
        self._free_since.pop(unit, None)
        self.held[unit] = Held(token, sent)
        self.store.discard(unit)  # whatever this replica showed of it before is stale: restore it
        self.sink.forget(unit)
        if self._scheduler is not None:
            self._scheduler.start_runner(unit)
        log.info("holding task set %s", unit)
        return True

    async def _give_up(self, unit: str) -> None:
        """Stop polling a unit, save it and give its lease back (another replica should hold it)."""
        if self._scheduler is not None:
            await self._scheduler.stop_runner(unit)
        try:
            await self.store.flush(unit)
        except Exception as err:  # a refused save or Redis gone: the lease lapses on its own
            log.debug("saving task set %s before giving it up: %s", unit, err)
        # Its series go before the next holder can show them: never two replicas at once.
        self.store.discard(unit)
        held = self.held.pop(unit, None)
        if held is not None:
            with contextlib.suppress(RedisError):
                await self.leases.release(unit, held.token)
        log.info("gave up task set %s", unit)

    async def _lost(self, unit: str, why: str) -> None:
        """The lease is gone (expired or taken): stop at once; nothing more of this unit is saved."""
        if self.held.pop(unit, None) is None:
            return
        self.lease_lost[unit] += 1
        log.warning("lost the lease on task set %s: %s; another replica polls it", unit, why)
        if self._scheduler is not None:
            await self._scheduler.stop_runner(unit, timeout=0)
        self.store.discard(unit)

    def _refused(self, unit: str, why: str) -> None:
        """A save was refused (called from the runner's own task, which then stops)."""
        if self.held.pop(unit, None) is not None:
            self.lease_lost[unit] += 1
            log.warning("a save of task set %s was refused: %s; another replica polls it", unit, why)
            self.store.discard(unit)

    async def _store_down(self, err: RedisError) -> None:
        if self.store_up or not self.joined:
            log.warning("Redis cannot be reached (%s); polling stops, the last values stay", type(err).__name__)
        self.store_up = False
        self.joined = True
        for unit, held in list(self.held.items()):
            if self.clock() >= held.renewed + self.ttl * 2 / 3:
                # The lease may lapse at any moment: stop; the set's last values stay on show.
                self.held.pop(unit)
                if self._scheduler is not None:
                    await self._scheduler.stop_runner(unit, timeout=0)

    # -- wake-ups for pushes ------------------------------------------------------------------
    async def _listen(self) -> None:
        """Wake the runner of a unit this replica holds when IDs are pushed to it elsewhere."""
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.keys.wake)
                    async for message in pubsub.listen():
                        unit = message.get("data")
                        if message.get("type") == "message" and unit in self.held and self._scheduler is not None:
                            runner = next((r for r in self._scheduler.runners if r.config.name == unit), None)
                            if runner is not None:
                                runner.woken.set()
            except (RedisError, OSError):
                pass
            await asyncio.sleep(self.tick)
