"""The cluster's self-metrics, rendered on every scrape: what this replica sees of the others
and of the leases. Dashboards and alerts aggregate them across instances."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.core.partitions import split_unit

if TYPE_CHECKING:
    from exporter.cluster.placement import RedisPlacement

UNIT_LABELS = ["provider", "task_set", "partition"]


class ClusterCollector(Collector):
    def __init__(self, placement: RedisPlacement) -> None:
        self.placement = placement

    def collect(self) -> Iterator[Metric]:
        p = self.placement
        yield GaugeMetricFamily(
            "upload_store_up", "1 when the shared state store (Redis) answered the last heartbeat.", value=p.store_up
        )
        yield GaugeMetricFamily(
            "upload_cluster_members", "Live replicas this replica sees (its own heartbeat included).", len(p.members)
        )
        yield GaugeMetricFamily("upload_cluster_units", "Leasable units: task sets and their partitions.", len(p.units))
        yield GaugeMetricFamily(
            "upload_cluster_units_unowned",
            "Units no replica held a lease on at this replica's last look.",
            p.unowned,
        )
        config = GaugeMetricFamily("upload_config_hash", "Hash of this replica's config file.", labels=["hash"])
        config.add_metric([p.config_hash], 1)
        yield config
        held = GaugeMetricFamily(
            "upload_lease_held", "1 for each unit this replica holds the lease on.", labels=UNIT_LABELS
        )
        lost = CounterMetricFamily(
            "upload_lease_lost", "Leases this replica lost while it held them (its saves refused).", labels=UNIT_LABELS
        )
        for unit in sorted(p.units):
            labels = [p.providers.get(unit, ""), *split_unit(unit)]
            held.add_metric(labels, 1 if unit in p.held else 0)
            lost.add_metric(labels, p.lease_lost[unit])
        yield held
        yield lost
