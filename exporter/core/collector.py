"""State -> metric families, built fresh on every collect from the METRICS table.

Series of sets or label values that disappear from the state disappear from /metrics.
`Exposition` renders once per state change and serves the cached bytes, so a scrape
costs a version check, not a walk over tasks.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.core.metrics import METRICS
from exporter.core.model import TaskState
from exporter.core.partitions import split_unit
from exporter.core.provider import CounterSpec
from exporter.core.state import SetState, StateStore

BASE_LABELS = ("provider", "task_set")
PER_TASK_ORDER = {TaskState.ERROR: 0, TaskState.PENDING: 1, TaskState.NOT_FOUND: 2, TaskState.DONE: 3}


class StateCollector(Collector):
    """Renders the whole metric contract from a StateStore."""

    def __init__(
        self,
        store: StateStore,
        *,
        extra_labels: Mapping[str, Mapping[str, str]],
        per_task_caps: Mapping[str, int],
        provider_counters: Mapping[str, Sequence[CounterSpec]],
    ) -> None:
        self.store = store
        self.extra_labels = extra_labels  # set name -> its configured labels
        self.extra_names = tuple(sorted({k for labels in extra_labels.values() for k in labels}))
        self.per_task_caps = per_task_caps
        self.provider_counters = provider_counters

    def _base(self, st: SetState) -> list[str]:
        labels = self.extra_labels.get(st.name, {})
        return [st.provider, split_unit(st.name)[0], *(labels.get(k, "") for k in self.extra_names)]

    def collect(self) -> Iterator[Metric]:
        sets = sorted(self.store.sets.values(), key=lambda s: (s.provider, s.name))
        base_names = [*BASE_LABELS, *self.extra_names]
        yield from self._build_info()
        for spec in METRICS:
            names = [*base_names, *spec.labels]
            if spec.kind == "histogram":
                assert spec.histograms is not None
                hist = HistogramMetricFamily(spec.name, spec.help, labels=names)
                for st in sets:
                    for values, h in spec.histograms(st):
                        hist.add_metric([*self._base(st), *values], h.buckets(), h.total)
                yield hist
                continue
            assert spec.samples is not None
            family: Metric = (GaugeMetricFamily if spec.kind == "gauge" else CounterMetricFamily)(
                spec.name, spec.help, labels=names
            )
            for st in sets:
                for values, value in sorted(spec.samples(st)):
                    family.add_metric([*self._base(st), *values], value)  # type: ignore[attr-defined]
            yield family
        yield from self._provider_counters(sets, base_names)
        yield from self._push_refused(sets, base_names)
        yield from self._per_task(sets, base_names)

    def _build_info(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "upload_build_info", "Build information; always 1.", labels=["version", "python_version"]
        )
        info.add_metric([__version__, platform.python_version()], 1.0)
        yield info

    def _provider_counters(self, sets: list[SetState], base_names: list[str]) -> Iterator[Metric]:
        for provider, specs in sorted(self.provider_counters.items()):
            for spec in specs:
                family = CounterMetricFamily(
                    f"upload_{spec.name}", spec.help, labels=[*base_names, *([spec.label] if spec.label else [])]
                )
                for st in sets:
                    if st.provider != provider:
                        continue
                    for (counter, label), amount in sorted(st.tallies.items()):
                        if counter == spec.name:
                            family.add_metric([*self._base(st), *([label] if spec.label else [])], amount)
                yield family

    def _push_refused(self, sets: list[SetState], base_names: list[str]) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "upload_push_refused",
            "Pushes of task IDs refused, by reason: max_tasks (the set is full), "
            "too_large, malformed, unsupported_media_type.",
            labels=[*base_names, "reason"],
        )
        for st in sets:
            for reason, count in sorted(st.push_refused.items()):
                family.add_metric([*self._base(st), reason], float(count))
        yield family

    def _per_task(self, sets: list[SetState], base_names: list[str]) -> Iterator[Metric]:
        if not any(self.per_task_caps.get(st.name) for st in sets):
            return
        state = GaugeMetricFamily(
            "upload_task_state",
            "One series per task (opt-in, capped): 1 for its normalized state "
            "and provider status. Value as of the set's last poll.",
            labels=[*base_names, "task_id", "state", "status"],
        )
        progress = GaugeMetricFamily(
            "upload_task_progress_ratio",
            "Progress 0..1 of one task where the provider reports it "
            "(opt-in, capped). Value as of the set's last poll.",
            labels=[*base_names, "task_id"],
        )
        for st in sets:
            cap = self.per_task_caps.get(st.name, 0)
            if not cap:
                continue
            chosen = sorted(st.tasks.items(), key=lambda kv: PER_TASK_ORDER[kv[1].state])[:cap]
            for task_id, rec in chosen:
                state.add_metric([*self._base(st), task_id, rec.state.value, rec.status], 1.0)
                if rec.progress is not None:
                    progress.add_metric([*self._base(st), task_id], rec.progress)
        yield state
        yield progress


class Exposition:
    """The /metrics body, rendered once per state change."""

    def __init__(self, store: StateStore, collector: StateCollector) -> None:
        self.store = store
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        self._version = -1
        self._body = b""

    def render(self) -> bytes:
        if self._version != self.store.version:
            self._version = self.store.version
            self._body = generate_latest(self.registry)
        return self._body
