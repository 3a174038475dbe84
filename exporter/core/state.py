"""The one owner of task state: every mutation of tracked tasks and their aggregates.

Aggregates (counts by state, status and fault, progress sums, counters, histograms) are
kept up to date as statuses change, so rendering `/metrics` never walks the tasks.
Each poll's changes are applied as one unit by `apply_poll`; `version` moves on every
change so the exposition can be rendered once per change and served from cache.
"""

from __future__ import annotations

import bisect
import logging
import sys
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from exporter.core.model import FetchResult, TaskState, TaskStatus
from exporter.core.persist import FIELDS, StateFile
from exporter.core.provider import IdSyntax, Vocabulary

log = logging.getLogger(__name__)

OTHER = "other"
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)
POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
RATE_SMOOTHING = 0.3  # weight of the newest poll in the completion-rate average
MISSING = "missing"  # provider status of a task left out of `not_found_after` answers in a row
TOMBSTONE_HOUR = 3600.0  # tombstones keep the hour they were made or last listed in

# A tombstone is (final state, hour). One shared tuple per distinct value, so a tombstone costs
# its dict entry and nothing more.
Tombstone = tuple[TaskState, int]


class TaskRecord:
    """What is kept of one task; label values are already bounded."""

    __slots__ = (
        "created",
        "eta",
        "fault",
        "finished",
        "first_seen",
        "last_seen",
        "message",
        "misses",
        "not_before",
        "progress",
        "state",
        "status",
    )

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


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """Everything one poll learned, applied as one unit."""

    started: float
    duration: float
    results: Sequence[FetchResult]
    error: str | None = None  # None: the poll succeeded


