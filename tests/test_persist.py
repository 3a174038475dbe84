"""Durable state: a restart loses no task and counts no transition twice."""

from __future__ import annotations

import pytest

from exporter.core import config as config_mod
from exporter.core.model import FetchResult, TaskState, TaskStatus
from exporter.core.persist import StateFile
from exporter.core.provider import Vocabulary
from exporter.core.records import FIELDS, TaskRecord
from exporter.core.state import PollOutcome, StateStore
from exporter.core.wiring import build_exposition, build_scheduler
from exporter.providers import PROVIDERS


def raw(yandex, name="banners"):
    account = {"provider": "yandex_direct", "endpoint": yandex.url, "token": {"env": "YANDEX_TEST_TOKEN"}}
    return {
        "accounts": {"d": account},
        "task_sets": [{"name": name, "account": "d", "interval": 60, "tasks": {"discover": True}}],
    }


class Process:
    """One exporter lifetime on a state file."""

    def __init__(self, path, cfg, session, clock):
        self.file = StateFile(path)
        self.store = StateStore(self.file)
        self.scheduler = build_scheduler(cfg, PROVIDERS, self.store, session, clock=clock, backoff_base=0.01)
        self.exposition = build_exposition(cfg, PROVIDERS, self.store)

    async def poll(self):
        await self.scheduler.runners[0].poll_once()

    def text(self):
        return self.exposition.render().decode()

    async def stop(self):
        await self.store.close()


def test_saved_columns_follow_the_task_record():
    assert sorted(FIELDS) == sorted(TaskRecord._fields)
    rec = TaskRecord.new(100.0)
    assert TaskRecord.from_row((rec.state, *rec.row("a")[2:])) == rec
    assert rec.row("a")[1:] == (rec.state.value, *(getattr(rec, f) for f in FIELDS[1:]))


async def test_restart_keeps_tasks_and_counters_and_counts_nothing_twice(yandex, session, clock, tmp_path):
    cfg = config_mod.parse(raw(yandex), PROVIDERS)
    for i in range(9):
        yandex.add_task(duration=30, fails=i % 3 == 0)
    for _ in range(4):
        yandex.add_task(duration=3000)
    first = Process(tmp_path / "state.db", cfg, session, clock)
    await first.poll()  # all pending
    clock.advance(60)
    await first.poll()  # 6 done, 3 failed: counted
    before = first.text()
    assert 'upload_tasks_completed_total{provider="yandex_direct",task_set="banners"} 6.0' in before
    await first.stop()

    second = Process(tmp_path / "state.db", cfg, session, clock)
    await second.store.restore("banners")
    assert len(second.store.sets["banners"].tasks) == 13
    clock.advance(60)
    await second.poll()  # the same finished tasks again: nothing new
    after = second.text()
    assert 'upload_tasks_completed_total{provider="yandex_direct",task_set="banners"} 6.0' in after
    assert 'upload_tasks{provider="yandex_direct",state="pending",task_set="banners"} 4.0' in after
    failed = [line for line in after.splitlines() if line.startswith("upload_tasks_failed_total{")]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in failed) == 3
    clock.advance(3000)
    await second.poll()
    assert 'upload_tasks_completed_total{provider="yandex_direct",task_set="banners"} 10.0' in second.text()
    await second.stop()


async def test_a_set_removed_from_the_config_is_dropped(yandex, session, clock, tmp_path):
    yandex.add_task(duration=1)
    first = Process(tmp_path / "state.db", config_mod.parse(raw(yandex), PROVIDERS), session, clock)
    await first.poll()
    await first.stop()
    renamed = Process(tmp_path / "state.db", config_mod.parse(raw(yandex, "logos"), PROVIDERS), session, clock)
    await renamed.stop()
    again = Process(tmp_path / "state.db", config_mod.parse(raw(yandex), PROVIDERS), session, clock)
    await again.store.restore("banners")
    assert again.store.sets["banners"].tasks == {} and not again.store.sets["banners"].restored
    await again.stop()


