"""The normalized task vocabulary every provider speaks and the core understands."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field


class TaskState(enum.Enum):
    """Normalized state of one upload task."""

    PENDING = "pending"  # queued or in progress
    DONE = "done"
    ERROR = "error"
    NOT_FOUND = "not_found"  # unknown or expired ID

    # Members are singletons: hash by identity, in C. Enum's own __hash__ is Python code, and
    # the aggregates look a state up twice per task per poll.
    __hash__ = object.__hash__

    @property
    def final(self) -> bool:
        return self is not TaskState.PENDING


@dataclass(frozen=True, slots=True)
class Tally:
    """An amount added once to a provider counter when its task first reaches a final state.

    For example the bytes of a finished upload, or one failed destination of a media.
    `counter` names one of the provider's `counters`; `label` is its bounded label value.
    """

    counter: str
    amount: float = 1.0
    label: str = ""


@dataclass(slots=True)
class TaskStatus:
    """What a provider reported about one task in one call. Times are unix seconds.

    Treated as a value and never changed once built; not frozen because providers build one
    per task per poll and a frozen dataclass costs four times as much to build.
    """

    task_id: str
    state: TaskState
    provider_status: str
    fault_code: str = ""
    fault_message: str = ""
    progress: float | None = None  # 0..1
    eta_seconds: float | None = None  # seconds until this task is expected to finish
    created: float | None = None
    finished: float | None = None
    not_before: float | None = None  # do not ask again before this time (unix seconds)
    tallies: tuple[Tally, ...] = ()


@dataclass(frozen=True, slots=True)
class FetchResult:
    """One provider call's answer: per-task statuses and, where reported, the set's ETA."""

    statuses: Sequence[TaskStatus]
    eta_seconds: float | None = None
    api_error_codes: Sequence[str] = field(default_factory=tuple)