class SetState:
    """Tracked tasks of one task set and everything exported about them."""

    def __init__(self, name: str, provider: str, vocabulary: Vocabulary, *, keep_changes: bool = False) -> None:
        self.name = name
        self.provider = provider
        self.vocabulary = vocabulary
        self.id_syntax: IdSyntax | None = None
        self.not_found_after = 3
        self.tasks: dict[str, TaskRecord] = {}
        # Forgotten final tasks: ignored from every source while the tombstone lasts.
        self.tombstones: dict[str, Tombstone] = {}
        self._tomb_values: dict[Tombstone, Tombstone] = {}
        self.by_state: dict[TaskState, int] = dict.fromkeys(TaskState, 0)
        self.by_status: defaultdict[str, int] = defaultdict(int)
        self.faults: defaultdict[str, int] = defaultdict(int)
        self.pending_progress = 0.0
        self.completed_total = 0
        self.failed_total: defaultdict[str, int] = defaultdict(int)
        self.tallies: defaultdict[tuple[str, str], float] = defaultdict(float)
        self.durations = {s: Histogram(DURATION_BUCKETS) for s in (TaskState.DONE, TaskState.ERROR)}
        self.requests: defaultdict[str, int] = defaultdict(int)
        self.api_errors: defaultdict[str, int] = defaultdict(int)
        self.poll_durations = Histogram(POLL_BUCKETS)
        self.polled = False
        self.up = False
        self.down_reason: str | None = None
        self.last_success: float | None = None
        self.last_poll: float | None = None
        self.eta: float | None = None
        self.completion_rate: float | None = None  # tasks per second, smoothed
        self.baselined = False  # tasks first seen finished are history until the first poll is applied
        # Tasks changed and dropped since the last save; kept only when there is a state file.
        self.keep_changes = keep_changes
        self.dirty: set[str] = set()
        self.forgotten: set[str] = set()  # tombstones made or renewed since the last save
        self.unburied: set[str] = set()  # tombstones expired since the last save
        self._logged_unknown: set[tuple[str, str]] = set()

    # -- persistence ------------------------------------------------------------------
    def aggregates(self) -> dict[str, Any]:
        """Everything but the tasks, as JSON-ready data."""
        return {
            "completed_total": self.completed_total,
            "failed_total": dict(self.failed_total),
            "tallies": [[c, label, v] for (c, label), v in self.tallies.items()],
            "durations": {s.value: h.dump() for s, h in self.durations.items()},
            "requests": dict(self.requests),
            "api_errors": dict(self.api_errors),
            "poll_durations": self.poll_durations.dump(),
            "last_success": self.last_success,
            "last_poll": self.last_poll,
            "eta": self.eta,
            "completion_rate": self.completion_rate,
        }

    def restore(self, aggregates: dict[str, Any], rows: Iterable[tuple[Any, ...]],
                tombstones: Iterable[tuple[str, TaskState, int]] = ()) -> None:
        """Load saved aggregates, task rows (task_id, then persist.FIELDS) and tombstones into this empty set."""
        self.completed_total = int(aggregates["completed_total"])
        self.failed_total.update(aggregates["failed_total"])
        self.tallies.update({(c, label): v for c, label, v in aggregates["tallies"]})
        for state, data in aggregates["durations"].items():
            self.durations[TaskState(state)].load(data)
        self.requests.update(aggregates["requests"])
        self.api_errors.update(aggregates["api_errors"])
        self.poll_durations.load(aggregates["poll_durations"])
        for key in ("last_success", "last_poll", "eta", "completion_rate"):
            setattr(self, key, aggregates[key])
        for task_id, *values in rows:
            rec = TaskRecord(0.0)
            for slot, value in zip(FIELDS, values, strict=True):
                setattr(rec, slot, value)
            self.tasks[task_id] = rec
            self._count(rec, +1)
        for task_id, state, hour in tombstones:
            self.tombstones[task_id] = self.tombstone(state, hour)
        self.baselined = True

    # -- tombstones and accepted IDs ---------------------------------------------------
    def tombstone(self, state: TaskState, hour: int) -> Tombstone:
        """The shared (state, hour) value."""
        key = (state, hour)
        return self._tomb_values.setdefault(key, key)

    def bury(self, task_id: str, state: TaskState, now: float) -> None:
        self.tombstones[task_id] = self.tombstone(state, int(now // TOMBSTONE_HOUR))
        if self.keep_changes:
            self.forgotten.add(task_id)
            self.dirty.discard(task_id)
            self.unburied.discard(task_id)

    def unbury(self, task_id: str) -> None:
        if self.tombstones.pop(task_id, None) is not None and self.keep_changes:
            self.unburied.add(task_id)
            self.forgotten.discard(task_id)

    def refused(self, task_id: str) -> str | None:
        """Why an ID not tracked yet is not taken: "forgotten", "syntax", or None to take it."""
        if task_id in self.tombstones:
            return "forgotten"
        if self.id_syntax is not None and not self.id_syntax.accepts(task_id):
            return "syntax"
        return None

    def log_bad_ids(self, bad: Sequence[str], where: str) -> None:
        """One line for the IDs of one read, push or answer that do not look like this provider's IDs."""
        if bad:
            what = self.id_syntax.description if self.id_syntax else "a task ID"
            log.warning("skipped %d task IDs of set %s from %s that are not %s, e.g. %r",
                        len(bad), self.name, where, what, bad[0][:100])

    # -- change sets, for the state file ---------------------------------------------
    def mark_changed(self, task_ids: Iterable[str]) -> None:
        if self.keep_changes:
            self.dirty.update(task_ids)

    # -- label bounding ---------------------------------------------------------------
    def bounded(self, kind: str, value: str, known: frozenset[str]) -> str:
        if value in known:
            return sys.intern(value)  # 100,000 tasks then share a handful of label strings
        if not value:
            return value
        if (kind, value) not in self._logged_unknown and len(self._logged_unknown) < 1000:
            self._logged_unknown.add((kind, value))
            log.warning("unknown %s %r from provider %s (set %s) is exported as %r",
                        kind, value[:200], self.provider, self.name, OTHER)
        return OTHER

    # -- aggregate bookkeeping --------------------------------------------------------
    def _count(self, rec: TaskRecord, sign: int) -> None:
        self.by_state[rec.state] += sign
        if rec.status:
            self.by_status[rec.status] += sign
            if not self.by_status[rec.status]:
                del self.by_status[rec.status]
        if rec.state is TaskState.ERROR:
            self.faults[rec.fault] += sign
            if not self.faults[rec.fault]:
                del self.faults[rec.fault]
        if rec.state is TaskState.PENDING and rec.progress is not None:
            self.pending_progress += sign * rec.progress

    @property
    def progress_ratio(self) -> float | None:
        total = len(self.tasks)
        if not total:
            return None
        finished = total - self.by_state[TaskState.PENDING]
        return max(0.0, min(1.0, (finished + self.pending_progress) / total))


class StateStore:
    """All task sets' state. The only code that changes it."""

    def __init__(self, persist: StateFile | None = None) -> None:
        self.sets: dict[str, SetState] = {}
        self.version = 0
        self.persist = persist

    def _changed(self) -> None:
        self.version += 1

    def ensure_set(self, name: str, provider: str, vocabulary: Vocabulary, *,
                   id_syntax: IdSyntax | None = None, not_found_after: int = 3) -> SetState:
        st = self.sets.get(name)
        if st is None or st.provider != provider:
            st = self.sets[name] = SetState(name, provider, vocabulary, keep_changes=self.persist is not None)
            saved = self.persist.load(name, provider) if self.persist else None
            if saved is not None and self.persist is not None:
                try:
                    st.restore(*saved)
                except (KeyError, ValueError, TypeError, AttributeError) as err:
                    raise self.persist.damaged(err, f"the aggregates of set {name}") from None
                log.info("restored %d tasks and %d tombstones of set %s", len(st.tasks), len(st.tombstones), name)
            self._changed()
        st.vocabulary = vocabulary
        st.id_syntax = id_syntax
        st.not_found_after = not_found_after
        return st

    def retain_sets(self, names: Iterable[str]) -> None:
        """Drop sets no longer configured; their series vanish from /metrics."""
        keep = set(names)
        for name in [n for n in self.sets if n not in keep]:
            del self.sets[name]
            self._changed()
        if self.persist:
            self.persist.drop_sets_except(keep)

    def track(self, name: str, task_ids: Iterable[str], now: float, where: str = "the config") -> int:
        """Start tracking these IDs; returns how many were new.

        Tracked IDs are left alone; forgotten ones (tombstones) are ignored; IDs that are not
        the provider's syntax are skipped with one log line naming `where` they came from.
        """
        st = self.sets[name]
        new, bad = [], []
        for task_id in task_ids:
            if task_id in st.tasks:
                continue
            why = st.refused(task_id)
            if why is None:
                rec = st.tasks[task_id] = TaskRecord(now)
                st._count(rec, +1)
                new.append(task_id)
            elif why == "syntax":
                bad.append(task_id)
        st.log_bad_ids(bad, where)
        if new:
            st.mark_changed(new)
            self._changed()
        return len(new)

    def due(self, name: str, now: float) -> list[str]:
        """Pending tasks whose "not before" time has passed, in tracking order."""
        return [tid for tid, rec in self.sets[name].tasks.items()
                if rec.state is TaskState.PENDING and (rec.not_before is None or rec.not_before <= now)]

    def record_request(self, name: str, result: str, api_code: str | None) -> None:
        st = self.sets.get(name)
        if st is None:
            return
        st.requests[result] += 1
        if api_code is not None:
            st.api_errors[st.bounded("API error code", api_code, st.vocabulary.api_error_codes)] += 1
        self._changed()

    def apply_poll(self, name: str, outcome: PollOutcome) -> None:
        """Apply one poll's statuses, counters and health as one unit."""
        st = self.sets[name]
        now = outcome.started + outcome.duration
        completed = 0
        bad: list[str] = []
        for result in outcome.results:
            for code in result.api_error_codes:
                st.api_errors[st.bounded("API error code", code, st.vocabulary.api_error_codes)] += 1
            for status in result.statuses:
                if status.task_id not in st.tasks and (why := st.refused(status.task_id)) is not None:
                    if why == "syntax":  # a listing (discovery) named an ID we would never ask about
                        bad.append(status.task_id)
                    continue
                completed += self._apply_status(st, status, now)
            st.mark_changed(result.task_ids())
            self._apply_omitted(st, result.omitted, now)
        st.log_bad_ids(bad, "the provider's listing")
        st.poll_durations.observe(outcome.duration)
        st.polled = True
        st.baselined = st.baselined or outcome.error is None
        st.up = outcome.error is None
        st.down_reason = outcome.error
        if st.up:
            st.last_success = now
            self._update_eta(st, outcome, completed, now)
        st.last_poll = now
        self._changed()

    def _apply_omitted(self, st: SetState, task_ids: Sequence[str], now: float) -> None:
        """Pending tasks an answer left out are asked again; `not_found_after` misses make them not_found."""
        for task_id in task_ids:
            rec = st.tasks.get(task_id)
            if rec is None or rec.state is not TaskState.PENDING:
                continue
            rec.misses += 1
            if rec.misses >= st.not_found_after:
                self._apply_status(st, TaskStatus(task_id, TaskState.NOT_FOUND, MISSING), now)
            st.mark_changed((task_id,))

    def _apply_status(self, st: SetState, status: TaskStatus, now: float) -> int:
        """Apply one task's status; returns 1 when it newly became done."""
        vocab = st.vocabulary
        state = status.state
        label = MISSING if status.provider_status == MISSING else (
            st.bounded("status", status.provider_status, vocab.statuses) or OTHER)
        failed = state is TaskState.ERROR
        fault = st.bounded("fault code", status.fault_code, vocab.fault_codes) if failed else ""
        progress = None if status.progress is None else max(0.0, min(1.0, status.progress))
        rec = st.tasks.get(status.task_id)
        if rec is None:
            rec = st.tasks[status.task_id] = TaskRecord(now)
            changed = True
        else:
            # Most polls change few tasks: leave the aggregates alone for those that stay put.
            changed = rec.state is not state or rec.status != label or rec.fault != fault or rec.progress != progress
            if changed:
                st._count(rec, -1)
        was_final = rec.state is not TaskState.PENDING
        seen_pending = rec.last_seen is not None and not was_final
        # Tasks already finished when the set is first polled are history, not news: counting
        # them would make every restart look like a burst of completions and failures.
        baseline = rec.last_seen is None and not st.baselined
        rec.state = state
        rec.status = label
        rec.fault = fault
        rec.message = status.fault_message[:500] if failed else ""
        rec.progress = progress
        rec.eta = status.eta_seconds
        if status.created is not None:
            rec.created = status.created
        if status.finished is not None:
            rec.finished = status.finished
        rec.last_seen = now
        rec.not_before = status.not_before
        rec.misses = 0
        if changed:
            st._count(rec, +1)
        if was_final or state is TaskState.PENDING or baseline:
            return 0
        # First transition into a final state: count it once.
        for tally in status.tallies:
            st.tallies[(tally.counter, tally.label)] += tally.amount
        if rec.state is TaskState.ERROR:
            st.failed_total[rec.fault] += 1
            log.debug("task %s of set %s failed: %s %s", status.task_id[:100], st.name, rec.fault, rec.message[:200])
        # Without a creation time, first-seen only means something if we saw it pending.
        start = rec.created if rec.created is not None else (rec.first_seen if seen_pending else None)
        if rec.state in st.durations and start is not None:
            end = rec.finished if rec.finished is not None else now
            st.durations[rec.state].observe(max(0.0, end - start))
        if rec.state is TaskState.DONE:
            st.completed_total += 1
            return 1
        return 0

    def _update_eta(self, st: SetState, outcome: PollOutcome, completed: int, now: float) -> None:
        pending = st.by_state[TaskState.PENDING]
        if st.last_success is not None and st.last_poll is not None and now > st.last_poll:
            rate = completed / (now - st.last_poll)
            prev = st.completion_rate
            st.completion_rate = rate if prev is None else prev + RATE_SMOOTHING * (rate - prev)
        # A task's ETA counts from when it was reported: tasks not asked in this poll (waiting
        # for their not-before time) count with what is left of their last ETA.
        known = [rec for rec in st.tasks.values() if rec.state is TaskState.PENDING and rec.eta is not None]
        task_etas = [max(0.0, (rec.eta or 0.0) - (now - (rec.last_seen or now))) for rec in known]
        reported = [r.eta_seconds for r in outcome.results if r.eta_seconds is not None]
        if reported:  # the provider's batch ETAs: the set is done when the slowest batch or waiting task is
            st.eta = max([*reported, *(e for rec, e in zip(known, task_etas, strict=True) if rec.last_seen != now)])
        elif not pending:
            st.eta = 0.0
        elif task_etas:
            st.eta = max(task_etas)
        elif st.completion_rate:
            st.eta = pending / st.completion_rate
        else:
            st.eta = None

    def forget_final(self, name: str, older_than: float, now: float) -> int:
        """Stop tracking final tasks last seen before `older_than`, leaving a tombstone of each;
        counters keep their totals."""
        st = self.sets[name]
        old = [tid for tid, rec in st.tasks.items()
               if rec.state.final and rec.last_seen is not None and rec.last_seen < older_than]
        for tid in old:
            rec = st.tasks.pop(tid)
            st._count(rec, -1)
            st.bury(tid, rec.state, now)
        if old:
            self._changed()
        return len(old)

    def expiring_tombstones(self, name: str, older_than: float) -> list[str]:
        """Tombstones made or last listed before `older_than`."""
        hour = int(older_than // TOMBSTONE_HOUR)
        return [tid for tid, (_, made) in self.sets[name].tombstones.items() if made < hour]

    def expire_tombstones(self, name: str, task_ids: Iterable[str], still_listed: Collection[str],
                          now: float) -> int:
        """Drop these tombstones, except those a configured source still lists: they are renewed."""
        st = self.sets[name]
        dropped = 0
        for task_id in task_ids:
            grave = st.tombstones.get(task_id)
            if grave is None:
                continue
            if task_id in still_listed:
                st.bury(task_id, grave[0], now)
            else:
                st.unbury(task_id)
                dropped += 1
        return dropped

    def flush(self, name: str) -> None:
        """Save what changed in the set since the last flush (no-op without a state file)."""
        st = self.sets.get(name)
        if st is None:
            return
        if self.persist is not None:
            self.persist.save(st, st.aggregates(), st.dirty, st.forgotten, st.unburied)
        st.dirty.clear()
        st.forgotten.clear()
        st.unburied.clear()
