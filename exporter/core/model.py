"""The normalized task vocabulary every provider speaks and the core understands."""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload


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


class DecodedOnRead(Sequence[TaskStatus]):
    """Statuses decoded one at a time as they are read; subclasses say how to decode one."""

    def _at(self, index: int) -> TaskStatus:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> TaskStatus: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[TaskStatus]: ...

    def __getitem__(self, index: int | slice) -> TaskStatus | Sequence[TaskStatus]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self._at(index % len(self))


class LazyStatuses(DecodedOnRead):
    """Statuses kept as the few plain fields a provider parsed, each built only when it is read.

    A poll holds every answer until it applies them as one unit. Tuples of strings and numbers
    are dropped from the garbage collector's lists; 100,000 status objects alive at once are
    not, and walking them cost a poll of that size about a quarter of its CPU. Each item is
    the task ID and then whatever `decode` takes after it. `decode` must not raise: whatever
    can be wrong with an answer is found when it is parsed. `tail` holds statuses already
    built (IDs the API left out).
    """

    __slots__ = ("_decode", "_items", "_tail")

    def __init__(
        self, items: Sequence[tuple[Any, ...]], decode: Callable[..., TaskStatus], tail: Sequence[TaskStatus] = ()
    ) -> None:
        self._items = items
        self._decode = decode
        self._tail = tail

    def __len__(self) -> int:
        return len(self._items) + len(self._tail)

    def _at(self, index: int) -> TaskStatus:
        if index < len(self._items):
            return self._decode(*self._items[index])
        return self._tail[index - len(self._items)]

    def __iter__(self) -> Iterator[TaskStatus]:
        return itertools.chain(itertools.starmap(self._decode, self._items), self._tail)

    def task_ids(self) -> Iterator[str]:
        return itertools.chain((item[0] for item in self._items), (s.task_id for s in self._tail))

    def parts(self) -> tuple[Sequence[tuple[Any, ...]], Callable[..., TaskStatus], Sequence[TaskStatus]]:
        """The items, the function that builds a status from one, and the statuses already built."""
        return self._items, self._decode, self._tail


APART = 255  # a StatusPage code: the status's fields are its own, kept apart


class StatusPage(DecodedOnRead):
    """Statuses kept compact until they are applied: the task IDs (the very strings the tasks
    were asked with, each named once), and one byte a status naming its kind, the fields after
    the ID that every status of that kind shares; statuses whose fields are their own (an
    error's) are kept apart, by position.

    A poll of a million tasks holds its answers until it applies them: kept so, a status costs
    a byte beside the batch of IDs the poll holds anyway, and nothing in it is for the garbage
    collector to walk. The state applies the statuses of a kind that leave a task as it was in
    bulk (`answers.Answers`); the IDs being the tracked strings themselves, each is found in
    the set's dict by identity, without comparing its characters.
    """

    __slots__ = ("apart", "codes", "decode", "ids", "kinds")

    def __init__(
        self,
        ids: Sequence[str],
        codes: bytes,
        kinds: Sequence[tuple[Any, ...]],
        decode: Callable[..., TaskStatus],
        apart: Mapping[int, tuple[Any, ...]] | None = None,
    ) -> None:
        self.ids = ids
        self.codes = codes
        self.kinds = kinds
        self.decode = decode
        self.apart = apart or {}

    def fields(self, index: int) -> tuple[Any, ...]:
        """What the status at `index` is decoded from, after its task ID."""
        code = self.codes[index]
        return self.apart[index] if code == APART else self.kinds[code]

    def __len__(self) -> int:
        return len(self.codes)

    def _at(self, index: int) -> TaskStatus:
        return self.decode(self.ids[index], *self.fields(index))

    def __iter__(self) -> Iterator[TaskStatus]:
        for index, task_id in enumerate(self.ids):
            yield self.decode(task_id, *self.fields(index))

    def task_ids(self) -> Iterator[str]:
        return iter(self.ids)


class RequestTally:
    """API calls of one poll by (result, provider error code), gathered as they are made and
    applied with the poll, so the state changes only when the poll is applied."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str | None], int] = {}

    def add(self, result: str, api_code: str | None) -> None:
        key = (result, api_code)
        self.counts[key] = self.counts.get(key, 0) + 1

    def take(self) -> dict[tuple[str, str | None], int]:
        """The counts so far; the tally starts again from nothing."""
        counts, self.counts = self.counts, {}
        return counts


@dataclass(frozen=True, slots=True)
class FetchResult:
    """One provider call's answer: per-task statuses and, where reported, the set's ETA.

    `omitted` are asked IDs the answer left out without saying they are unknown.
    """

    statuses: Sequence[TaskStatus]
    eta_seconds: float | None = None
    api_error_codes: Sequence[str] = field(default_factory=tuple)
    omitted: Sequence[str] = field(default_factory=tuple)

    def task_ids(self) -> Iterator[str]:
        """The statuses' task IDs, without building statuses that are decoded when read."""
        if isinstance(self.statuses, LazyStatuses | StatusPage):
            return self.statuses.task_ids()
        return (status.task_id for status in self.statuses)


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """Everything one poll learned, applied as one unit."""

    started: float
    duration: float
    results: Sequence[FetchResult]
    error: str | None = None  # None: the poll succeeded
    requests: Mapping[tuple[str, str | None], int] = field(default_factory=dict)  # (result, API code) -> calls
