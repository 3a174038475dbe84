"""Counting truth: every transition counted once, whatever re-reads, restarts, omissions and
deadlines happen around it. Real HTTP on loopback against the Yandex Direct simulator."""

from __future__ import annotations

import asyncio
import time

import pytest

from benchmarks import tombstones
from exporter.core import config as config_mod
from exporter.core.model import FetchResult, TaskState, TaskStatus
from exporter.core.persist import StateFile
from exporter.core.provider import Vocabulary
from exporter.core.ratelimit import AccountLimiter
from exporter.core.state import PollOutcome, SetState, StateStore
from exporter.core.wiring import build_exposition, build_scheduler
from exporter.providers import PROVIDERS

P, D, E = TaskState.PENDING, TaskState.DONE, TaskState.ERROR
VOCAB = Vocabulary(
    statuses=frozenset({"Queued", "Done", "Failed"}), fault_codes=frozenset({"E1"}), api_error_codes=frozenset()
)


def raw(yandex, tasks, **task_set):
    account = {"provider": "yandex_direct", "endpoint": yandex.url, "token": {"env": "YANDEX_TEST_TOKEN"}}
    return {
        "accounts": {"d": account},
        "task_sets": [
            {
                "name": "banners",
                "account": "d",
                "interval": 60,
                "tasks": tasks,
                "max_tries": 2,
                "max_retry_time": 1,
                **task_set,
            }
        ],
    }


class Process:
    """One exporter lifetime, optionally on a state file, polled by hand."""

    def __init__(self, cfg, session, clock, path=None):
        self.file = StateFile(path) if path else None
        self.store = StateStore(self.file)
        self.scheduler = build_scheduler(cfg, PROVIDERS, self.store, session, clock=clock, backoff_base=0.01)
        self.exposition = build_exposition(cfg, PROVIDERS, self.store)
        self.runner = self.scheduler.runners[0]

    async def poll(self):
        return await self.runner.poll_once()

    @property
    def set(self) -> SetState:
        return self.store.sets["banners"]

    def totals(self) -> tuple[int, int]:
        return self.set.completed_total, sum(self.set.failed_total.values())

    async def stop(self):
        await self.store.close()


async def test_forgotten_ids_are_never_counted_again_from_any_source(yandex, session, clock, tmp_path):
    """Config, a re-read ID file, a push, discovery listing them again, and a restart: 0 recounts."""
    in_config = [yandex.add_task(duration=5, fails=i == 0).task_id for i in range(2)]
    in_file = [yandex.add_task(duration=5, fails=i < 2).task_id for i in range(6)]
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(in_file) + "\n")
    cfg = config_mod.parse(
        raw(yandex, {"ids": in_config, "files": [str(ids_file)], "discover": True}, forget_final_after="3s"),
        PROVIDERS,
        str(tmp_path / "c.yaml"),
    )
    first = Process(cfg, session, clock, tmp_path / "state.db")
    await first.poll()  # all pending: the baseline
    clock.advance(10)
    await first.poll()
    assert first.totals() == (5, 3)
    finished = {t: yandex.tasks.pop(t) for t in [*in_config, *in_file]}  # the API's day of retention ends
    clock.advance(10)
    await first.poll()  # last seen 10 s ago: forgotten, tombstones left
    assert not first.set.tasks and len(first.set.tombstones) == 8
    yandex.tasks.update(finished)  # ... and discovery lists them again
    newcomer = yandex.add_task(duration=5)
    ids_file.write_text("\n".join([*in_file, newcomer.task_id]) + "\n")  # the whole file is read again
    clock.advance(1)
    await first.poll()
    assert first.totals() == (5, 3)
    assert list(first.set.tasks) == [newcomer.task_id]
    assert first.store.track("banners", in_file, clock(), "a push") == 0
    await first.stop()

    second = Process(cfg, session, clock, tmp_path / "state.db")  # config IDs and the file read anew
    clock.advance(10)
    await second.poll()
    assert second.totals() == (6, 3)  # only the newcomer, once
    clock.advance(10)
    await second.poll()
    assert second.totals() == (6, 3)
    await second.stop()


async def test_tombstones_expire_after_the_retention_unless_a_file_still_lists_them(yandex, session, clock, tmp_path):
    listed = yandex.add_task(duration=5).task_id
    pushed = yandex.add_task(duration=5).task_id
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(listed + "\n")
    cfg = config_mod.parse(
        raw(yandex, {"files": [str(ids_file)]}, forget_final_after="3s", tombstone_retention="1d"),
        PROVIDERS,
        str(tmp_path / "c.yaml"),
    )
    proc = Process(cfg, session, clock)
    proc.store.track("banners", [pushed], clock(), "a push")
    await proc.poll()
    clock.advance(10)
    await proc.poll()
    clock.advance(10)
    await proc.poll()
    assert set(proc.set.tombstones) == {listed, pushed} and proc.totals() == (2, 0)
    clock.advance(86400 + 7200)  # past the retention and the hourly sweep
    await proc.poll()
    assert set(proc.set.tombstones) == {listed}  # the file still lists it: kept, and renewed
    assert proc.totals() == (2, 0)


