"""API calls per poll cycle against the theoretical minimum, for every provider.

One task set a provider, polled every 60 s of simulated time (a clock shared with the
simulators, so tasks finish and ETAs pass without waiting). Before each poll the minimum
is ceil(due / batch cap), due = tracked, not final, and past its "not before" time; the
calls are what the simulator received. The baseline asks every tracked task, one request
each, every cycle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import aiohttp

from benchmarks import common
from benchmarks.baseline import HandWrittenExporter
from exporter.core.model import TaskState
from exporter.core.state import StateStore
from exporter.simulator.base import Simulator

CYCLE_SECONDS = 60.0
RATE_LIMIT = 100.0  # calls a second: the simulators have no quota to protect, and pacing is not measured here


@dataclass(frozen=True)
class CallsFigure:
    provider: str
    tasks: int
    cycles: int
    batch_cap: int
    calls: int
    minimum: int
    baseline_calls: int


def due_count(store: StateStore, name: str, now: float) -> int:
    return sum(
        1
        for rec in store.sets[name].tasks.values()
        if rec.state is TaskState.PENDING and (rec.not_before is None or rec.not_before <= now)
    )


async def measure(provider: str, tasks: int, cycles: int) -> CallsFigure:
    clock = common.ManualClock()
    sim = common.make_simulator(provider, clock)
    await sim.start()
    try:
        ids = common.add_mixed_tasks(sim, tasks)
        raw = {
            "accounts": {"a": common.account(sim, rate_limit=RATE_LIMIT)},
            "task_sets": [common.task_set("bench", "a", {"ids": ids})],
        }
        store = StateStore()
        async with aiohttp.ClientSession() as session:
            runner = common.runners(raw, store, session, clock)[0]
            calls = minimum = 0
            for _ in range(cycles):
                store.track("bench", ids, clock())
                minimum += math.ceil(due_count(store, "bench", clock()) / runner.batch_size)
                before = sim.requests
                await runner.poll_once()
                calls += sim.requests - before
                clock.advance(CYCLE_SECONDS)
            baseline_calls = await _baseline_calls(sim, raw, ids, clock, cycles, session)
    finally:
        await sim.stop()
    return CallsFigure(provider, tasks, cycles, runner.batch_size, calls, minimum, baseline_calls)


async def _baseline_calls(
    sim: Simulator,
    raw: dict[str, Any],
    ids: list[str],
    clock: common.ManualClock,
    cycles: int,
    session: aiohttp.ClientSession,
) -> int:
    """The same cycles, over again from the start of time, the hand-written way."""
    clock.advance(-CYCLE_SECONDS * cycles)
    exporter = HandWrittenExporter(common.provider_for(raw, common.live_client(session, clock=clock)), "bench")
    before = sim.requests
    for _ in range(cycles):
        await exporter.poll(ids)
        clock.advance(CYCLE_SECONDS)
    return sim.requests - before
