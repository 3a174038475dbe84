"""The validated configuration: frozen values the rest of the exporter reads (built by core.config)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from exporter.core.secrets import Secret

MAX_TASKS = 1_000_000  # default per-set cap on tracked tasks (the core is built for this many)
MAX_PARTITIONS = 256


@dataclass(frozen=True)
class ProxyConfig:
    """An HTTP forward proxy for one account's calls; credentials only as secrets."""

    url: str  # no userinfo: the credentials are the two fields below
    username: str | None = None
    password: Secret | None = None


T = TypeVar("T")


@dataclass(frozen=True)
class AccountConfig:
    """One set of credentials at one provider endpoint."""

    name: str
    provider: str
    endpoint: str
    timeout: float
    max_concurrency: int
    rate_limit: float
    options: Mapping[str, Any] = field(default_factory=dict)  # provider fields; secrets as Secret
    proxy: ProxyConfig | None = None  # None: HTTP(S)_PROXY and NO_PROXY from the environment apply

    def secret(self, key: str) -> str:
        return self._typed(key, Secret).reveal()

    def text(self, key: str) -> str:
        return self._typed(key, str)

    def texts(self, key: str) -> tuple[str, ...]:
        return self._typed(key, tuple)

    def integer(self, key: str) -> int:
        return self._typed(key, int)

    def _typed(self, key: str, kind: type[T]) -> T:
        """An option as its AccountField declared it; asking for another kind is a provider's bug."""
        value = self.options[key]
        if not isinstance(value, kind):
            raise TypeError(f"account option {key} is not a {kind.__name__}")
        return value


@dataclass(frozen=True)
class TaskSource:
    ids: tuple[str, ...] = ()
    files: tuple[Path, ...] = ()
    discover: bool = False
    push_token: Secret | None = None  # enables POST /api/v1/task_sets/<name>/tasks


@dataclass(frozen=True)
class TaskSetConfig:
    """A group of tasks polled together, exported with `task_set=<name>`."""

    name: str
    account: str
    provider: str
    interval: float
    jitter: float
    tasks: TaskSource
    labels: Mapping[str, str]
    batch_size: int | None
    max_tries: int
    max_retry_time: float
    forget_final_after: float
    per_task_series: int  # 0: off; otherwise the cap on tasks with a `task_id` series
    not_found_after: int = 3  # answers in a row that leave a task out before it is not_found
    poll_timeout: float = 60.0  # deadline of one poll: fetches, retries and rate-limit waits
    tombstone_retention: float = 14 * 86400.0  # how long a forgotten ID stays ignored
    max_tasks: int = MAX_TASKS  # pushed IDs past this many tracked tasks are refused (413)
    partitions: int = 1  # units polled (and leased among replicas) apart, by a hash of the task ID
    partition: int | None = None  # set on a unit's copy of its set's config: the partition it polls


@dataclass(frozen=True)
class Config:
    path: str
    accounts: Mapping[str, AccountConfig]
    task_sets: tuple[TaskSetConfig, ...]

    @property
    def extra_label_names(self) -> tuple[str, ...]:
        return tuple(sorted({k for ts in self.task_sets for k in ts.labels}))
