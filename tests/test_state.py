"""State and exposition: aggregates, bounded labels, vanished series, caching."""

from __future__ import annotations

import logging

from prometheus_client.parser import text_string_to_metric_families

from exporter.core.collector import Exposition, StateCollector
from exporter.core.model import FetchResult, Tally, TaskState, TaskStatus
from exporter.core.provider import CounterSpec, Vocabulary
from exporter.core.state import PollOutcome, StateStore

VOCAB = Vocabulary(
    statuses=frozenset({"Queued", "Done", "Failed"}), fault_codes=frozenset({"E1"}), api_error_codes=frozenset({"42"})
)
P, D, E = TaskState.PENDING, TaskState.DONE, TaskState.ERROR


def poll(
    store: StateStore, name: str, at: float, *statuses: TaskStatus, eta: float | None = None, error: str | None = None
) -> None:
    store.apply_poll(name, PollOutcome(started=at, duration=0.1, results=[FetchResult(statuses, eta)], error=error))


def exposition(store: StateStore, **kwargs) -> Exposition:
    args = {"extra_labels": {}, "per_task_caps": {}, "provider_counters": {}} | kwargs
    return Exposition(store, StateCollector(store, **args))


def samples(expo: Exposition) -> dict[tuple[str, frozenset], float]:
    out = {}
    for fam in text_string_to_metric_families(expo.render().decode()):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def find(expo: Exposition, name: str, **labels: str) -> list[float]:
    return [v for (n, ls), v in samples(expo).items() if n == name and set(labels.items()) <= set(ls)]


def test_aggregates_follow_transitions_and_count_once():
    store = StateStore()
    store.ensure_set("s", "prov", VOCAB)
    store.track("s", ["a", "b", "c"], 100.0)
    poll(
        store,
        "s",
        100,
        TaskStatus("a", P, "Queued", progress=0.5),
        TaskStatus("b", P, "Queued"),
        TaskStatus("c", P, "Queued", created=90.0),
    )
    st = store.sets["s"]
    assert st.by_state[P] == 3 and st.progress_ratio == 0.5 / 3
    poll(
        store,
        "s",
        160,
        TaskStatus("a", D, "Done", tallies=(Tally("bytes", 10),)),
        TaskStatus("c", E, "Failed", fault_code="E1", finished=150.0),
    )
    # A repeated final status is not a new transition.
    poll(store, "s", 220, TaskStatus("a", D, "Done", tallies=(Tally("bytes", 10),)))
    assert st.completed_total == 1 and st.failed_total == {"E1": 1}
    assert st.tallies[("bytes", "")] == 10
    assert st.by_state == {P: 1, D: 1, E: 1, TaskState.NOT_FOUND: 0}
    assert st.faults == {"E1": 1}
    assert st.durations[E].count == 1 and st.durations[E].total == 60.0  # created 90, finished 150
    assert st.durations[D].count == 1  # first seen pending at 100, done seen at 160
    assert abs(st.progress_ratio - 2 / 3) < 1e-9


def test_unknown_labels_become_other_and_are_logged_once(caplog):
    caplog.set_level(logging.WARNING)
    store = StateStore()
    store.ensure_set("s", "prov", VOCAB)
    for t in range(3):
        poll(store, "s", 100 + t, TaskStatus(f"t{t}", E, "Weird status https://x", fault_code="E999"))
    expo = exposition(store)
    assert find(expo, "upload_tasks_provider_status", status="other") == [3.0]
    assert find(expo, "upload_task_faults", fault_code="other") == [3.0]
    assert "https://x" not in expo.render().decode()
    unknown = [r for r in caplog.records if "unknown status" in r.getMessage()]
    assert len(unknown) == 1


def test_vanished_sets_and_labels_disappear():
    store = StateStore()
    store.ensure_set("keep", "prov", VOCAB)
    store.ensure_set("gone", "prov", VOCAB)
    poll(store, "keep", 100, TaskStatus("a", E, "Failed", fault_code="E1"))
    poll(store, "gone", 100, TaskStatus("b", P, "Queued"))
    expo = exposition(store)
    assert find(expo, "upload_task_faults", fault_code="E1") == [1.0]
    assert find(expo, "upload_tasks", task_set="gone")
    store.retain_sets(["keep"])
    poll(store, "keep", 200, TaskStatus("a", D, "Done"))  # error -> done: its fault series goes
    assert find(expo, "upload_task_faults") == []
    assert find(expo, "upload_tasks", task_set="gone") == []


def test_exposition_is_cached_until_state_changes_and_has_no_created_series():
    store = StateStore()
    store.ensure_set("s", "prov", VOCAB)
    poll(store, "s", 100, TaskStatus("a", D, "Done"))
    expo = exposition(store)
    first = expo.render()
    assert expo.render() is first  # no change, no re-render
    store.apply_poll("s", PollOutcome(started=160, duration=0.1, results=[], requests={("ok", None): 2}))
    assert expo.render() is not first
    text = expo.render().decode()
    assert "_created" not in text
    assert "upload_build_info{python_version=" in text


