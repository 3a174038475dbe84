"""Helpers for the tests of the state replicas share in a real Redis: stores over RedisSinks,
leases taken by hand, polls applied by hand, and what Redis holds of a set."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from exporter.cluster.keys import ClusterKeys
from exporter.cluster.leases import Leases
from exporter.cluster.store import RedisSink
from exporter.core import dump
from exporter.core.model import FetchResult, PollOutcome, TaskState, TaskStatus
from exporter.core.provider import Vocabulary
from exporter.core.state import StateStore
from exporter.core.tasks import SetState
from tests.redis_server import RedisServer

P, D, E, N = TaskState.PENDING, TaskState.DONE, TaskState.ERROR, TaskState.NOT_FOUND
PROVIDER = "prov"
VOCAB = Vocabulary(
    statuses=frozenset({"Queued", "Done", "Failed"}), fault_codes=frozenset({"E1", "E2"}), api_error_codes=frozenset()
)
KEYS = ClusterKeys("t")
COUNTED = ("completed_total", "failed_total", "tallies", "durations")  # what the counters hash keeps


def client(server: RedisServer) -> Redis:
    """A client as the exporter makes one (strings in, strings out)."""
    return server.client(decode_responses=True)


def leases(redis: Redis, replica: str) -> Leases:
    return Leases(redis, KEYS, replica, "", ttl=30.0)


class Replica:
    """A StateStore over a RedisSink whose token function returns what this replica holds."""

    def __init__(self, redis: Redis, tokens: dict[str, str] | None = None) -> None:
        self.tokens: dict[str, str] = {} if tokens is None else tokens
        self.lost: list[tuple[str, str]] = []
        self.sink = RedisSink(redis, KEYS, self.tokens.get, lost=lambda unit, why: self.lost.append((unit, why)))
        self.store = StateStore(self.sink)

    async def open(self, name: str) -> SetState:
        st = self.store.ensure_set(name, PROVIDER, VOCAB)
        await self.store.restore(name)
        return st


def poll(store: StateStore, name: str, at: float, *statuses: TaskStatus, omitted: tuple[str, ...] = ()) -> None:
    store.apply_poll(
        name, PollOutcome(started=at, duration=0.5, results=[FetchResult(statuses, omitted=omitted)], requests={})
    )


def pending(task_id: str, progress: float | None = None, eta: float | None = None) -> TaskStatus:
    return TaskStatus(task_id, P, "Queued", progress=progress, eta_seconds=eta, created=10.0)


def done(task_id: str, finished: float) -> TaskStatus:
    return TaskStatus(task_id, D, "Done", created=10.0, finished=finished)


def failed(task_id: str, fault: str, finished: float) -> TaskStatus:
    return TaskStatus(task_id, E, "Failed", fault_code=fault, fault_message=f"{fault} happened", finished=finished)


async def snapshot(redis: Redis, name: str) -> dict[str, Any]:
    """Everything Redis holds of a set but its lease."""
    k = KEYS.unit(name)
    return {
        "rows": await redis.hgetall(k.rows),
        "counters": await redis.hgetall(k.counters),
        "aggregates": await redis.hgetall(k.aggregates),
        "tombstones": await redis.hgetall(k.tombstones),
        "inbox": await redis.smembers(k.inbox),
    }


def counted(st: SetState) -> dict[str, Any]:
    """The parts of a set's aggregates that the shared counters keep."""
    data = dump.aggregates(st)
    return {key: data[key] for key in COUNTED}


def view(st: SetState) -> dict[str, Any]:
    """All a restart must bring back of a set, comparable with ==."""
    return {
        "tasks": {task_id: rec.row(task_id) for task_id, rec in st.tasks.items()},
        "by_state": dict(st.by_state),
        "by_status": dict(st.by_status),
        "faults": dict(st.faults),
        "tombstones": dict(st.tombstones.items()),
        "counted": counted(st),
        "eta_tasks": set(st.eta_tasks),
    }


def wrap_rows(sink: RedisSink, calls: list[tuple[str, int]]) -> Callable[..., Any]:
    """sink.rows, recording (after, rows returned) of each page read."""
    original = sink.rows

    async def rows(name: str, after: str, limit: int) -> list[tuple[Any, ...]]:
        page = await original(name, after, limit)
        calls.append((after, len(page)))
        return page

    return rows