def test_a_task_left_out_of_answers_is_asked_again_and_counted_once():
    store = StateStore()
    store.ensure_set("s", "prov", VOCAB, not_found_after=3)
    store.track("s", ["a", "b"], 0.0)

    def poll(at, statuses, omitted=()):
        store.apply_poll("s", PollOutcome(started=at, duration=0.1, results=[FetchResult(statuses, omitted=omitted)]))

    poll(10, [TaskStatus("a", P, "Queued"), TaskStatus("b", P, "Queued")])
    poll(20, [TaskStatus("b", P, "Queued")], omitted=["a"])  # a partial answer
    poll(30, [TaskStatus("b", P, "Queued")], omitted=["a"])
    assert store.due("s", 40) == ["a", "b"]  # still pending, asked again
    poll(40, [TaskStatus("a", D, "Done"), TaskStatus("b", P, "Queued")])
    poll(50, [TaskStatus("a", D, "Done")], omitted=["b"])  # seen again: a's misses started over
    st = store.sets["s"]
    assert st.completed_total == 1 and st.tasks["a"].misses == 0 and st.tasks["b"].misses == 1
    poll(60, [], omitted=["b"])
    poll(70, [], omitted=["b"])  # three in a row: not_found, and nothing counted
    assert st.tasks["b"].state is TaskState.NOT_FOUND and st.tasks["b"].status == "missing"
    assert st.completed_total == 1 and not st.failed_total
    assert store.due("s", 80) == []


async def test_a_task_the_api_leaves_out_once_and_that_finishes_later_counts_once(yandex, session, clock):
    task = yandex.add_task(duration=30)
    proc = Process(config_mod.parse(raw(yandex, {"ids": [task.task_id]}), PROVIDERS), session, clock)
    await proc.poll()
    del yandex.tasks[task.task_id]  # the API leaves it out of one answer, without an error
    clock.advance(10)
    await proc.poll()
    assert proc.set.tasks[task.task_id].state is P and proc.set.tasks[task.task_id].misses == 1
    yandex.tasks[task.task_id] = task
    clock.advance(30)
    await proc.poll()
    await proc.poll()
    assert proc.totals() == (1, 0)
    assert yandex.calls[-2].ids == (task.task_id,)  # it was asked again


async def test_a_poll_ends_at_its_deadline_and_marks_the_set_down(yandex, session, clock):
    """A hanging API: the poll ends at poll_timeout, not at the account's 30 s timeout."""
    ids = [yandex.add_task(duration=5).task_id for _ in range(3)]
    proc = Process(
        config_mod.parse(raw(yandex, {"ids": ids}, interval=2, poll_timeout=1, max_tries=4), PROVIDERS), session, clock
    )
    await proc.poll()
    yandex.fail_next("timeout")
    started = time.monotonic()
    outcome = await proc.poll()
    assert time.monotonic() - started < 5
    assert outcome.error is not None and "deadline of 1s" in outcome.error
    assert not proc.set.up and len(proc.set.tasks) == 3  # down, last known state kept
    assert proc.set.requests["timeout"] == 1  # the call cut short is counted
    clock.advance(10)
    await proc.poll()
    assert proc.set.up and proc.totals() == (3, 0)


async def test_retry_after_holds_every_set_on_the_account():
    limiter = AccountLimiter(100, 4, name="acc")
    limiter.hold(0.3)
    started = time.monotonic()
    await asyncio.gather(*(_take(limiter) for _ in range(2)))  # e.g. two sets' calls
    assert time.monotonic() - started >= 0.29
    limiter.hold(10_000)  # capped
    assert limiter.not_before - time.monotonic() <= 300.0


async def _take(limiter: AccountLimiter) -> None:
    async with limiter.slot():
        pass


def test_a_tombstone_costs_at_most_64_bytes_beyond_its_id():
    """Traced allocations, not timing: the figure `make bench` prints at 100,000 and 1,000,000."""
    assert tombstones.bytes_per_tombstone(100_000) <= 64


@pytest.mark.parametrize(
    "damage", ["aggregates", "task row", "task field", "task IDs", "earlier task row", "not a database"]
)
async def test_a_damaged_state_file_is_one_line_naming_it(tmp_path, damage):
    import sqlite3

    path = tmp_path / "state.db"
    if damage == "not a database":
        path.write_bytes(b"this is not SQLite at all" * 100)
    else:
        store = StateStore(StateFile(path))
        store.ensure_set("s", "prov", VOCAB)
        store.track("s", ["a"], 1.0)
        await store.close()
        with sqlite3.connect(path) as db:
            if damage == "aggregates":
                db.execute('UPDATE sets SET aggregates = \'{"completed_total": 1, "failed_tot\'')
            elif damage == "task row":
                db.execute("UPDATE task_log SET task_values = json_set(task_values, '$[0]', 'bogus')")
            elif damage == "task field":
                db.execute("UPDATE task_log SET task_values = json_set(task_values, '$[8]', 'soon')")
            elif damage == "task IDs":
                db.execute("""UPDATE task_log SET task_ids = '["a", 1]'""")
            else:
                db.execute(
                    "INSERT INTO tasks (task_set, task_id, state, status, fault, message, first_seen) "
                    "VALUES ('s', 'b', 'bogus', '', '', '', 0)"
                )
    with pytest.raises(Exception) as caught:
        again = StateStore(StateFile(path))
        again.ensure_set("s", "prov", VOCAB)
        await again.restore("s")
    message = str(caught.value)
    assert type(caught.value).__name__ == "StateFileError"
    assert "\n" not in message and str(path) in message and "move it aside" in message


async def test_an_empty_state_file_is_initialised_with_a_warning(tmp_path, caplog):
    path = tmp_path / "state.db"
    path.touch()
    store = StateStore(StateFile(path))
    store.ensure_set("s", "prov", VOCAB)
    await store.restore("s")
    assert store.sets["s"].tasks == {}
    await store.close()
    assert any("empty" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)
