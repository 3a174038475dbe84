"""One task set's state: its tracked tasks, tombstones and everything exported about them.

`SetState` is the only code that changes a set. Aggregates (`aggregates.Aggregates`) are kept
up to date as statuses change, so rendering `/metrics` never walks the tasks; nor does a poll:
due and final tasks are read from indexes kept beside them (`taskindex.TaskIndex`). Records
are values shared by the tasks that hold the same (`records.TaskRecord`); an answer is applied
by `answers.Answers`, in bulk where it leaves tasks as they were. Work over many tasks
is written as generators that yield every few thousand, so the store can give the event loop
a turn between chunks.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Iterator, Sequence

from exporter.core import eta, ledger
from exporter.core.aggregates import MISSING
from exporter.core.answers import SEEN, Answers, Step, bounded_progress, only_seen
from exporter.core.model import PollOutcome, Tally, TaskState, TaskStatus
from exporter.core.provider import IdSyntax, Vocabulary
from exporter.core.records import TaskRecord
from exporter.core.taskindex import TaskIndex
from exporter.core.tombstones import Tombstones

log = logging.getLogger(__name__)

# Changed tasks are listed by ID for the next save up to a share of the set (and at least a
# number): past it, the save carries every task instead.
ALL_CHANGED_SHARE = 8
ALL_CHANGED_MIN = 10_000


class SetState(Answers):
    """Tracked tasks of one task set and everything exported about them."""

    def __init__(
        self,
        name: str,
        provider: str,
        vocabulary: Vocabulary,
        *,
        keep_changes: bool = False,
        keep_counted: bool | None = None,  # the transitions' increments too (default: with the changes)
        whole_when_many: bool = True,  # many changed at once: the next save carries every task (see _changed)
    ) -> None:
        super().__init__(name, provider, vocabulary)
        self.id_syntax: IdSyntax | None = None
        self.not_found_after = 3
        self.index = TaskIndex()
        self.tasks: dict[str, TaskRecord] = self.index.tasks
        self.eta_tasks: set[str] = self.index.eta_tasks  # pending tasks with a provider-reported ETA
        self.tombstones = Tombstones(keep_changes=keep_changes)  # forgotten final tasks
        self.polled = False
        self.tracked = 0  # IDs ever taken by `track` (config, files, pushes), not restored or listed
        self.restored = False  # saved state was loaded: the set has something to show before its first poll
        self.up = False
        self.down_reason: str | None = None
        self.last_error: str | None = None  # the last failed poll's message (safe to show), kept after recovery
        self.last_error_time: float | None = None
        self.last_success: float | None = None
        self.last_poll: float | None = None
        self.eta: float | None = None
        self.completion_rate: float | None = None  # tasks per second, smoothed
        self.baselined = False  # tasks first seen finished are history until the first poll is applied
        # Changes since the last save; kept only when something saves them.
        self.keep_changes = keep_changes
        self.dirty: set[str] = set()
        self.all_changed = False  # too many changed to list them: the next save carries every task
        self.whole_when_many = whole_when_many
        counting = keep_changes if keep_counted is None else keep_counted
        self.counted: dict[str, ledger.Increments] | None = {} if counting else None  # since the last save
        self._seen: dict[TaskRecord, TaskRecord] = {}  # during a poll: a record, and it seen in this poll

    # -- IDs coming in ------------------------------------------------------------------
    def track(self, task_ids: Iterable[str], now: float, where: str) -> int:
        """Start tracking these IDs; returns how many were new. Tracked IDs are left alone,
        tombstoned ones ignored, and ones not in the provider's syntax skipped with one line."""
        added: list[str] = []
        bad: list[str] = []
        tasks, put, rec = self.tasks, self.index.put, TaskRecord.new(now)
        for task_id in task_ids:
            if task_id in tasks:
                continue
            why = self.refused(task_id)
            if why is None:
                put(task_id, None, rec)
                added.append(task_id)
            elif why == "syntax":
                bad.append(task_id)
        new = len(added)
        self._changed(added)
        self.count(rec, new)
        self.tracked += new
        self.log_bad_ids(bad, where)
        return new

    def refused(self, task_id: str) -> str | None:
        """Why an ID not tracked yet is not taken: "forgotten", "syntax", or None to take it."""
        if task_id in self.tombstones:
            return "forgotten"
        if self.id_syntax is not None and not self.id_syntax.accepts(task_id):
            return "syntax"
        return None

    def _changed(self, task_ids: Collection[str]) -> None:
        if not self.keep_changes or self.all_changed:
            return
        many = max(ALL_CHANGED_MIN, len(self.tasks) // ALL_CHANGED_SHARE)
        if self.whole_when_many and len(self.dirty) + len(task_ids) > many:
            # So many that saving every task costs less than a set of their IDs (the first poll's).
            self.all_changed, self.dirty = True, set()
        else:
            self.dirty.update(task_ids)

    # -- finding work ---------------------------------------------------------------------
    def due_steps(self, now: float, found: list[str]) -> Iterator[None]:
        """Fill `found` with pending tasks whose "not before" time has passed, a chunk at a time."""
        return self.index.due_steps(now, found)

    # -- applying a poll ------------------------------------------------------------------
    def apply_steps(self, outcome: PollOutcome) -> Iterator[None]:
        """Apply one poll's statuses, counters and health, yielding between chunks."""
        now = outcome.started + outcome.duration
        self._seen.clear()
        self.index.intern.clear()  # records of earlier polls stay shared; the table stays small
        completed = 0
        bad: list[str] = []
        for result in outcome.results:
            for code in result.api_error_codes:
                self.api_errors[self.bounded("API error code", code, self.vocabulary.api_error_codes)] += 1
            completed += yield from self._apply_result(result, now, bad)
            for task_id in result.omitted:
                self._apply_omitted(task_id, now)
        self.log_bad_ids(bad, "the provider's listing")
        self._seen.clear()
        for (result_label, api_code), calls in outcome.requests.items():
            self.record_request(result_label, api_code, calls)
        self.poll_durations.observe(outcome.duration)
        self.polled = True
        self.baselined = self.baselined or outcome.error is None
        self.up = outcome.error is None
        self.down_reason = outcome.error
        if outcome.error is not None:
            self.last_error, self.last_error_time = outcome.error, now
        if self.up:
            self.last_success = now
            self._update_eta(outcome, completed, now)
        self.last_poll = now

    def _apply(self, status: TaskStatus, now: float, bad: list[str]) -> int:
        """`_apply_status` for a task tracked or to be tracked; 0 for one refused."""
        if status.task_id not in self.tasks and not self._takes(status.task_id, bad):
            return 0
        return self._apply_status(status, now)

    def _takes(self, task_id: str, bad: list[str]) -> bool:
        """Whether an answer's task not tracked yet is taken; one in no provider syntax goes to `bad`."""
        why = self.refused(task_id)
        if why == "syntax":  # a listing (discovery) named an ID we would never ask about
            bad.append(task_id)
        return why is None

    def _apply_omitted(self, task_id: str, now: float) -> None:
        """Pending tasks an answer left out are asked again; `not_found_after` misses make them not_found."""
        rec = self.tasks.get(task_id)
        if rec is None or rec.state is not TaskState.PENDING:
            return
        rec = self.index.intern(rec._replace(misses=rec.misses + 1))
        self.tasks[task_id] = rec  # only the misses moved: the indexes stay as they are
        self._changed((task_id,))
        if rec.misses >= self.not_found_after:
            self._apply_status(TaskStatus(task_id, TaskState.NOT_FOUND, MISSING), now)

    def _apply_status(self, status: TaskStatus, now: float) -> int:
        """Apply one task's status: 1 when it newly became done, SEEN when it left the task as it was, else 0."""
        old = self.tasks.get(status.task_id)
        step = self._step(old, status, now)
        done = self._take([status.task_id], old, step, status.tallies, now)
        return SEEN if step.seen else done

    def _step(self, old: TaskRecord | None, status: TaskStatus, now: float) -> Step:
        """What `status` does to a task holding `old` (None: not tracked yet); the same for every
        task holding `old` that gets a status with the same fields, whatever its ID."""
        state, label = status.state, self.label(status.provider_status)
        failed = state is TaskState.ERROR
        fault = self.bounded("fault code", status.fault_code, self.vocabulary.fault_codes) if failed else ""
        progress = bounded_progress(status.progress)
        rec = TaskRecord.new(now) if old is None else old
        if old is None:
            changed = True
        elif only_seen(rec, status, label, progress):
            # Most tasks of most polls: nothing else moved, nothing to save or count.
            return Step(self._seen_again(rec, now), seen=True)
        else:
            # Most polls change few tasks: leave the aggregates alone for those that stay put.
            changed = rec.state is not state or rec.status != label or rec.fault != fault or rec.progress != progress
        was_final = rec.state is not TaskState.PENDING
        # Tasks already finished when the set is first polled are history, not news: counting
        # them would make every restart look like a burst of completions and failures.
        baseline = rec.last_seen is None and not self.baselined
        new = self.index.intern(
            TaskRecord(
                state,
                label,
                fault,
                status.fault_message[:500] if failed else "",
                progress,
                status.eta_seconds,
                rec.created if status.created is None else status.created,
                rec.finished if status.finished is None else status.finished,
                rec.first_seen,
                now,
                status.not_before,
                0,
            )
        )
        # Only what a restart needs is saved: the time a task was last seen alone is not.
        saved = old is None or rec.last_seen is None or not new.alike(rec)
        counted = not (was_final or state is TaskState.PENDING or baseline)
        return Step(new, changed, saved, counted, rec.last_seen is not None and not was_final)

    def _take(
        self, task_ids: Sequence[str], old: TaskRecord | None, step: Step, tallies: Sequence[Tally], now: float
    ) -> int:
        """Tasks all holding `old` take `step` (each with these tallies); how many newly became done."""
        put, new = self.index.put, step.new
        for task_id in task_ids:
            put(task_id, old, new)
        if step.seen:
            return 0
        if step.changed:
            if old is not None:
                self.count(old, -len(task_ids))
            self.count(new, len(task_ids))
        if step.saved:
            self._changed(task_ids)
        return self._count_transitions(task_ids, tallies, new, now, step.seen_pending) if step.counted else 0

    def _count_transitions(
        self, task_ids: Sequence[str], tallies: Sequence[Tally], rec: TaskRecord, now: float, seen_pending: bool
    ) -> int:
        """Tasks' first transition into `rec`'s final state: counted once each. Returns how many became done."""
        n = len(task_ids)
        for tally in tallies:
            self.tallies[(tally.counter, tally.label)] += tally.amount * n
        if rec.state is TaskState.ERROR:
            self.failed_total[rec.fault] += n
            if log.isEnabledFor(logging.DEBUG):
                for task_id in task_ids:
                    log.debug("task %s of set %s failed: %s %s", task_id[:100], self.name, rec.fault, rec.message[:200])
        # Without a creation time, first-seen only means something if we saw it pending.
        start = rec.created if rec.created is not None else (rec.first_seen if seen_pending else None)
        duration = None
        if rec.state in self.durations and start is not None:
            duration = max(0.0, (rec.finished if rec.finished is not None else now) - start)
            self.durations[rec.state].observe(duration, n)
        if self.counted is not None:  # for a sink that counts each transition where it checks the prior state
            self.counted.update(dict.fromkeys(task_ids, ledger.increments(rec.state, rec.fault, tallies, duration)))
        if rec.state is TaskState.DONE:
            self.completed_total += n
            return n
        return 0

    def _update_eta(self, outcome: PollOutcome, completed: int, now: float) -> None:
        if self.last_poll is not None:
            self.completion_rate = eta.smoothed_rate(self.completion_rate, completed, now - self.last_poll)
        asked, waiting = eta.task_etas([self.tasks[t] for t in self.eta_tasks], now)
        reported = [r.eta_seconds for r in outcome.results if r.eta_seconds is not None]
        self.eta = eta.estimate(self.by_state[TaskState.PENDING], reported, asked, waiting, self.completion_rate)

    # -- forgetting -----------------------------------------------------------------------
    def forget_steps(self, older_than: float, now: float, forgotten: list[str]) -> Iterator[None]:
        """Stop tracking final tasks last seen before `older_than`, leaving a tombstone of each;
        counters keep their totals."""
        for chunk in self.index.final_before(older_than):
            for task_id in chunk:
                rec = self.index.remove(task_id)
                if rec is not None:
                    self.count(rec, -1)
                    self.dirty.discard(task_id)
                    self.tombstones.bury(task_id, rec.state, now)
                    forgotten.append(task_id)
            yield
