"""The one source both generators read: the job selector, the runbook base URL and the thresholds.

Like a monitoring mixin's `_config`: change them on the command line of grafana_mixin.py
(`--job-selector`, `--runbook-base-url`) to render rules and dashboards for your setup;
the defaults render the shipped files.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_JOB_SELECTOR = 'job="upload-status-exporter"'
DEFAULT_RUNBOOK_BASE_URL = "https://github.com/upload-status-exporter/upload-status-exporter/blob/main/docs/runbook.md"
# Thresholds shared by the alert rules and the dashboards' colours.
ETA_LIMIT_S = 4 * 3600
STALE_POLL_S = 3600
FAILURE_RATIO = 0.2
# The labels that name one series of a task set, whichever replica exports it: dashboards take the
# max over replicas by these (and the metric's own labels) before they sum, so sums do not double.
SET_LABELS = "job, provider, task_set"


@dataclass(frozen=True)
class Mixin:
    """What an installation may change; the defaults render the shipped files."""

    sel: str = DEFAULT_JOB_SELECTOR  # PromQL label matchers that select the exporter's targets
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL

    def s(self, metric: str, *matchers: str) -> str:
        """`metric{<job selector>, matchers...}`, for the alert rules."""
        return f"{metric}{{{', '.join(m for m in (self.sel, *matchers) if m)}}}"

    def runbook(self, alert: str) -> str:
        return f"{self.runbook_base_url}#{alert.lower()}"
