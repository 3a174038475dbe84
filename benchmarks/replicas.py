"""Three replicas sharing one Redis: API calls per poll against the minimum, one account's cap, take-over.

A real redis-server, the four simulators and REPLICAS exporter processes (`python -m exporter
--state.redis-url=... --state.redis-lease-ttl=3`) over one config, all on 127.0.0.1:
- one set a provider, TASKS tasks that stay pending, polled every second. Over WINDOW_SECONDS,
  from a moment no poll of them is under way to another, the calls each simulator received
  against the minimum: ceil(tasks / batch cap) for each poll the replicas made (the sum of their
  upload_poll_duration_seconds_count), and how many replicas polled the set. ipernity is left
  out of the ratio: it asks a ticket again only once the ETA the API gave has passed;
- in the same window, CAP_SETS sets on one Alibaba Cloud VOD account capped at CAP calls a
  second (a simulator of their own, throttling past the cap), asking CAP_SETS * 6 calls a
  second, spread over the replicas: the most calls in any one second (a sliding window);
- KILLS times, the holder of the VOD set is killed (SIGKILL) and the time until its simulator
  gets a call again (from the replica that took the set over) is taken; the killed replica is
  started again in between.
The figures are printed by benchmarks/replicas_report.py.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from benchmarks import common
from benchmarks.redis_server import RedisServer
from benchmarks.replica_group import START_SECONDS, STEP_SECONDS, Group, Scrape, value
from exporter.core.state import StateStore
from exporter.providers import PROVIDERS
from exporter.simulator.aliyun_vod import AliyunVodSimulator
from exporter.simulator.base import Simulator

REPLICAS = 3
TTL_SECONDS = 3.0  # --state.redis-lease-ttl (its minimum)
INTERVAL_SECONDS = 1.0  # every set's
TASKS = 120  # a provider's set: from 1 to 12 calls a poll, by its batch cap
PENDING_SECONDS = 3_600.0  # tasks that stay pending all through
RATE_LIMIT = 100.0  # the measured sets' accounts: pacing is not what this figure is about
CAP, CAP_SETS, CAP_TASKS = 5.0, 6, 60  # one VOD account: 6 sets of 6 calls a poll, 36 calls a second asked
WINDOW_SECONDS = 8.0
QUIET_SECONDS = 0.3  # no call to a measured set this long before and after a snapshot: no poll under way
KILLS = 3
KILLED_SET = "set-aliyun_vod"
SETTLE_SECONDS = 2 * TTL_SECONDS  # hand-overs while replicas join
MEASURED = ("yandex_direct", "encoding_com", "aliyun_vod")  # no ETA deferral: a fixed number of calls a poll


@dataclass(frozen=True)
class SetCalls:
    provider: str
    tasks: int
    batch_cap: int
    polls: int  # by all replicas together
    calls: int
    polled_by: int  # replicas whose poll count of the set moved

    @property
    def minimum(self) -> int:
        return self.polls * math.ceil(self.tasks / self.batch_cap)


@dataclass(frozen=True)
class Figure:
    window: float
    sets: list[SetCalls]
    cap: float
    cap_calls: int
    cap_busiest: int  # calls in the busiest second
    cap_throttled: int
    spread: list[int]  # sets of the capped account each replica held
    takeovers: list[float]  # seconds from the kill to the next call


def busiest_second(times: Sequence[float]) -> int:
    """The most calls in any window of one second."""
    ordered, most, first = sorted(times), 0, 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def calls_between(sim: Simulator, since: float, until: float) -> list[float]:
    return [r.at for r in list(sim.received) if since < r.at <= until]


async def snapshot(
    session: aiohttp.ClientSession, group: Group, sims: Sequence[Simulator]
) -> tuple[float, list[Scrape | None]]:
    """Scrapes of every replica at a moment no measured set's poll is under way, and that moment."""
    deadline = time.monotonic() + 20 * QUIET_SECONDS
    while True:
        at = time.time()
        scrapes = await group.scrapes(session)
        await asyncio.sleep(QUIET_SECONDS)
        if not any(calls_between(s, at - QUIET_SECONDS, time.time()) for s in sims):
            return at, scrapes
        if time.monotonic() > deadline:
            raise RuntimeError("no moment without a poll under way")


def config(sims: dict[str, Simulator], capped: Simulator) -> dict[str, Any]:
    def pending(sim: Simulator, count: int) -> list[str]:
        return [sim.add_task(duration=PENDING_SECONDS).task_id for _ in range(count)]

    def task_set(name: str, account: str, ids: list[str]) -> dict[str, Any]:
        return common.task_set(name, account, {"ids": ids}, interval=INTERVAL_SECONDS, max_retry_time=0.5)

    accounts = {p: common.account(s, rate_limit=RATE_LIMIT) for p, s in sims.items()}
    return {
        "accounts": {**accounts, "capped": common.account(capped, rate_limit=CAP)},
        "task_sets": [
            *(task_set(f"set-{p}", p, pending(s, TASKS)) for p, s in sims.items()),
            *(task_set(f"capped-{i}", "capped", pending(capped, CAP_TASKS)) for i in range(CAP_SETS)),
        ],
    }


