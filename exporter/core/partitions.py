"""Partitions of a very large task set: units polled (and, among replicas, leased) apart.

A set with `partitions: N` is polled as N units named `<set>/<p>`; a task belongs to the
partition its ID hashes to (CRC-32, stable across processes and versions). A set of one
partition is one unit named as the set. Series keep `task_set=<set>` and gain `partition`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from exporter.core.settings import TaskSetConfig


def partition_of(task_id: str, partitions: int) -> int:
    return zlib.crc32(task_id.encode()) % partitions if partitions > 1 else 0


def unit_name(task_set: str, partition: int, partitions: int) -> str:
    return f"{task_set}/{partition}" if partitions > 1 else task_set


def units(task_set: TaskSetConfig) -> list[str]:
    """The units of a set, in partition order."""
    return [unit_name(task_set.name, p, task_set.partitions) for p in range(task_set.partitions)]


def split_unit(unit: str) -> tuple[str, str]:
    """(set name, partition label: "" for an unpartitioned set) of a unit name."""
    name, _, partition = unit.partition("/")
    return name, partition


def by_unit(task_set: TaskSetConfig, ids: Iterable[str]) -> dict[str, list[str]]:
    """IDs grouped by the unit they belong to (units with none left out)."""
    out: dict[str, list[str]] = {}
    for task_id in ids:
        unit = unit_name(task_set.name, partition_of(task_id, task_set.partitions), task_set.partitions)
        out.setdefault(unit, []).append(task_id)
    return out
