"""Tombstones: the forgotten final tasks of a set, ignored from every source while they last.

A tombstone is the ID, its final state and the hour it was made or last listed in. The
(state, hour) value is one shared tuple per distinct value, so a tombstone costs its dict
entry and nothing more (`make bench` prints the bytes).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator

from exporter.core.model import TaskState

Tombstone = tuple[TaskState, int]
HOUR = 3600.0


class Tombstones:
    """One set's tombstones, and what changed in them since the last save."""

    def __init__(self, *, keep_changes: bool = False) -> None:
        self._graves: dict[str, Tombstone] = {}
        self._values: dict[Tombstone, Tombstone] = {}
        self.keep_changes = keep_changes
        self.made: set[str] = set()  # made or renewed since the last save
        self.expired: set[str] = set()  # dropped since the last save

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._graves

    def __len__(self) -> int:
        return len(self._graves)

    def __iter__(self) -> Iterator[str]:
        return iter(self._graves)

    def items(self) -> Iterator[tuple[str, Tombstone]]:
        return iter(self._graves.items())

    def get(self, task_id: str) -> Tombstone | None:
        return self._graves.get(task_id)

    def bury(self, task_id: str, state: TaskState, now: float) -> None:
        self.put(task_id, state, int(now // HOUR))
        if self.keep_changes:
            self.made.add(task_id)
            self.expired.discard(task_id)

    def put(self, task_id: str, state: TaskState, hour: int) -> None:
        """A tombstone as it was saved."""
        key = (state, hour)
        self._graves[task_id] = self._values.setdefault(key, key)

    def expiring(self, older_than: float) -> list[str]:
        """Tombstones made or last listed before `older_than`."""
        hour = int(older_than // HOUR)
        return [tid for tid, (_, made) in self._graves.items() if made < hour]

    def expire(self, task_ids: Iterable[str], still_listed: Collection[str], now: float) -> int:
        """Drop these tombstones, except those a configured source still lists: they are renewed."""
        dropped = 0
        for task_id in task_ids:
            grave = self._graves.get(task_id)
            if grave is None:
                continue
            if task_id in still_listed:
                self.bury(task_id, grave[0], now)
                continue
            del self._graves[task_id]
            dropped += 1
            if self.keep_changes:
                self.expired.add(task_id)
                self.made.discard(task_id)
        return dropped

    def give_back(self, made: Iterable[str], expired: Iterable[str]) -> None:
        """Changes taken for a save that failed, kept for the next one where nothing newer undid them."""
        self.made.update(t for t in made if t not in self.expired)
        self.expired.update(t for t in expired if t not in self.made)

    def take_changes(self) -> tuple[list[tuple[str, TaskState, int]], list[str]]:
        """Tombstones made or renewed, and IDs expired, since the last call."""
        made, self.made = self.made, set()
        expired, self.expired = self.expired, set()
        return [(t, *grave) for t in made if (grave := self._graves.get(t)) is not None], list(expired)
