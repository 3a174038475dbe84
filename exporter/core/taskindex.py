"""A set's tasks by ID, and the indexes kept up to date beside them as their records change.

A poll asks the pending tasks past their "not before" time, and the set forgets final tasks
last seen long ago. Both are read from indexes changed with each record, never from a walk
over every task: the pending tasks in the order they became pending (with the times of those
that must wait), and the final tasks grouped by the time they were last seen (the records of
tasks seen in one poll are shared, so there are few such times).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

from exporter.core.model import TaskState
from exporter.core.records import Interned, TaskRecord

PENDING = TaskState.PENDING
SCAN_CHUNK = 10_000  # tasks looked at between two turns of the event loop


class TaskIndex:
    """Tracked tasks and their indexes; every change of a task's record goes through `put`."""

    __slots__ = ("eta_tasks", "finals", "intern", "pending", "tasks", "waiting")

    def __init__(self) -> None:
        self.tasks: dict[str, TaskRecord] = {}
        # The due queue: pending tasks in the order they became pending (each ID its own value).
        self.pending: dict[str, str] = {}
        self.waiting: dict[str, float] = {}  # pending tasks not to be asked before a time
        self.finals: dict[float | None, dict[str, str]] = {}  # final tasks by the time they were last seen
        self.eta_tasks: set[str] = set()  # pending tasks with a provider-reported ETA
        self.intern = Interned()

    def put(self, task_id: str, old: TaskRecord | None, new: TaskRecord) -> None:
        """The task's record is now `new`; it was `old` (None: it was not tracked).

        The indexes keep the ID string the task was first tracked with, never the copy an
        answer brought: those are freed with the answer, and one kept would keep its memory."""
        self.tasks[task_id] = new
        was_pending = old is not None and old.state is PENDING
        if old is not None:
            task_id = self.pending[task_id] if was_pending else self.finals[old.last_seen][task_id]
        if new.state is PENDING:
            if not was_pending:
                self.pending[task_id] = task_id  # a pending task whose record moves keeps its place
            if new.not_before is not None:
                self.waiting[task_id] = new.not_before
            elif self.waiting:
                self.waiting.pop(task_id, None)
            if new.eta is not None:
                self.eta_tasks.add(task_id)
            elif self.eta_tasks:
                self.eta_tasks.discard(task_id)
        else:
            if was_pending:
                self._leave_pending(task_id)
            self.finals.setdefault(new.last_seen, {})[task_id] = task_id
        if old is not None and old.state is not PENDING and (new.state is PENDING or new.last_seen != old.last_seen):
            self._leave_finals(task_id, old.last_seen)

    def put_new(self, task_ids: list[str], rec: TaskRecord) -> None:
        """Tasks not tracked yet, all holding `rec`, entered at once (as `put` enters each)."""
        self.tasks.update(dict.fromkeys(task_ids, rec))
        if rec.state is not PENDING:
            self.finals.setdefault(rec.last_seen, {}).update(zip(task_ids, task_ids, strict=True))
            return
        self.pending.update(zip(task_ids, task_ids, strict=True))
        if rec.not_before is not None:
            self.waiting.update(dict.fromkeys(task_ids, rec.not_before))
        if rec.eta is not None:
            self.eta_tasks.update(task_ids)

    def remove(self, task_id: str) -> TaskRecord | None:
        """Stop tracking the task; its record, or None if it was not tracked."""
        rec = self.tasks.pop(task_id, None)
        if rec is None:
            return None
        if rec.state is PENDING:
            self._leave_pending(task_id)
        else:
            self._leave_finals(task_id, rec.last_seen)
        return rec

    def _leave_pending(self, task_id: str) -> None:
        del self.pending[task_id]
        if self.waiting:
            self.waiting.pop(task_id, None)
        if self.eta_tasks:
            self.eta_tasks.discard(task_id)

    def _leave_finals(self, task_id: str, last_seen: float | None) -> None:
        bucket = self.finals[last_seen]
        del bucket[task_id]
        if not bucket:
            del self.finals[last_seen]

    def due_steps(self, now: float, found: list[str]) -> Iterator[None]:
        """Fill `found` with pending tasks whose "not before" time has passed, a chunk at a time."""
        if not self.waiting:  # no task has to wait: every pending task, a chunk at a time
            start, keys = len(found), iter(self.pending)
            while True:
                try:
                    chunk = list(islice(keys, SCAN_CHUNK))
                except RuntimeError:  # a task was tracked meanwhile: the rest from a fresh snapshot
                    del found[start:]
                    found.extend(self.pending)
                    chunk = []
                found.extend(chunk)
                yield
                if len(chunk) < SCAN_CHUNK:
                    return
        ids = list(self.pending)  # a snapshot: pushes may add tasks between chunks
        waiting = self.waiting
        for start in range(0, len(ids), SCAN_CHUNK):
            found.extend([t for t in ids[start : start + SCAN_CHUNK] if waiting.get(t, now) <= now])
            yield

    def final_before(self, older_than: float) -> Iterator[list[str]]:
        """Final tasks last seen before `older_than`, a chunk at a time (each chunk a snapshot)."""
        for seen in [s for s in self.finals if s is not None and s < older_than]:
            ids = list(self.finals.get(seen, ()))
            for start in range(0, len(ids), SCAN_CHUNK):
                yield ids[start : start + SCAN_CHUNK]
