"""The seam between the state and where it is kept: what a poll's save carries and who takes it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from exporter.core.ledger import Increments
from exporter.core.model import TaskState

# Rows that are alike: the values of a task row after its ID (TaskRecord.row, the state as its
# value), and the IDs of the tasks whose rows hold them. Most tasks that change in a poll change
# alike, so a save carries a handful of these, and a sink writes each value once.
RowGroup = tuple[tuple[Any, ...], Sequence[str]]
# Tasks saved alike, in the order they were saved: (its place in that order, FIELDS' values with
# the state as a TaskState or None when the tasks were dropped, the tasks' IDs).
LogEntry = tuple[int, tuple[Any, ...] | None, list[str]]


def alike(groups: Iterable[RowGroup]) -> list[RowGroup]:
    """Groups of rows merged where their values are the same."""
    merged: dict[tuple[Any, ...], list[str]] = {}
    for values, ids in groups:
        merged.setdefault(values, []).extend(ids)
    return list(merged.items())


@dataclass(frozen=True, slots=True)
class SetChanges:
    """What changed in one set since its last save, beside its changed task rows (which come in
    chunks, built on the event loop while the sink writes the previous ones)."""

    name: str
    provider: str
    aggregates: str  # JSON
    buried: Sequence[tuple[str, TaskState, int]] = ()  # new or renewed tombstones: ID, final state, hour
    unburied: Sequence[str] = ()  # expired tombstones
    # Transitions counted since the last save: task ID -> the counters it moved (see ledger.py).
    counted: Mapping[str, Increments] = field(default_factory=dict)
    # The rows are those of every task of the set: a sink may drop whatever else it saved of its tasks.
    whole: bool = False


@dataclass(frozen=True, slots=True)
class SavedSet:
    """A set as saved: its aggregates and tombstones; rows are read in pages with `rows`."""

    aggregates: dict[str, Any]
    tombstones: Sequence[tuple[str, TaskState, int]] = field(default_factory=tuple)


class StateSink(Protocol):
    """Keeps what the store hands it; every method runs its blocking I/O off the event loop."""

    # Whether it takes each transition's counter increments (SetChanges.counted); a sink that
    # saves the aggregates whole does not, and they are then not built at every transition.
    counts_transitions: bool
    # Whether a save of every task of a set costs about what one of many changed tasks does (a
    # sink that appends, as the state file does): a poll that changes many is then saved whole.
    whole_saves_cheap: bool

    async def load(self, name: str, provider: str) -> SavedSet | None: ...

    async def rows(self, name: str, after: str, limit: int) -> list[tuple[Any, ...]]:
        """Up to `limit` task rows (task_id, then FIELDS with the state as a TaskState) after `after`."""
        ...

    async def log(self, name: str, after: int, limit: int) -> list[LogEntry]:
        """Up to `limit` groups of tasks saved after the `after`th, read after `rows` (later ones win)."""
        ...

    def rewrite_due(self, name: str, tracked: int) -> bool:
        """Whether the set's next save should carry all its `tracked` tasks (SetChanges.whole)."""
        ...

    async def save(self, changes: SetChanges, rows: AsyncIterator[Sequence[RowGroup]]) -> None:
        """Write the rows of new and changed tasks (in groups of rows alike) and the changes as one transaction."""
        ...

    async def drop_sets_except(self, keep: Collection[str]) -> None: ...

    async def close(self) -> None: ...

    def damaged(self, err: Exception, what: str = "") -> Exception:
        """The error to raise when what was loaded cannot be used."""
        ...