async def test_every_kind_of_change_reaches_the_state_file(tmp_path):
    vocab = Vocabulary(
        statuses=frozenset({"Queued", "Done", "Bad"}), fault_codes=frozenset(), api_error_codes=frozenset()
    )
    first = StateStore(StateFile(tmp_path / "state.db"))
    first.ensure_set("s", "prov", vocab)
    first.track("s", ["a", "b", "c", "d", "e"], 100.0)  # c is never polled
    await first.flush("s")
    statuses = [
        TaskStatus("a", TaskState.DONE, "Done"),
        TaskStatus("b", TaskState.PENDING, "Queued"),
        TaskStatus("d", TaskState.PENDING, "Queued"),
    ]
    first.apply_poll("s", PollOutcome(started=150.0, duration=0.5, results=[FetchResult(statuses)]))
    first.forget_final("s", older_than=200.0, now=7200.0)  # a, tombstoned in hour 2
    await first.flush("s")
    for started in (158.0, 159.0, 160.0):  # b is left out of three answers in a row: not_found
        fault = "disk full" if started == 158.0 else "quota"  # e fails, then only its fault's message moves
        listing = [
            TaskStatus("d", TaskState.PENDING, "Queued"),
            TaskStatus("e", TaskState.ERROR, "Bad", fault_message=fault),
        ]
        first.apply_poll("s", PollOutcome(started=started, duration=0.5, results=[FetchResult(listing, omitted=["b"])]))
        await first.flush("s")
    first.apply_poll("s", PollOutcome(started=161.0, duration=0.5, results=[FetchResult([], omitted=["d"])]))
    await first.close()

    second = StateStore(StateFile(tmp_path / "state.db"))
    tasks = second.ensure_set("s", "prov", vocab).tasks
    await second.restore("s")
    assert sorted(tasks) == ["b", "c", "d", "e"]
    assert tasks["e"].message == "quota" and tasks["e"].last_seen == 159.5
    assert tasks["b"].state is TaskState.NOT_FOUND and tasks["b"].status == "missing"
    assert tasks["b"].last_seen == 160.5
    assert tasks["c"].last_seen is None and tasks["c"].first_seen == 100.0
    # d was found as it was from 150.5 on: its record, and the time it last changed, stayed put.
    assert tasks["d"].state is TaskState.PENDING and tasks["d"].status == "Queued" and tasks["d"].last_seen == 150.5
    assert tasks["d"].misses == 1  # left out once since it was last seen
    assert dict(second.sets["s"].tombstones.items()) == {"a": (TaskState.DONE, 2)}
    assert second.track("s", ["a"], 300.0) == 0  # forgotten, and still ignored after the restart


def view(st):
    """Everything a set's tasks hold, and every count and index kept of them."""
    return (
        {t: r.row(t) for t, r in st.tasks.items()},
        {k: v for k, v in st.by_state.items() if v},
        {k: v for k, v in st.by_status.items() if v},
        st.pending_progress,
        set(st.index.pending),
        {seen: set(ids) for seen, ids in st.index.finals.items()},
        dict(st.tombstones.items()),
    )


async def restored_view(path, vocab, pushed=()):
    file = StateFile(path)
    store = StateStore(file)
    st = store.ensure_set("s", "prov", vocab)
    store.track("s", list(pushed), 200.0)  # pushed while restoring: a saved row wins
    await store.restore("s")
    await file.close()  # saving nothing
    return view(st)