def test_eta_prefers_provider_then_tasks_then_completion_rate():
    store = StateStore()
    store.ensure_set("s", "prov", VOCAB)
    store.track("s", [f"t{i}" for i in range(10)], 0.0)
    poll(store, "s", 0, *(TaskStatus(f"t{i}", P, "Queued") for i in range(10)))
    assert store.sets["s"].eta is None  # nothing known yet: absent
    poll(store, "s", 100, *(TaskStatus(f"t{i}", D, "Done") for i in range(5)))
    assert store.sets["s"].eta == 5 / (5 / 100)  # 5 pending at 0.05 tasks/s
    poll(
        store,
        "s",
        200,
        TaskStatus("t5", P, "Queued", eta_seconds=30.0),
        TaskStatus("t6", P, "Queued", eta_seconds=70.0),
    )
    assert store.sets["s"].eta == 70.0
    poll(store, "s", 300, eta=12.0)
    assert store.sets["s"].eta == 12.0


def test_per_task_series_are_capped_errors_first_and_extra_labels_apply():
    store = StateStore()
    store.ensure_set("s", "prov", VOCAB)
    poll(
        store,
        "s",
        100,
        *(TaskStatus(f"ok{i}", D, "Done") for i in range(5)),
        TaskStatus("bad", E, "Failed", fault_code="E1"),
        TaskStatus("run", P, "Queued", progress=0.25),
    )
    expo = exposition(
        store,
        per_task_caps={"s": 2},
        extra_labels={"s": {"team": "ads"}},
        provider_counters={"prov": [CounterSpec("uploaded_bytes", "Bytes uploaded.")]},
    )
    ids = {dict(ls)["task_id"] for (n, ls) in samples(expo) if n == "upload_task_state"}
    assert ids == {"bad", "run"}
    assert find(expo, "upload_task_progress_ratio", task_id="run") == [0.25]
    assert all(dict(ls).get("team") == "ads" for (n, ls) in samples(expo) if n.startswith("upload_tasks"))
    assert find(expo, "upload_uploaded_bytes_total") == []  # declared, nothing counted yet


def test_forget_final_keeps_counters():
    store = StateStore()
    store.ensure_set("s", "prov", VOCAB)
    poll(store, "s", 50, TaskStatus("a", P, "Queued"), TaskStatus("b", P, "Queued"))
    poll(store, "s", 100, TaskStatus("a", D, "Done"))
    assert store.forget_final("s", older_than=200, now=300.0) == 1
    st = store.sets["s"]
    assert list(st.tasks) == ["b"] and st.completed_total == 1 and st.by_state[D] == 0
    assert dict(st.tombstones.items()) == {"a": (D, 0)}  # the hour it was forgotten in


def test_an_id_given_twice_is_tracked_once():
    store = StateStore()
    store.ensure_set("s", "prov", VOCAB)
    assert store.track("s", ["a", "b", "a"], 100.0) == 2
    assert store.track("s", ["b", "c"], 110.0) == 1
    st = store.sets["s"]
    assert list(st.tasks) == ["a", "b", "c"] and st.by_state[P] == 3


def test_change_sets_are_not_kept_without_a_state_file():
    store = StateStore()
    store.ensure_set("s", "prov", VOCAB)
    store.track("s", [str(i) for i in range(100)], 100.0)
    poll(store, "s", 100, *(TaskStatus(str(i), D, "Done") for i in range(100)))
    st = store.sets["s"]
    assert st.tasks and not st.dirty  # nothing would read them
    store.forget_final("s", older_than=200.0, now=200.0)
    assert not st.tasks and not st.tombstones.made and len(st.tombstones) == 100


def test_a_poll_that_changes_many_tasks_is_saved_whole_where_that_is_cheap(monkeypatch):
    """Past an eighth of a set changed, a sink that appends (the state file) is handed every
    task rather than a set of their IDs; one that writes each task's field (Redis) keeps the list."""
    from exporter.core import tasks as tasks_mod
    from exporter.core.tasks import SetState

    monkeypatch.setattr(tasks_mod, "ALL_CHANGED_MIN", 10)
    ids = [str(i) for i in range(160)]
    for whole_when_many in (True, False):
        st = SetState("s", "prov", VOCAB, keep_changes=True, whole_when_many=whole_when_many)
        st.track(ids[:10], 100.0, "the config")
        assert st.dirty == set(ids[:10]) and not st.all_changed  # few: listed
        st.track(ids[10:], 100.0, "the config")
        assert st.all_changed is whole_when_many and len(st.dirty) == (0 if whole_when_many else 160)
