"""Applying one answer's statuses to a set, a chunk at a time, without building what stays put.

Most statuses of most polls leave their task as it was: a pending task still pending, its
record left as it is (one with a provider's ETA moves only the time it was last seen, which
the ETA counts from, to the record every such task of the poll shares). Statuses a provider
keeps as plain fields (`LazyStatuses`) are built only for tasks whose record may change;
statuses kept compact (`StatusPage`) are applied by kind, and those of a pending kind meeting
tasks they leave as they were are applied in bulk (dict operations over a chunk at once), the
rest one at a time, in their order in the answer.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from itertools import compress
from typing import NamedTuple

from exporter.core.aggregates import MISSING, OTHER, Aggregates
from exporter.core.model import APART, FetchResult, LazyStatuses, StatusPage, Tally, TaskState, TaskStatus
from exporter.core.records import TaskRecord
from exporter.core.taskindex import TaskIndex

APPLY_CHUNK = 1_000  # statuses applied one at a time between two turns of the event loop
BULK_CHUNK = 10_000  # statuses of a compact answer looked at in bulk between two turns
CHANGED_CHUNK = 250  # statuses of a compact answer that change their task, applied between two turns
SEEN = -1  # what `_apply_status` returns for a task the status left as it was
PENDING = TaskState.PENDING
# A table for bytes.translate per code: that code becomes 1, every other 0 (a mask for compress).
MASKS = [bytes(int(i == code) for i in range(256)) for code in range(256)]


def bounded_progress(progress: float | None) -> float | None:
    return None if progress is None else max(0.0, min(1.0, progress))


def only_seen(rec: TaskRecord, status: TaskStatus, label: str, progress: float | None) -> bool:
    """Whether `status` leaves a tracked task as it was (its record, but for the time an ETA counts from)."""
    return (
        rec.state is status.state
        and status.state is not TaskState.ERROR
        and rec.status == label
        and rec.progress == progress
        and rec.eta == status.eta_seconds
        and rec.not_before == status.not_before
        and not rec.misses
        and rec.last_seen is not None
        and status.created is None
        and status.finished is None
    )


class Step(NamedTuple):
    """What one status does to a task holding a given record, whatever the task's ID."""

    new: TaskRecord  # the record the task holds next
    changed: bool = False  # the aggregates move
    saved: bool = False  # the task is saved
    counted: bool = False  # a first transition into a final state, counted
    seen_pending: bool = False  # the task was seen pending before
    seen: bool = False  # the status left the task as it was


