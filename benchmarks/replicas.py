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
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

from benchmarks import common
from benchmarks.redis_server import RedisServer
from exporter.core.state import StateStore
from exporter.providers import PROVIDERS
from exporter.simulator.aliyun_vod import AliyunVodSimulator
from exporter.simulator.base import Simulator

REPLICAS = 3
TTL_SECONDS = 3.0  # --state.redis-lease-ttl (its minimum)
INTERVAL_SECONDS = 1.0  # every set's
TASKS = 120  # a provider's set: 1, 2, 3 and 12 calls a poll
PENDING_SECONDS = 3_600.0  # tasks that stay pending all through
RATE_LIMIT = 100.0  # the measured sets' accounts: pacing is not what this figure is about
CAP, CAP_SETS, CAP_TASKS = 5.0, 6, 60  # one VOD account: 6 sets of 6 calls a poll, 36 calls a second asked
WINDOW_SECONDS = 8.0
QUIET_SECONDS = 0.3  # no call to a measured set this long before and after a snapshot: no poll under way
KILLS = 3
KILLED_SET = "set-aliyun_vod"
START_SECONDS = 30.0  # start-up of a replica on a busy 2-core machine
SETTLE_SECONDS = 2 * TTL_SECONDS  # hand-overs while replicas join
STEP_SECONDS = 0.05
MEASURED = ("yandex_direct", "encoding_com", "aliyun_vod")  # no ETA deferral: a fixed number of calls a poll
ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = aiohttp.ClientTimeout(total=3)

Scrape = dict[tuple[str, frozenset[tuple[str, str]]], float]


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


def value(scrape: Scrape | None, name: str, **labels: str) -> float:
    """The sum of the samples of `name` carrying `labels` (0 without a scrape)."""
    if scrape is None:
        return 0.0
    wanted = set(labels.items())
    return sum(v for (n, ls), v in scrape.items() if n == name and wanted <= ls)


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


class Replica:
    """One exporter process on a port of its own; started again (on a new port) after a kill."""

    def __init__(self, workdir: Path, index: int, args: list[str], env: dict[str, str]) -> None:
        self.log = workdir / f"replica{index}.log"
        self.args, self.env = args, env
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        self.port = common.free_port()
        argv = [sys.executable, "-m", "exporter", *self.args, f"--web.listen-address=127.0.0.1:{self.port}"]
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=err)

    async def ready(self, session: aiohttp.ClientSession) -> None:
        await common.wait_http(session, f"http://127.0.0.1:{self.port}/-/ready", START_SECONDS)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    async def scrape(self, session: aiohttp.ClientSession) -> Scrape | None:
        if not self.running():
            return None
        try:
            async with session.get(f"http://127.0.0.1:{self.port}/metrics", timeout=TIMEOUT) as resp:
                text = await resp.text() if resp.status == 200 else ""
        except (aiohttp.ClientError, TimeoutError):
            return None
        families = text_string_to_metric_families(text) if text else []
        return {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}


class Group:
    """The replicas over one config and one Redis."""

    def __init__(self, workdir: Path, config: Path, redis_url: str) -> None:
        args = [
            f"--config.file={config}",
            "--log.level=warn",
            f"--state.redis-url={redis_url}",
            f"--state.redis-lease-ttl={TTL_SECONDS:g}",
        ]
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost"}  # loopback only
        self.replicas = [Replica(workdir, i, args, env) for i in range(REPLICAS)]

    async def start(self, session: aiohttp.ClientSession) -> None:
        for r in self.replicas:
            r.spawn()
        for r in self.replicas:
            await r.ready(session)

    def kill_all(self) -> None:
        for r in self.replicas:
            r.kill()

    async def scrapes(self, session: aiohttp.ClientSession) -> list[Scrape | None]:
        return list(await asyncio.gather(*(r.scrape(session) for r in self.replicas)))

    async def sole_holder(self, session: aiohttp.ClientSession, name: str, timeout: float) -> int:
        """Wait until exactly one replica says it holds the set's lease; its index."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            scrapes = await self.scrapes(session)
            held = [i for i, s in enumerate(scrapes) if value(s, "upload_lease_held", task_set=name)]
            if len(held) == 1:
                return held[0]
            await asyncio.sleep(STEP_SECONDS * 4)
        raise RuntimeError(f"no sole holder of {name} in {timeout:.0f}s [{common.tail(self.replicas[0].log)}]")


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
    """Kill the set's holder; seconds until the set's simulator gets a call again."""
    holder = await group.sole_holder(session, KILLED_SET, START_SECONDS)
    killed = time.time()
    group.replicas[holder].kill()
    # A lease renewed a tick (a third of the TTL) before the kill lapses no sooner than this:
    # a call before it was sent by the dead holder.
    earliest = killed + TTL_SECONDS * 2 / 3
    deadline = time.monotonic() + 3 * (TTL_SECONDS + INTERVAL_SECONDS)
    while time.monotonic() < deadline:
        calls = calls_between(sim, earliest, math.inf)
        if calls:
            took = min(calls) - killed
            new = await group.sole_holder(session, KILLED_SET, START_SECONDS)
            assert new != holder, new
            return took
        await asyncio.sleep(STEP_SECONDS)
    raise RuntimeError(f"{KILLED_SET} not polled again in {3 * (TTL_SECONDS + INTERVAL_SECONDS):.0f}s")


async def measure() -> Figure:
    sims = {p: common.make_simulator(p) for p in PROVIDERS}
    capped = AliyunVodSimulator(seed=11, rate_cap=int(CAP))
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        workdir = Path(tmp)
        (workdir / "redis").mkdir()
        redis = RedisServer(workdir / "redis")
        redis.start()
        for sim in [*sims.values(), capped]:
            await sim.start()
        try:
            raw = config(sims, capped)
            path = workdir / "config.yaml"
            path.write_text(yaml.safe_dump(raw))
            group = Group(workdir, path, redis.url)
            async with aiohttp.ClientSession() as session:
                # The batches of one process: its runners, wired as the daemon wires them (never started).
                caps = {r.config.name: r.batch_size for r in common.runners(raw, StateStore(), session)}
                try:
                    await group.start(session)
                    for name in [*(f"set-{p}" for p in sims), *(f"capped-{i}" for i in range(CAP_SETS))]:
                        await group.sole_holder(session, name, START_SECONDS)
                    await asyncio.sleep(SETTLE_SECONDS)
                    seconds, rows, cap_calls, spread = await window(session, group, sims, capped, caps)
                    throttled = capped.throttled
                    took = []
                    for kill in range(KILLS):
                        took.append(await takeover(session, group, sims["aliyun_vod"]))
                        if kill < KILLS - 1:
                            killed = next(r for r in group.replicas if not r.running())
                            killed.spawn()  # back to three, then past the hand-overs its return brings
                            await killed.ready(session)
                            await asyncio.sleep(TTL_SECONDS)
                finally:
                    group.kill_all()
        finally:
            for sim in [*sims.values(), capped]:
                await sim.stop()
            redis.stop()
    return Figure(seconds, rows, CAP, len(cap_calls), busiest_second(cap_calls), throttled, spread, took)