async def window(
    session: aiohttp.ClientSession, group: Group, sims: dict[str, Simulator], capped: Simulator, caps: dict[str, int]
) -> tuple[float, list[SetCalls], list[float], list[int]]:
    """The measured sets' calls and polls, and the capped account's calls, over one window."""
    measured = [sims[p] for p in MEASURED]
    since, before = await snapshot(session, group, measured)
    await asyncio.sleep(WINDOW_SECONDS)
    until, after = await snapshot(session, group, measured)
    rows = []
    for p in MEASURED:
        moved = [
            value(a, "upload_poll_duration_seconds_count", task_set=f"set-{p}")
            - value(b, "upload_poll_duration_seconds_count", task_set=f"set-{p}")
            for b, a in zip(before, after, strict=True)
        ]
        calls = len(calls_between(sims[p], since, until))
        rows.append(SetCalls(p, TASKS, caps[f"set-{p}"], int(sum(moved)), calls, sum(m > 0 for m in moved)))
    spread = [sum(bool(value(s, "upload_lease_held", task_set=f"capped-{i}")) for i in range(CAP_SETS)) for s in after]
    return until - since, rows, calls_between(capped, since, until), spread


async def takeover(session: aiohttp.ClientSession, group: Group, sim: Simulator) -> float:
    """Kill the set's holder; seconds until the set's simulator gets a call again (from another replica)."""
    holder = await group.sole_holder(session, KILLED_SET, START_SECONDS)
    killed = time.time()
    group.replicas[holder].kill()
    # A lease renewed a tick (a third of the TTL) before the kill lapses no sooner than this:
    # a call before it was sent by the dead holder.
    earliest = killed + TTL_SECONDS * 2 / 3
    deadline = time.monotonic() + 3 * (TTL_SECONDS + INTERVAL_SECONDS)
    while time.monotonic() < deadline:
        if calls := calls_between(sim, earliest, math.inf):
            if await group.sole_holder(session, KILLED_SET, START_SECONDS) == holder:
                raise RuntimeError(f"{KILLED_SET} still held by the killed replica")
            return min(calls) - killed
        await asyncio.sleep(STEP_SECONDS)
    raise RuntimeError(f"{KILLED_SET} not polled again in {3 * (TTL_SECONDS + INTERVAL_SECONDS):.0f}s")


async def run(
    session: aiohttp.ClientSession, group: Group, sims: dict[str, Simulator], capped: AliyunVodSimulator
) -> Figure:
    # The batches of one process: its runners, wired as the daemon wires them (never started).
    raw = yaml.safe_load(group.config.read_text())
    caps = {r.config.name: r.batch_size for r in common.runners(raw, StateStore(), session)}
    await group.start(session)
    for name in [*(f"set-{p}" for p in sims), *(f"capped-{i}" for i in range(CAP_SETS))]:
        await group.sole_holder(session, name, START_SECONDS)
    await asyncio.sleep(SETTLE_SECONDS)
    seconds, rows, cap_calls, spread = await window(session, group, sims, capped, caps)
    took: list[float] = []
    for kill in range(KILLS):
        took.append(await takeover(session, group, sims["aliyun_vod"]))
        if kill < KILLS - 1:
            killed = next(r for r in group.replicas if not r.running())
            killed.spawn()  # back to three, then past the hand-overs its return brings
            await killed.ready(session)
            await asyncio.sleep(TTL_SECONDS)
    return Figure(seconds, rows, CAP, len(cap_calls), busiest_second(cap_calls), capped.throttled, spread, took)


async def measure() -> Figure:
    sims = {p: common.make_simulator(p) for p in PROVIDERS}
    capped = AliyunVodSimulator(seed=11, rate_cap=int(CAP))
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        workdir = Path(tmp)
        (workdir / "redis").mkdir()
        redis = RedisServer(workdir / "redis")
        group: Group | None = None
        try:
            redis.start()
            for sim in [*sims.values(), capped]:
                await sim.start()
            path = workdir / "config.yaml"
            path.write_text(yaml.safe_dump(config(sims, capped)))
            group = Group(workdir, path, redis.url, REPLICAS, TTL_SECONDS)
            async with aiohttp.ClientSession() as session:
                return await run(session, group, sims, capped)
        finally:
            if group is not None:
                group.kill_all()  # measured: no need to let them stop gently
            for sim in [*sims.values(), capped]:
                await sim.stop()
            redis.stop()
