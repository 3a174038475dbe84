"""The exporter's own metrics: config reloads, and prometheus-client's process, platform and GC collectors.

These change without a poll (a reload, the process's memory), so they are rendered from a small
registry of their own at scrape time, at most once a second (about 0.4 ms: /proc reads), and
again at once after a reload; beside the cached task data (see exposition.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass(frozen=True, slots=True)
class SelfMetricSpec:
    """One of the exporter's own metric families (no `provider`/`task_set` labels)."""

    name: str
    kind: str
    help: str


# The blackbox exporter's shape: `..._config_last_reload_successful` and its timestamp.
SELF_METRICS: tuple[SelfMetricSpec, ...] = (
    SelfMetricSpec(
        "upload_config_last_reload_successful",
        "gauge",
        "1 when the last configuration load (start, SIGHUP or POST /-/reload) succeeded, else 0.",
    ),
    SelfMetricSpec(
        "upload_config_last_reload_success_timestamp_seconds",
        "gauge",
        "Unix time of the last successful configuration load (start or reload).",
    ),
)


class ReloadStatus:
    """Outcome of the last configuration load; the start counts as a successful one."""

    def __init__(self, now: float | None = None) -> None:
        self.successful = True
        self.last_success = time.time() if now is None else now
        self.version = 0  # moves on every load, so a cached rendering of these metrics is dropped

    def succeeded(self, now: float | None = None) -> None:
        self.successful = True
        self.last_success = time.time() if now is None else now
        self.version += 1

    def failed(self) -> None:
        self.successful = False
        self.version += 1


class ReloadCollector(Collector):
    """Renders SELF_METRICS from a ReloadStatus."""

    def __init__(self, status: ReloadStatus) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        values = (1.0 if self.status.successful else 0.0, self.status.last_success)
        for spec, value in zip(SELF_METRICS, values, strict=True):
            family = GaugeMetricFamily(spec.name, spec.help)
            family.add_metric([], value)
            yield family


def live_registry(status: ReloadStatus) -> CollectorRegistry:
    """A private registry of what is rendered on every scrape: reloads, process, platform, GC."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(ReloadCollector(status))
    return registry
