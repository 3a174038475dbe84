"""A fixed scenario over every provider, against its simulator, pinned as a golden exposition.

The clock is injected and the simulators are seeded, so the exposition is the same on every
run; only what measures this machine (poll wall times, the Python version) and absolute
timestamps are left out, and values are rounded to the second (a poll's end time includes its
wall time). A change of the file is a change of behaviour: review it.
Regenerate with UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from exporter.simulator.demo import SIMULATORS
from tests.conftest import Harness, ManualClock

GOLDEN = Path(__file__).parent / "golden" / "exposition.txt"
VARIES = re.compile(r"^(# (HELP|TYPE) )?upload_(build_info|poll_duration_seconds|poll_last_success_timestamp_seconds)")
STEPS = (61, 121, 301)  # seconds between polls, off the buckets' bounds; VOD refuses requests timed 15 minutes off


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(float(int(time.time())))  # VOD checks the request's real time against its clock


async def test_a_fixed_scenario_renders_the_golden_exposition(clock, session):
    sims = [cls(seed=100 + i, clock=clock) for i, cls in enumerate(SIMULATORS)]
    raw: dict = {"accounts": {}, "task_sets": []}
    try:
        for sim in sims:
            await sim.start()
            ids = sim.add_random_tasks(30, min_s=20, max_s=400, fail_ratio=0.25, backdate_s=100)
            tasks = sim.demo_tasks("unused")
            raw["accounts"][sim.name] = {**sim.demo_account(), "rate_limit": 1000}
            raw["task_sets"].append(
                {
                    "name": f"golden-{sim.name}",
                    "account": sim.name,
                    "interval": 60,
                    "tasks": tasks if "discover" in tasks else {"ids": ids},
                    "labels": {"team": "golden"},
                }
            )
        harness = Harness(raw, session, clock)
        for step in (0, *STEPS):
            clock.advance(step)
            for runner in harness.scheduler.runners:
                await runner.poll_once()
        text = "".join(f"{_rounded(line)}\n" for line in harness.metrics().splitlines() if not VARIES.match(line))
    finally:
        for sim in sims:
            await sim.stop()
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    expected = GOLDEN.read_text().splitlines()
    differ = [(want, got) for want, got in zip(expected, text.splitlines(), strict=True) if want != got]
    assert not differ, differ


def _rounded(line: str) -> str:
    if line.startswith("#"):
        return line
    series, value = line.rsplit(" ", 1)
    return f"{series} {float(value):.0f}"