async def test_a_file_of_the_earlier_format_is_restored_and_rewritten_at_the_first_save(tmp_path):
    """Files written before the task log kept one row a task in `tasks`: they restore as they
    were, and the set's first save replaces those rows with the log."""
    import sqlite3

    from exporter.core.persist import SELECT_ROWS

    vocab = Vocabulary(statuses=frozenset({"Queued", "Done"}), fault_codes=frozenset(), api_error_codes=frozenset())
    path = tmp_path / "state.db"
    first = StateStore(StateFile(path))
    first.ensure_set("s", "prov", vocab)
    ids = [f"t{i:03d}" for i in range(150)] + ["zz\x1eodd"]
    first.track("s", ids, 100.0)
    statuses = [
        TaskStatus(t, TaskState.DONE, "Done") if i % 3 == 0 else TaskStatus(t, TaskState.PENDING, "Queued")
        for i, t in enumerate(ids[:100])
    ] + [TaskStatus(t, TaskState.PENDING, "Queued", progress=i / 100) for i, t in enumerate(ids[100:120])]
    first.apply_poll("s", PollOutcome(started=150.0, duration=0.5, results=[FetchResult(statuses)]))
    live = first.sets["s"]
    rows = [("s", *rec.row(t)) for t, rec in live.tasks.items()]
    await first.close()
    with sqlite3.connect(path) as db:  # as the earlier release wrote it
        db.execute("DELETE FROM task_log")
        db.executemany(f"INSERT INTO tasks VALUES ({', '.join('?' * len(rows[0]))})", rows)

    earlier = await restored_view(path, vocab, pushed=["t005", "new"])
    assert earlier[0]["t005"][1] == "pending" and len(earlier[0]) == len(ids) + 1
    store = StateStore(StateFile(path))
    st = store.ensure_set("s", "prov", vocab)
    await store.restore("s")
    assert view(st) == await restored_view(path, vocab) and len(st.tasks) == len(ids)
    await store.flush("s")
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute(SELECT_ROWS, ("s", "", 10)).fetchall() == []
        assert db.execute("SELECT sum(ids) FROM task_log").fetchone()[0] == len(ids)
    assert await restored_view(path, vocab, pushed=["t005", "new"]) == earlier


async def test_after_every_save_the_file_restores_the_set_as_it_was(tmp_path, monkeypatch):
    """Saves append what changed (tasks changed, new, dropped) and now and then rewrite the
    set whole: whichever the last was, a restore gives every task, count and index as they were."""
    import random

    from exporter.core import persist
    from exporter.core import tasks as tasks_mod

    monkeypatch.setattr(persist, "REWRITE_SLACK", 0)
    monkeypatch.setattr(persist, "REWRITE_AFTER", 2.0)
    monkeypatch.setattr(tasks_mod, "ALL_CHANGED_MIN", 0)
    monkeypatch.setattr(tasks_mod, "ALL_CHANGED_SHARE", 3)
    rng = random.Random(7)
    vocab = Vocabulary(frozenset({"Queued", "Done", "Bad"}), fault_codes=frozenset(), api_error_codes=frozenset())
    path = tmp_path / "state.db"
    file = StateFile(path)
    saves = []  # (too many changed to list, the log outgrew the set) at each save
    store = StateStore(file)
    st = store.ensure_set("s", "prov", vocab)
    ids = [f"t{i}" for i in range(400)]
    store.track("s", ids[:200], 100.0)
    for poll in range(12):
        now = 150.0 + 60 * poll
        store.track("s", ids[200 + 15 * poll : 215 + 15 * poll], now)
        share = 0.9 if poll % 4 == 1 else 0.3  # now and then, most tasks change
        asked = [t for t, rec in st.tasks.items() if rec.state is TaskState.PENDING and rng.random() < share]
        statuses = []
        for t in asked:
            kind = rng.random()
            if kind < 0.2:
                statuses.append(TaskStatus(t, TaskState.DONE, "Done"))
            elif kind < 0.3:
                statuses.append(TaskStatus(t, TaskState.ERROR, "Bad", fault_message=f"broke {rng.randrange(3)}"))
            elif kind < 0.5:
                statuses.append(TaskStatus(t, TaskState.PENDING, "Queued", progress=rng.randrange(5) / 4))
            else:
                statuses.append(TaskStatus(t, TaskState.PENDING, "Queued"))
        store.apply_poll("s", PollOutcome(started=now, duration=0.5, results=[FetchResult(statuses)]))
        store.forget_final("s", older_than=now - 90, now=now)
        saves.append((st.all_changed, file.rewrite_due("s", len(st.tasks))))
        await store.flush("s")
        assert await restored_view(path, vocab) == view(st), f"after poll {poll}"
    await store.close()
    assert {(True, False), (False, True), (False, False)} <= set(saves)  # each way a save is written
    assert len(st.tombstones) > 0 and len(st.tasks) > 100


