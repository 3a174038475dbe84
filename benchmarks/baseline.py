"""The baseline: the exporter a team writes by hand, honestly and idiomatically.

prometheus-client `Gauge`s with a `task_id` label per task in a registry served by
`start_http_server`; every tracked task is asked for one request at a time, every
interval, whatever its state. It speaks each API through the same provider clients as
the exporter, so the comparison is about the polling and metrics design, not the parsers.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from exporter.core.errors import ProviderError
from exporter.core.model import FetchResult, TaskState
from exporter.core.provider import Discovering, Provider

STATE_VALUE = {TaskState.PENDING: 0, TaskState.DONE: 1, TaskState.ERROR: 2, TaskState.NOT_FOUND: 3}


class HandWrittenExporter:
    """One Gauge series per task; one request per task per poll."""

    def __init__(self, provider: Provider, task_set: str) -> None:
        self.provider = provider
        self.task_set = task_set
        self.registry = CollectorRegistry()
        labels = ["provider", "task_set", "task_id"]
        self.state = Gauge(
            "upload_task_state", "0 pending, 1 done, 2 error, 3 not found", labels, registry=self.registry
        )
        self.progress = Gauge("upload_task_progress_ratio", "Progress of one task", labels, registry=self.registry)
        self.errors = Counter(
            "upload_poll_errors", "Failed status requests", ["provider", "task_set"], registry=self.registry
        )

    async def poll_one(self, task_id: str) -> None:
        try:
            result = await self.provider.fetch([task_id])
        except ProviderError:
            self.errors.labels(self.provider.name, self.task_set).inc()
            return
        self.record(result)

    async def fill_from_listing(self) -> None:
        """Every task the API lists (Yandex Direct's empty selection), in one go."""
        assert isinstance(self.provider, Discovering)
        self.record(await self.provider.discover())

    def record(self, result: FetchResult) -> None:
        for status in result.statuses:
            labels = (self.provider.name, self.task_set, status.task_id)
            self.state.labels(*labels).set(STATE_VALUE[status.state])
            if status.progress is not None:
                self.progress.labels(*labels).set(status.progress)

    async def poll(self, task_ids: Iterable[str]) -> None:
        """Every task, one request each, whatever its last state."""
        for task_id in task_ids:
            await self.poll_one(task_id)
