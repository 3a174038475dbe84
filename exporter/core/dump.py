"""A set's state as the sink keeps it: what changed since the last save, and loading it back.

The store calls these on the event loop; the sink writes and reads off it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from exporter.core.model import TaskState
from exporter.core.records import TaskRecord
from exporter.core.sink import SavedSet, SetChanges
from exporter.core.tasks import SCAN_CHUNK, SetState


def changes_steps(st: SetState, out: list[SetChanges]) -> Iterator[None]:
    """What changed since the last call, as one SetChanges appended to `out`, a chunk at a time."""
    ids = list(st.dirty)
    st.dirty = set()
    buried, unburied = st.tombstones.take_changes()
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(ids), SCAN_CHUNK):
        for task_id in ids[start:start + SCAN_CHUNK]:
            rec = st.tasks.get(task_id)
            if rec is not None:
                rows.append(rec.row(task_id))
        yield
    out.append(SetChanges(st.name, st.provider, json.dumps(aggregates(st)), rows, buried, unburied))


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
    st.baselined = st.restored = True


def restore_rows(st: SetState, rows: Iterable[tuple[Any, ...]]) -> None:
    """Task rows (task_id, then FIELDS); a task pushed while restoring gives way to its saved row."""
    for task_id, *values in rows:
        rec = TaskRecord.from_row(values)
        old = st.tasks.get(task_id)
        if old is not None:
            st.count(old, -1)
        st.tasks[task_id] = rec
        st.count(rec, +1)
        if rec.eta is not None and rec.state is TaskState.PENDING:
            st.eta_tasks.add(task_id)