async def test_ids_saved_together_come_back_exactly_whatever_their_characters(tmp_path):
    """Rows that changed alike are written by one statement with their IDs as a JSON array."""
    vocab = Vocabulary(statuses=frozenset({"Queued", "Done"}), fault_codes=frozenset(), api_error_codes=frozenset())
    ids = ['quote"d', "back\\slash", "é", "日本", "ctl\x1f\x1e\x01", "tab\t", "[0]", "null", " lead"]
    first = StateStore(StateFile(tmp_path / "state.db"))
    first.ensure_set("s", "prov", vocab)
    first.track("s", ids, 100.0)
    done = [TaskStatus(t, TaskState.DONE, "Done") for t in ids[::2]]
    queued = [TaskStatus(t, TaskState.PENDING, "Queued") for t in ids[1::2]]
    first.apply_poll("s", PollOutcome(started=150.0, duration=0.5, results=[FetchResult(done + queued)]))
    saved = {t: r.row(t) for t, r in first.sets["s"].tasks.items()}
    await first.close()

    second = StateStore(StateFile(tmp_path / "state.db"))
    tasks = second.ensure_set("s", "prov", vocab).tasks
    await second.restore("s")
    assert {t: r.row(t) for t, r in tasks.items()} == saved
    assert len({r[1:] for r in saved.values()}) == 2  # written together: one statement for each kind


@pytest.mark.parametrize("whole", [False, True], ids=["changes", "whole"])
async def test_what_a_failed_save_carried_is_saved_by_the_next(tmp_path, monkeypatch, whole):
    """A save that fails (a full disk) leaves the file as it was; the next save carries its tasks
    and tombstones again, with what changed since: a restart never finds a task older than its
    counters, which would count its transition again."""
    import sqlite3

    from exporter.core import persist

    if whole:
        monkeypatch.setattr(persist, "REWRITE_SLACK", -1)
    vocab = Vocabulary(frozenset({"Queued", "Done", "Bad"}), fault_codes=frozenset(), api_error_codes=frozenset())
    path = tmp_path / "state.db"
    file = StateFile(path)
    store = StateStore(file)
    st = store.ensure_set("s", "prov", vocab)
    store.track("s", ["a", "b", "c", "d"], 100.0)
    store.apply_poll("s", PollOutcome(started=110.0, duration=0.5, results=[FetchResult([])]))
    await store.flush("s")
    saved_before = await restored_view(path, vocab)
    done = [TaskStatus("a", TaskState.DONE, "Done"), TaskStatus("b", TaskState.ERROR, "Bad", fault_message="x")]
    store.apply_poll("s", PollOutcome(started=150.0, duration=0.5, results=[FetchResult(done)]))
    store.forget_final("s", older_than=200.0, now=7200.0)  # a and b tombstoned
    store.apply_poll("s", PollOutcome(started=7200.0, duration=0.5, results=[FetchResult([done[0]])]))

    finish = StateFile._finish

    def full_disk(self, changes):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(StateFile, "_finish", full_disk)
    with pytest.raises(sqlite3.OperationalError):
        await store.flush("s")
    assert await restored_view(path, vocab) == saved_before  # nothing of it was kept
    monkeypatch.setattr(StateFile, "_finish", finish)
    later = [TaskStatus("c", TaskState.DONE, "Done")]
    store.apply_poll("s", PollOutcome(started=7260.0, duration=0.5, results=[FetchResult(later)]))
    await store.flush("s")
    again = await restored_view(path, vocab)
    assert again == view(st) and sorted(again[0]) == ["c", "d"] and sorted(again[6]) == ["a", "b"]
    assert st.completed_total == 2 and sum(st.failed_total.values()) == 1
    await store.close()


def test_a_row_read_twice_is_one_task_counted_once():
    """A scan of saved rows (Redis's HSCAN) may give a row twice: it is still one task."""
    from exporter.core import dump
    from exporter.core.tasks import SetState

    vocab = Vocabulary(frozenset({"Queued"}), fault_codes=frozenset(), api_error_codes=frozenset())
    st = SetState("s", "prov", vocab)
    values = TaskRecord(TaskState.PENDING, "Queued", first_seen=100.0, last_seen=110.0)
    rows = [(t, *values) for t in ("a", "b", "a")]
    dump.restore_rows(st, rows)
    assert (
        sorted(st.tasks) == ["a", "b"] and st.by_state[TaskState.PENDING] == 2 and list(st.index.pending) == ["a", "b"]
    )
