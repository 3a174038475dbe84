"""What is exported about a set beside its tasks: counts kept up to date, counters, histograms,
and the bounded label values they are kept under."""

from __future__ import annotations

import logging
import sys
from collections import defaultdict
from collections.abc import Sequence

from exporter.core.model import TaskState
from exporter.core.provider import IdSyntax, Vocabulary
from exporter.core.records import DURATION_BUCKETS, POLL_BUCKETS, Histogram, TaskRecord

log = logging.getLogger("exporter.core.tasks")

OTHER = "other"
MISSING = "missing"  # provider status of a task left out of `not_found_after` answers in a row


class Aggregates:
    """A set's aggregates; `SetState` keeps them as its tasks change."""

    tasks: dict[str, TaskRecord]
    id_syntax: IdSyntax | None

    def __init__(self, name: str, provider: str, vocabulary: Vocabulary) -> None:
        self.name = name
        self.provider = provider
        self.vocabulary = vocabulary
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
        self.push_refused: defaultdict[str, int] = defaultdict(int)  # reason -> pushes refused
        self.poll_durations = Histogram(POLL_BUCKETS)
        self._logged_unknown: set[tuple[str, str]] = set()

    def log_bad_ids(self, bad: Sequence[str], where: str) -> None:
        """One line for the IDs of one read, push or answer that do not look like this provider's IDs."""
        if bad:
            what = self.id_syntax.description if self.id_syntax else "a task ID"
            log.warning(
                "skipped %d task IDs of set %s from %s that are not %s, e.g. %r",
                len(bad),
                self.name,
                where,
                what,
                bad[0][:100],
            )

    def record_request(self, result: str, api_code: str | None, calls: int = 1) -> None:
        self.requests[result] += calls
        if api_code is not None:
            self.api_errors[self.bounded("API error code", api_code, self.vocabulary.api_error_codes)] += calls

    def bounded(self, kind: str, value: str, known: frozenset[str]) -> str:
        if value in known:
            return sys.intern(value)  # 100,000 tasks then share a handful of label strings
        if not value:
            return value
        if (kind, value) not in self._logged_unknown and len(self._logged_unknown) < 1000:
            self._logged_unknown.add((kind, value))
            log.warning(
                "unknown %s %r from provider %s (set %s) is exported as %r",
                kind,
                value[:200],
                self.provider,
                self.name,
                OTHER,
            )
        return OTHER

    def count(self, rec: TaskRecord, sign: int) -> None:
        """Add (sign > 0) or take away `sign` tasks holding `rec` to or from the aggregates."""
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
