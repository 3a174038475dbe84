"""Memory of tombstones: what one forgotten task ID costs beyond the ID string itself."""

from __future__ import annotations

import gc
import tracemalloc

from exporter.core.model import TaskState
from exporter.core.tombstones import Tombstones

HOURS = 14 * 24  # tombstones made over a fortnight's retention: one shared value per hour and state


def bytes_per_tombstone(count: int) -> float:
    """Traced allocation per tombstone for `count` tombstones, the ID strings made beforehand."""
    graves = Tombstones()
    ids = [f"{i:012d}" for i in range(count)]
    states = (TaskState.DONE, TaskState.ERROR, TaskState.NOT_FOUND)
    spacing = HOURS * 3600.0 / count
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i, task_id in enumerate(ids):
            graves.bury(task_id, states[i % 3], i * spacing)
        return (tracemalloc.get_traced_memory()[0] - before) / count
    finally:
        tracemalloc.stop()
