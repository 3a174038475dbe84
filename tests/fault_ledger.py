"""Per-task bookkeeping for the fault matrix: every task's exported state against its timeline.

The matrix sets export one `upload_task_state` series per task, so each scrape can be held
against the simulator task by task: a finished task must reach the state its timeline says,
a task never becomes not_found unless the API said so, no task stops being tracked, and
the completed and failed counters equal the number of tasks done and in error. What is
already wrong when a phase starts is carried, so a phase is blamed for its own damage only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tests.exporter_process import Metrics
from tests.fault_world import World

FINAL = ("done", "error", "not_found")


@dataclass
class Carry:
    """What earlier phases got wrong for one set."""

    lost: set[str] = field(default_factory=set)  # finished, never exported as such
    wrong: set[str] = field(default_factory=set)  # exported in a final state the API never gave
    untracked: set[str] = field(default_factory=set)
    miscounted: tuple[float, float] = (0.0, 0.0)  # counters minus tasks done / in error


class Ledger:
    def __init__(self, world: World, ids: Mapping[str, Sequence[str]], set_name: Mapping[str, str]) -> None:
        self.world, self.ids, self.set_name = world, ids, set_name
        self.carry = {p: Carry() for p in ids}

    def states(self, metrics: Metrics, provider: str) -> dict[str, str]:
        name = self.set_name[provider]
        return {
            s.labels["task_id"]: s.labels["state"]
            for s in metrics.samples
            if s.name == "upload_task_state" and s.labels.get("task_set") == name
        }

    def counters(self, metrics: Metrics, provider: str) -> tuple[float, float]:
        labels = {"provider": provider, "task_set": self.set_name[provider]}
        return (
            metrics.value("upload_tasks_completed_total", **labels),
            metrics.value("upload_tasks_failed_total", **labels),
        )

    def check(self, metrics: Metrics, provider: str, at: float) -> list[str]:
        """What is newly wrong in this scrape, taken at `at` (simulator clock)."""
        carry, states, problems = self.carry[provider], self.states(metrics, provider), []
        untracked = set(self.ids[provider]) - set(states) - carry.untracked
        total = metrics.value("upload_tasks", provider=provider, task_set=self.set_name[provider])
        if untracked or total < len(self.ids[provider]) - len(carry.untracked):
            problems.append(f"tasks lost: {len(untracked)} without a series, upload_tasks sums to {total:g}")
        wrong = {t for t, s in states.items() if s in FINAL and s != self.world.expected(provider, t, at + 0.5)}
        gone = {t for t in wrong - carry.wrong if states[t] == "not_found"}
        if gone:
            problems.append(f"not_found without the API saying so: {len(gone)} tasks")
        if wrong - carry.wrong - gone:
            problems.append(f"final state the API never gave: {len(wrong - carry.wrong - gone)} tasks")
        done, failed = self.counters(metrics, provider)
        by_state = sum(s == "done" for s in states.values()), sum(s == "error" for s in states.values())
        off = (done - by_state[0], failed - by_state[1])
        if off[0] > carry.miscounted[0] or off[1] > carry.miscounted[1]:
            problems.append(
                f"counted twice: completed {done:g} for {by_state[0]} done, failed {failed:g} "
                f"for {by_state[1]} in error"
            )
        if off[0] < carry.miscounted[0] or off[1] < carry.miscounted[1]:
            problems.append(
                f"transitions not counted: completed {done:g} for {by_state[0]} done, failed "
                f"{failed:g} for {by_state[1]} in error"
            )
        return problems

    def behind(self, metrics: Metrics, provider: str, cleared: float) -> set[str]:
        """Tasks finished before the fault's end that are not (rightly) final yet, beyond those carried."""
        states, carry = self.states(metrics, provider), self.carry[provider]
        finished = {t for t in self.ids[provider] if self.world.expected(provider, t, cleared) != "pending"}
        return {t for t in finished if states.get(t) != self.world.expected(provider, t, cleared)} - carry.lost

    def commit(self, metrics: Metrics, cleared: float, now: float) -> None:
        """Carry what is wrong at the end of a phase (scraped at `now`) into the next one."""
        for p, carry in self.carry.items():
            states = self.states(metrics, p)
            carry.lost |= self.behind(metrics, p, cleared)
            carry.wrong |= {t for t, s in states.items() if s in FINAL and s != self.world.expected(p, t, now + 0.5)}
            carry.untracked |= set(self.ids[p]) - set(states)
            done, failed = self.counters(metrics, p)
            carry.miscounted = (
                done - sum(s == "done" for s in states.values()),
                failed - sum(s == "error" for s in states.values()),
            )
