"""The metric contract as a table: name, type, help, extra labels and how to compute.

The collector, the README metric list and the naming test all read `METRICS`.
Values come from the last poll of each set, never from the scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from exporter.core.records import Histogram
from exporter.core.state import SetState

Kind = Literal["gauge", "counter", "histogram"]
Sample = tuple[tuple[str, ...], float]
LAST_POLL = " Value as of the set's last poll."


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric family of the contract.

    `samples` gives (extra label values, value) per series of one set; for histograms
    `histograms` gives (extra label values, Histogram) instead.
    """

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    samples: Callable[[SetState], Iterable[Sample]] | None = None
    histograms: Callable[[SetState], Iterable[tuple[tuple[str, ...], Histogram]]] | None = None


def _one(value: float | None) -> Iterable[Sample]:
    return [] if value is None else [((), float(value))]


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "upload_tasks",
        "gauge",
        "Tracked upload tasks by normalized state (pending, done, error, not_found)." + LAST_POLL,
        ("state",),
        lambda s: [((k.value,), float(v)) for k, v in s.by_state.items()],
    ),
    MetricSpec(
        "upload_tasks_provider_status",
        "gauge",
        "Tracked upload tasks by the provider's own status value (unknown values as 'other')." + LAST_POLL,
        ("status",),
        lambda s: [((k,), float(v)) for k, v in s.by_status.items()],
    ),
    MetricSpec(
        "upload_task_faults",
        "gauge",
        "Tasks now in error, by provider fault code (unknown codes as 'other')." + LAST_POLL,
        ("fault_code",),
        lambda s: [((k or "unknown",), float(v)) for k, v in s.faults.items()],
    ),
    MetricSpec(
        "upload_tasks_completed",
        "counter",
        "Transitions of tracked tasks to done observed by the exporter.",
        (),
        lambda s: [((), float(s.completed_total))],
    ),
    MetricSpec(
        "upload_tasks_failed",
        "counter",
        "Transitions of tracked tasks to error observed by the exporter, by fault code.",
        ("fault_code",),
        lambda s: [((k or "unknown",), float(v)) for k, v in s.failed_total.items()],
    ),
    MetricSpec(
        "upload_tasks_eta_seconds",
        "gauge",
        "Seconds until the pending tasks are expected to finish: provider-reported where it "
        "reports, else estimated from the observed completion rate; absent when unknown." + LAST_POLL,
        (),
        lambda s: _one(s.eta),
    ),
    MetricSpec(
        "upload_tasks_progress_ratio",
        "gauge",
        "Mean progress 0..1 over tracked tasks (finished count as 1; pending use the "
        "provider's progress, else 0)." + LAST_POLL,
        (),
        lambda s: _one(s.progress_ratio),
    ),
    MetricSpec(
        "upload_task_duration_seconds",
        "histogram",
        "Created-to-finished time of tasks that finished while tracked (first-seen when the "
        "provider gives no creation time), by final state.",
        ("state",),
        histograms=lambda s: [((k.value,), h) for k, h in s.durations.items()],
    ),
    MetricSpec(
        "upload_poll_up",
        "gauge",
        "1 when the last poll of the set succeeded, else 0.",
        (),
        lambda s: [((), 1.0 if s.up else 0.0)] if s.polled else [],
    ),
    MetricSpec(
        "upload_poll_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the set's last successful poll; 0 until the set's first successful poll.",
        (),
        lambda s: [((), float(s.last_success or 0.0))],
    ),
    MetricSpec(
        "upload_poll_duration_seconds",
        "histogram",
        "Wall time of one poll of the set, retries included.",
        (),
        histograms=lambda s: [((), s.poll_durations)],
    ),
    MetricSpec(
        "upload_provider_requests",
        "counter",
        "Provider API calls by result: ok, api_error, http_error, timeout, invalid_response.",
        ("result",),
        lambda s: [((k,), float(v)) for k, v in s.requests.items()],
    ),
    MetricSpec(
        "upload_provider_api_errors",
        "counter",
        "Error codes returned by the provider API (unknown codes as 'other').",
        ("code",),
        lambda s: [((k,), float(v)) for k, v in s.api_errors.items()],
    ),
)
