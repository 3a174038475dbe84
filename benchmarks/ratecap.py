"""The Alibaba Cloud VOD call rate: the most calls the simulator saw in any one second.

20,000 jobs in two task sets on one account with the default cap (the API's 100 calls a
second), both sets polled at once. The simulator counts calls by wall-clock second as they
land and throttles past its cap, as the API does. The baseline asks one job a request for
a few seconds, unpaced.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import aiohttp

from benchmarks import common
from benchmarks.baseline import HandWrittenExporter
from exporter.core.state import StateStore
from exporter.providers.aliyun_vod import AliyunVod
from exporter.simulator.aliyun_vod import AliyunVodSimulator

SETS = 2
BASELINE_SECONDS = 5.0


@dataclass(frozen=True)
class RateFigure:
    jobs: int
    cap: float
    calls: int
    seconds: int
    max_per_second: int
    throttled: int
    baseline_max_per_second: int
    baseline_throttled: int


async def measure(jobs: int) -> RateFigure:
    sim = AliyunVodSimulator(seed=11)
    await sim.start()
    try:
        ids = common.add_mixed_tasks(sim, jobs)
        share = -(-jobs // SETS)
        raw = {
            "accounts": {"a": common.account(sim)},
            "task_sets": [
                common.task_set(f"set{i}", "a", {"ids": ids[i * share : (i + 1) * share]}) for i in range(SETS)
            ],
        }
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(r.poll_once() for r in common.runners(raw, StateStore(), session)))
            ours, our_throttled = dict(sim.per_second), sim.throttled
            sim.per_second.clear()
            exporter = HandWrittenExporter(common.provider_for(raw, common.live_client(session)), "bench")
            with contextlib.suppress(TimeoutError):  # it would take minutes; a few seconds show its rate
                await asyncio.wait_for(exporter.poll(ids), BASELINE_SECONDS)
            theirs, their_throttled = dict(sim.per_second), sim.throttled - our_throttled
    finally:
        await sim.stop()
    return RateFigure(
        jobs,
        AliyunVod.default_rate_limit,
        sum(ours.values()),
        len(ours),
        max(ours.values()),
        our_throttled,
        max(theirs.values()),
        their_throttled,
    )
