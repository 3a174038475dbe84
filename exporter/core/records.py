"""What is kept per task, and the histogram data the exposition needs."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from typing import Any, NamedTuple

from exporter.core.model import TaskState

DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)
POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class TaskRecord(NamedTuple):
    """What is kept of one task; label values are already bounded.

    A record is a value, never changed once built: a task whose status moves gets a new one.
    Tasks that hold the same values share one record (`Interned`), so a set whose tasks were
    tracked together and changed in the same polls costs little more than its dict of IDs: a
    million tasks in a handful of states are a million dict entries and a few records.
    """

    state: TaskState = TaskState.PENDING
    status: str = ""  # provider status label; "" until first polled
    fault: str = ""
    message: str = ""
    progress: float | None = None
    eta: float | None = None
    created: float | None = None
    finished: float | None = None
    first_seen: float = 0.0
    # The last poll that changed the record (a poll that finds the task as it was leaves it),
    # or, for a record with an ETA (which counts from it), the last poll that found the task.
    last_seen: float | None = None
    not_before: float | None = None
    misses: int = 0  # answers in a row that left this task out

    @classmethod
    def new(cls, now: float) -> TaskRecord:
        """A task just tracked, not polled yet."""
        return cls(first_seen=now)

    def row(self, task_id: str) -> tuple[Any, ...]:
        """The task as a state-file row: task_id, then FIELDS."""
        return (task_id, self.state.value, *self[1:])

    @classmethod
    def from_row(cls, values: Sequence[Any]) -> TaskRecord:
        """A record from FIELDS' values (state already a TaskState)."""
        return cls._make(values)

    def alike(self, other: TaskRecord) -> bool:
        """The same values but for the time last seen."""
        return self[:_SEEN] == other[:_SEEN] and self[_SEEN + 1 :] == other[_SEEN + 1 :]

    @property
    def plain(self) -> bool:
        """Nothing in it that is particular to one task (a fault's message is shared by tasks that
        failed alike): many tasks are likely to share it."""
        return self.progress is None and self.eta is None and self.created is None and self.finished is None


# TaskRecord fields in the state file's column order; `state` is stored as its value.
FIELDS: tuple[str, ...] = TaskRecord._fields
_SEEN = FIELDS.index("last_seen")


class Interned:
    """One shared record for each distinct plain record: tasks tracked together and changed in the
    same polls share theirs. Records particular to one task are kept as they are."""

    __slots__ = ("_records",)

    def __init__(self) -> None:
        self._records: dict[TaskRecord, TaskRecord] = {}

    def __call__(self, rec: TaskRecord) -> TaskRecord:
        if not rec.plain:
            return rec
        return self._records.setdefault(rec, rec)

    def clear(self) -> None:
        """Forget the records met so far (those in use stay shared); bounds the table's size."""
        self._records.clear()


class Histogram:
    """Histogram data, as the exposition needs it: each observation adds to its own bucket
    (one increment, not one a bucket above it); the cumulative counts are made when read."""

    __slots__ = ("_own", "bounds", "count", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self._own = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self.total = 0.0
        self.count = 0

    def observe(self, value: float, times: int = 1) -> None:
        self._own[bisect.bisect_left(self.bounds, value)] += times
        self.total += value * times
        self.count += times

    @property
    def counts(self) -> list[int]:
        """Observations at or below each bound."""
        return list(itertools.accumulate(self._own[:-1]))

    def dump(self) -> dict[str, Any]:
        return {"counts": self.counts, "total": self.total, "count": self.count}

    def load(self, data: dict[str, Any]) -> None:
        counts = [int(c) for c in data["counts"]]
        if len(counts) == len(self.bounds):  # bucket bounds unchanged since it was saved
            self.total, self.count = float(data["total"]), int(data["count"])
            self._own = [b - a for a, b in zip([0, *counts], [*counts, self.count], strict=True)]

    def buckets(self) -> list[tuple[str, float]]:
        out = [(_fmt(b), float(c)) for b, c in zip(self.bounds, self.counts, strict=True)]
        out.append(("+Inf", float(self.count)))
        return out


def _fmt(bound: float) -> str:
    return f"{bound:g}" if bound < 1e6 else repr(bound)
