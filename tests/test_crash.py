"""kill -9 with --state.file: between polls, mid-poll and right after an acknowledged push.

One Yandex Direct simulator on 127.0.0.1 and the exporter as a real process polling it every
second. Tasks finish while the process is killed and restarted, again and again; once every
task has finished, each is still tracked and the completed and failed totals equal the
simulator's timelines: nothing lost, nothing counted twice.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.exporter_process import ExporterProcess, Metrics, wait_for
from tests.fault_world import World

PROVIDER, SET = "yandex_direct", "crash"
ROUNDS = 3  # each round kills the process once each way: 9 restarts
CONFIG_TASKS = 24
READY_SECONDS = 20.0  # restart, state restored, first poll: a busy 2-core machine
POLL_SECONDS = 10.0  # for one poll to end, or a request to arrive
SETTLE_SECONDS = 20.0  # after the last task finished, for the counters to reach the truth


@dataclass
class Crash:
    world: World
    exporter: ExporterProcess
    token: str
    ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def scrape(self) -> Metrics:
        return wait_for(self.exporter.scrape, POLL_SECONDS, "/metrics")

    def value(self, metrics: Metrics, name: str, **labels: str) -> float:
        return metrics.value(name, provider=PROVIDER, task_set=SET, **labels)

    def restart(self, how: str) -> None:
        """Start again after a kill; the restored state must hold every task and count nothing twice."""
        self.exporter.start()
        wait_for(lambda: self.exporter.get("/-/ready", 2.0)[0] == 200, READY_SECONDS, f"ready after {how}")
        self.check(how)

    def check(self, how: str) -> None:
        metrics = self.scrape()
        truth = self.world.truth(PROVIDER, self.ids, time.time() + 0.5)
        tracked = self.value(metrics, "upload_tasks")
        done = self.value(metrics, "upload_tasks_completed_total")
        failed = self.value(metrics, "upload_tasks_failed_total")
        self.notes.append(
            f"{how}: tracked {tracked:g}/{len(self.ids)}, done {done:g}/{truth.done}, failed {failed:g}/{truth.failed}"
        )
        assert tracked == len(self.ids), f"tasks lost after {how}: {self.notes}"
        assert done <= truth.done and failed <= truth.failed, f"counted twice after {how}: {self.notes}"


def kill_between_polls(crash: Crash) -> None:
    """Right after a poll ended (its last-success time moved), before the next one starts."""

    def last_success() -> float:
        metrics = crash.exporter.scrape()
        return crash.value(metrics, "upload_poll_last_success_timestamp_seconds") if metrics else 0.0

    first = last_success()
    wait_for(lambda: last_success() > first, POLL_SECONDS, "a poll to end")
    crash.exporter.kill9()


def kill_mid_poll(crash: Crash) -> None:
    """While the simulator holds a request of the poll open."""
    seen = len(crash.world.received(PROVIDER))
    crash.world.set_fault([PROVIDER], "hang")
    try:
        wait_for(
            lambda: any(r.answer == "hang" for r in crash.world.received(PROVIDER)[seen:]),
            POLL_SECONDS,
            "a poll's request to hang",
        )
        crash.exporter.kill9()
    finally:
        crash.world.clear_fault([PROVIDER])


def kill_after_push(crash: Crash) -> None:
    """The moment a push is acknowledged: 200 means the IDs are durable."""
    now = crash.world.clock(PROVIDER)
    pushed = crash.world.add_tasks(PROVIDER, [now + 1.0 + i for i in range(4)], fail_every=3)
    status, body = crash.exporter.push(SET, pushed, crash.token)
    crash.exporter.kill9()
    assert status == 200, (status, body)
    crash.ids.extend(pushed)


KILLS: list[Callable[[Crash], None]] = [kill_between_polls, kill_mid_poll, kill_after_push]


@pytest.fixture
def crash(tmp_path: Path) -> Iterator[Crash]:
    world = World((PROVIDER,))
    token = secrets.token_hex(16)
    start = world.clock(PROVIDER)
    # Tasks finish all through the kill loop below (about a restart every 3 s).
    ids = world.add_tasks(PROVIDER, [start + 3.0 + 1.5 * i for i in range(CONFIG_TASKS)], fail_every=4)
    config = {
        "accounts": {PROVIDER: world.account(PROVIDER)},
        "task_sets": [
            {
                "name": SET,
                "account": PROVIDER,
                "interval": "1s",
                "max_tries": 2,
                "max_retry_time": "0.5s",
                "tasks": {"ids": ids, "push_token": {"env": "FT_PUSH_TOKEN"}},
            }
        ],
    }
    exporter = ExporterProcess(
        tmp_path, config, {**world.env, "FT_PUSH_TOKEN": token}, state_file=tmp_path / "state.db"
    )
    try:
        yield Crash(world, exporter, token, list(ids))
    finally:
        exporter.stop()
        world.close()


def test_kill9_keeps_every_task_and_counts_each_transition_once(crash: Crash) -> None:
    crash.exporter.start()
    wait_for(lambda: crash.exporter.get("/-/ready", 2.0)[0] == 200, READY_SECONDS, "ready")
    for round_ in range(ROUNDS):
        for kill in KILLS:
            kill(crash)
            crash.restart(f"{kill.__name__} #{round_ + 1}")
    tasks = crash.world.sims[PROVIDER].tasks
    last = max(tasks[i].finish_at for i in crash.ids)
    wait_for(lambda: time.time() > last, last - time.time() + 1.0, "every task to finish")

    def settled() -> bool:
        metrics = crash.exporter.scrape()
        truth = crash.world.truth(PROVIDER, crash.ids, time.time())
        return metrics is not None and (
            crash.value(metrics, "upload_tasks_completed_total"),
            crash.value(metrics, "upload_tasks_failed_total"),
        ) == (truth.done, truth.failed)

    try:
        wait_for(settled, SETTLE_SECONDS, "the counters to equal the simulator's transitions")
    finally:
        crash.check("the end")
        print("\n" + "\n".join(crash.notes))
    metrics = crash.scrape()
    assert crash.value(metrics, "upload_tasks", state="pending") == 0, crash.notes
    assert crash.value(metrics, "upload_tasks", state="not_found") == 0, crash.notes
    log = crash.exporter.log_text()
    assert crash.token not in log and not [s for s in crash.world.secret_values() if s in log]
