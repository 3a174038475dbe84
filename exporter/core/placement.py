"""Which configured task sets this process polls.

Alone, a process polls every set. Replicas sharing state (exporter/cluster) each poll the
sets they hold a lease on: a `Placement` starts and stops the scheduler's runners as leases
come and go, takes pushes for sets another replica holds, and says when it cannot serve.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from prometheus_client.registry import Collector

from exporter.core.config import Config, TaskSetConfig
from exporter.core.provider import IdSyntax
from exporter.core.ratelimit import Limiter
from exporter.core.scheduler import Holding, Scheduler


class Placement(Protocol):
    def holding(self, name: str) -> Holding:
        """What the set's runner asks before each batch, and where pushed IDs wait for it."""
        ...

    def start(self, scheduler: Scheduler, config: Config, on_fatal: Callable[[Exception], None]) -> None:
        """Run the runners of the sets this process holds, from now on (again after a reload)."""
        ...

    async def halt(self) -> None:
        """Take and give up no set from now on: the daemon is stopping."""
        ...

    async def stop(self) -> None:
        """Give up every set (after the runners stopped and saved) and leave."""
        ...

    def not_ready(self) -> str | None:
        """Why this process cannot serve now, or None."""
        ...

    def holds(self, name: str) -> bool: ...

    def limiter(self, rate: float, concurrency: int, *, name: str) -> Limiter:
        """The pacing of an account's calls, shared with the other replicas."""
        ...

    async def push(self, task_set: TaskSetConfig, ids: list[str], id_syntax: IdSyntax | None) -> int:
        """Take pushed IDs for a set whichever process holds it; returns how many were new."""
        ...

    def collector(self) -> Collector:
        """Its own metrics, rendered on every scrape."""
        ...
