"""What is kept per task, and the histogram data the exposition needs."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from exporter.core.model import TaskState

DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)
POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

# TaskRecord slots in the state file's column order; `state` is stored as its value.
FIELDS = (
    "state",
    "status",
    "fault",
    "message",
    "progress",
    "eta",
    "created",
    "finished",
    "first_seen",
    "last_seen",
    "not_before",
    "misses",
)


class TaskRecord:
    """What is kept of one task; label values are already bounded."""

    __slots__ = FIELDS

    def __init__(self, now: float) -> None:
        self.state = TaskState.PENDING
        self.status = ""  # provider status label; "" until first polled
        self.fault = ""
        self.message = ""
        self.progress: float | None = None
        self.eta: float | None = None
        self.created: float | None = None
        self.finished: float | None = None
        self.first_seen = now
        self.last_seen: float | None = None
        self.not_before: float | None = None
        self.misses = 0  # answers in a row that left this task out

    def row(self, task_id: str) -> tuple[Any, ...]:
        """The task as a state-file row: task_id, then FIELDS."""
        return (
            task_id,
            self.state.value,
            self.status,
            self.fault,
            self.message,
            self.progress,
            self.eta,
            self.created,
            self.finished,
            self.first_seen,
            self.last_seen,
            self.not_before,
            self.misses,
        )

    @classmethod
    def from_row(cls, values: Sequence[Any]) -> TaskRecord:
        """A record from FIELDS' values (state already a TaskState)."""
        rec = cls.__new__(cls)
        (
            rec.state,
            rec.status,
            rec.fault,
            rec.message,
            rec.progress,
            rec.eta,
            rec.created,
            rec.finished,
            rec.first_seen,
            rec.last_seen,
            rec.not_before,
            rec.misses,
        ) = values
        return rec


class Histogram:
    """Cumulative-bucket histogram data, as the exposition needs it."""

    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * len(self.bounds)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self.bounds, value)
        for j in range(i, len(self.counts)):
            self.counts[j] += 1
        self.total += value
        self.count += 1

    def dump(self) -> dict[str, Any]:
        return {"counts": self.counts, "total": self.total, "count": self.count}

    def load(self, data: dict[str, Any]) -> None:
        if len(data["counts"]) == len(self.counts):  # bucket bounds unchanged since it was saved
            self.counts, self.total, self.count = list(data["counts"]), float(data["total"]), int(data["count"])

    def buckets(self) -> list[tuple[str, float]]:
        out = [(_fmt(b), float(c)) for b, c in zip(self.bounds, self.counts, strict=True)]
        out.append(("+Inf", float(self.count)))
        return out


def _fmt(bound: float) -> str:
    return f"{bound:g}" if bound < 1e6 else repr(bound)