class Answers(Aggregates):
    """How a set applies one answer; `SetState` gives `_apply` (one status) and the index."""

    index: TaskIndex
    _seen: dict[TaskRecord, TaskRecord]  # during a poll: a record, and it seen in this poll

    def _apply(self, status: TaskStatus, now: float, bad: list[str]) -> int:
        raise NotImplementedError

    def _takes(self, task_id: str, bad: list[str]) -> bool:
        raise NotImplementedError

    def _step(self, old: TaskRecord | None, status: TaskStatus, now: float) -> Step:
        raise NotImplementedError

    def _take(
        self, task_ids: Sequence[str], old: TaskRecord | None, step: Step, tallies: Sequence[Tally], now: float
    ) -> int:
        raise NotImplementedError

    def label(self, raw: str) -> str:
        """The bounded status label a provider status is exported under."""
        return MISSING if raw == MISSING else (self.bounded("status", raw, self.vocabulary.statuses) or OTHER)

    def _seen_again(self, rec: TaskRecord, now: float) -> TaskRecord:
        """The record of a task holding `rec` that a poll at `now` found as it was: `rec` itself,
        its last-seen time the time it last changed; with an ETA, which counts from the time it
        was reported, the record seen at `now`, shared by every task that had `rec`."""
        if rec.eta is None:
            return rec
        seen = self._seen.get(rec)
        if seen is None:
            seen = self._seen[rec] = self.index.intern(rec._replace(last_seen=now))
        return seen

    def _apply_result(self, result: FetchResult, now: float, bad: list[str]) -> Generator[None, None, int]:
        """One answer's statuses; returns how many newly became done.

        Statuses a provider keeps as the plain fields it parsed (LazyStatuses) are built only
        for tasks whose record may change: the same fields meeting the same pending record as
        earlier in this poll leave it as that one was left."""
        if isinstance(result.statuses, StatusPage):
            return (yield from self._apply_page(result.statuses, now, bad))
        if isinstance(result.statuses, LazyStatuses):
            items, decode, tail = result.statuses.parts()
        else:
            items, decode, tail = (), TaskStatus, result.statuses
        tasks, apply = self.tasks, self._apply
        same: dict[tuple[object, ...], tuple[TaskRecord, TaskRecord]] = {}  # fields -> (record, it seen again)
        completed = 0
        for start in range(0, len(items), APPLY_CHUNK):
            for item in items[start : start + APPLY_CHUNK]:
                rec = tasks.get(item[0])
                if rec is None or rec.state is not PENDING:
                    completed += max(0, apply(decode(*item), now, bad))
                    continue
                fields: tuple[object, ...] | None = item[1:]
                try:
                    hit = same.get(fields)  # type: ignore[arg-type]
                except TypeError:  # an unhashable field (a fault's details): no shortcut
                    fields, hit = None, None
                if hit is not None and hit[0] is rec:
                    if hit[1] is not rec:  # only a record with an ETA moves
                        tasks[item[0]] = hit[1]
                    continue
                applied = apply(decode(*item), now, bad)
                if applied == SEEN and fields is not None:
                    same[fields] = (rec, tasks[item[0]])
                completed += max(0, applied)
            yield
        for start in range(0, len(tail), APPLY_CHUNK):
            for status in tail[start : start + APPLY_CHUNK]:
                completed += max(0, apply(status, now, bad))
            yield
        return completed

    def _apply_page(self, page: StatusPage, now: float, bad: list[str]) -> Generator[None, None, int]:
        """A compact answer: the statuses of a pending kind that leave their tasks as they were
        in bulk; a status of a kind does the same to every task holding the same record, so those
        of a kind meeting the same record take its step (worked out once) together; the others
        one at a time."""
        probes = [page.decode("", *fields) for fields in page.kinds]
        bulk: dict[int, tuple[TaskStatus, str, float | None]] = {
            code: (probe, self.label(probe.provider_status), bounded_progress(probe.progress))
            for code, probe in enumerate(probes)
            if probe.state is PENDING
        }
        steps: dict[tuple[int, int], tuple[TaskRecord | None, Step]] = {}  # (id of a record, code) -> (it, its step)
        taking: dict[tuple[int, int], list[str]] = {}  # (id of a record, code) -> tasks holding it that take it
        ids, tasks = page.ids, self.tasks
        completed = 0
        for start in range(0, len(ids), BULK_CHUNK):
            codes = page.codes[start : start + BULK_CHUNK]
            chunk = ids[start : start + BULK_CHUNK]
            slow: list[int] = []  # positions in the answer of the statuses applied one at a time
            for code in set(codes):
                if code in bulk:
                    slow += self._apply_seen(chunk, codes.translate(MASKS[code]), start, bulk[code], now)
                else:
                    slow += positions(codes, code, start)
            yield
            slow.sort()
            for at in range(0, len(slow), CHANGED_CHUNK):
                for i in slow[at : at + CHANGED_CHUNK]:
                    task_id, code = ids[i], page.codes[i]
                    if code == APART:  # particular to its task
                        completed += max(0, self._apply(page.decode(task_id, *page.fields(i)), now, bad))
                        continue
                    old = tasks.get(task_id)
                    if old is None and not self._takes(task_id, bad):
                        continue
                    key = (id(old), code)
                    if key not in steps:  # the record is kept with its step: its id is not reused meanwhile
                        steps[key] = (old, self._step(old, probes[code], now))
                    taking.setdefault(key, []).append(task_id)
                for key, task_ids in taking.items():  # each ID is once in an answer: any order will do
                    old, step = steps[key]
                    completed += self._take(task_ids, old, step, probes[key[1]].tallies, now)
                taking.clear()
                yield
        return completed

    def _apply_seen(
        self, chunk: Sequence[str], mask: bytes, start: int, kind: tuple[TaskStatus, str, float | None], now: float
    ) -> list[int]:
        """Statuses of one pending kind: tasks they leave as they were keep their record (one with
        an ETA gets the record seen now), in bulk; the positions of the others are returned, to
        apply one at a time."""
        tasks, (status, label, progress) = self.tasks, kind
        selected = list(compress(chunk, mask))
        recs = list(map(tasks.get, selected))
        first = recs[0] if recs else None
        # Tasks tracked together and changed in the same polls share their record: often every
        # one of a chunk.
        if first is not None and recs.count(first) == len(recs) and only_seen(first, status, label, progress):
            if (again := self._seen_again(first, now)) is not first:
                tasks.update(dict.fromkeys(selected, again))
            return []
        # Records are told apart by identity: hashing a record hashes every field, twice a task.
        keys = list(map(id, recs))
        moved: dict[int, TaskRecord] = {}
        for key in set(keys):  # a handful
            rec = recs[keys.index(key)]
            if rec is not None and only_seen(rec, status, label, progress):
                moved[key] = self._seen_again(rec, now)
        positions_ = compress(range(start, start + len(chunk)), mask)
        slow: list[int] = []
        for task_id, held, key, at in zip(selected, recs, keys, positions_, strict=True):
            seen = moved.get(key)
            if seen is None:
                slow.append(at)
            elif seen is not held:
                tasks[task_id] = seen
        return slow


def positions(codes: bytes, code: int, start: int) -> list[int]:
    """Where `code` is in `codes`, offset by `start`; found one by one when it is rare (the usual
    for a kind that changes its tasks), else with a mask."""
    if codes.count(code) * 16 > len(codes):
        return list(compress(range(start, start + len(codes)), codes.translate(MASKS[code])))
    found, i = [], codes.find(code)
    while i >= 0:
        found.append(start + i)
        i = codes.find(code, i + 1)
    return found
