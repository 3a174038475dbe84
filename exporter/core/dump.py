"""A set's state as the sink keeps it: what changed since the last save, and loading it back.

The store calls these on the event loop; the sink writes and reads off it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from exporter.core.model import TaskState
from exporter.core.records import TaskRecord
from exporter.core.sink import LogEntry, RowGroup, SavedSet, SetChanges, alike
from exporter.core.tasks import SetState


def take_changes(st: SetState, whole: bool = False) -> tuple[list[str], SetChanges]:
    """The tasks changed since the last call (every task, if `whole`), and everything else that
    changed with them."""
    whole = whole or st.all_changed
    ids = list(st.tasks if whole else st.dirty)
    st.dirty, st.all_changed = set(), False
    buried, unburied = st.tombstones.take_changes()
    counted, st.counted = st.counted or {}, None if st.counted is None else {}
    return ids, SetChanges(st.name, st.provider, json.dumps(aggregates(st)), buried, unburied, counted, whole)


def give_back(st: SetState, ids: Sequence[str], changes: SetChanges) -> None:
    """What a save that failed carried, for the next save to carry again with what changed since
    (a change made since wins): the file must never hold a task older than the counters."""
    if changes.whole:
        st.all_changed = True
    elif not st.all_changed:
        st.dirty.update(ids)
    st.tombstones.give_back([task_id for task_id, _, _ in changes.buried], changes.unburied)
    if st.counted is not None:
        st.counted = {**changes.counted, **st.counted}


def rows(st: SetState, task_ids: Sequence[str]) -> list[RowGroup]:
    """The rows of these tasks (those still tracked), grouped by their values: first by the
    record they hold (tasks that changed alike share theirs; told apart by identity, not hashed),
    then records of the same values (a fault's message keeps a record to its task) together."""
    held: dict[int, tuple[TaskRecord, list[str]]] = {}
    tasks = st.tasks
    for task_id in task_ids:
        rec = tasks.get(task_id)
        if rec is not None:
            group = held.get(id(rec))
            if group is None:
                group = held[id(rec)] = (rec, [])
            group[1].append(task_id)
    return alike((rec.row("")[1:], ids) for rec, ids in held.values())


def aggregates(st: SetState) -> dict[str, Any]:
    """Everything but the tasks and tombstones, as JSON-ready data."""
    return {
        "completed_total": st.completed_total,
        "failed_total": dict(st.failed_total),
        "tallies": [[c, label, v] for (c, label), v in st.tallies.items()],
        "durations": {s.value: h.dump() for s, h in st.durations.items()},
        "requests": dict(st.requests),
        "api_errors": dict(st.api_errors),
        "poll_durations": st.poll_durations.dump(),
        "last_success": st.last_success,
        "last_poll": st.last_poll,
        "eta": st.eta,
        "completion_rate": st.completion_rate,
    }


def restore(st: SetState, saved: SavedSet) -> None:
    """Load saved aggregates and tombstones into this new set (rows come with `restore_rows`)."""
    data = saved.aggregates
    st.completed_total = int(data["completed_total"])
    st.failed_total.update(data["failed_total"])
    st.tallies.update({(c, label): v for c, label, v in data["tallies"]})
    for state, hist in data["durations"].items():
        st.durations[TaskState(state)].load(hist)
    st.requests.update(data["requests"])
    st.api_errors.update(data["api_errors"])
    st.poll_durations.load(data["poll_durations"])
    for key in ("last_success", "last_poll", "eta", "completion_rate"):
        setattr(st, key, data[key])
    for task_id, state, hour in saved.tombstones:
        st.tombstones.put(task_id, state, hour)
    st.baselined = True


def restore_rows(st: SetState, rows: Iterable[tuple[Any, ...]]) -> None:
    """Task rows (task_id, then FIELDS); a task pushed while restoring gives way to its saved row.
    Rows of the same values load as one shared record, counted once for all of them."""
    alike: dict[tuple[Any, ...], list[str]] = {}  # a row's values -> the IDs of the rows that hold them
    for row in rows:
        alike.setdefault(row[1:], []).append(row[0])
    for values, ids in alike.items():
        _load(st, ids, st.index.intern(TaskRecord._make(values)))


def _load(st: SetState, task_ids: Sequence[str], rec: TaskRecord) -> None:
    """Tasks given `rec`, as their saved rows hold it: one tracked already (saved before, or
    pushed while restoring) gives way, and an ID named twice is entered once."""
    tasks, index = st.tasks, st.index
    for task_id in task_ids:
        old = tasks.get(task_id)
        if old is not None:
            st.count(old, -1)
        index.put(task_id, old, rec)
    st.count(rec, len(task_ids))


def replay(st: SetState, entries: Iterable[LogEntry], chunk: int) -> Iterator[None]:
    """Groups of tasks as they were saved, in order (`StateSink.log`), loaded `chunk` IDs at a
    time: each group's record built once, and tasks no row before held entered in bulk. A task
    pushed while restoring gives way to its saved row."""
    tasks, index = st.tasks, st.index
    for _, values, ids in entries:
        rec = None if values is None else index.intern(TaskRecord._make(values))
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            if rec is None:  # dropped
                for task_id in part:
                    old = index.remove(task_id)
                    if old is not None:
                        st.count(old, -1)
            elif tasks.keys().isdisjoint(part):
                index.put_new(part, rec)
                st.count(rec, len(part))
            else:
                _load(st, part, rec)
            yield
