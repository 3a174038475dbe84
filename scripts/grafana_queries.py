"""PromQL of the dashboards: one series per task set whichever replicas export it."""

from __future__ import annotations

from grafana_config import SET_LABELS
from grafana_panels import Selector

TARGET_FILTERS = ('job=~"$job"', 'instance=~"$instance"')
FAILED = "upload_tasks_failed_total"
NEVER_MAPPING = [{"type": "value", "options": {"0": {"text": "never", "color": "red", "index": 0}}}]


def dedup(expr: str, *labels: str) -> str:
    """One series per task set (and `labels`) whichever replicas export it: their max."""
    return f"max by ({', '.join([SET_LABELS, *labels])}) ({expr})"


def weighted_progress(q: Selector) -> str:
    """Progress over all tasks: each set's mean progress weighted by its tracked tasks."""
    tasks = dedup(f"sum without (state) ({q('upload_tasks')})")
    return f"sum({dedup(q('upload_tasks_progress_ratio'))} * {tasks}) / sum({tasks})"


def failure_ratio(q: Selector, by: str, window: str) -> str:
    failed_rate = f"rate({q('upload_tasks_failed_total')}[{window}])"
    done_rate = f"rate({q('upload_tasks_completed_total')}[{window}])"
    failed = f"sum by ({by}) ({dedup(failed_rate, 'fault_code')})"
    done = f"sum by ({by}) ({dedup(done_rate)})"
    return f"{failed} / ({failed} + {done})"


def poll_age(q: Selector) -> str:
    """Seconds since each set's last successful poll; for a set that never succeeded (0), the
    time its exporter has been running without a success (as UploadPollStale counts it)."""
    last = q("upload_poll_last_success_timestamp_seconds")
    started = f"process_start_time_seconds{{{', '.join(TARGET_FILTERS)}}}"
    return (
        f"time() - max by (provider, task_set) ({last} > 0) or max by (provider, task_set) "
        f"(({last} == 0) + on (job, instance) group_left () (time() - {started}))"
    )
