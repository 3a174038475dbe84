"""Pushes through any replica (cluster.inbox) into a real Redis: only new IDs wait in the
set's inbox, bad IDs and pushes past max_tasks are refused, and the holder's taken IDs
leave the inbox only with the save that keeps them."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from exporter.cluster import inbox
from exporter.core import config as config_mod
from exporter.core.errors import StoreUnavailable
from exporter.core.provider import IdSyntax
from exporter.core.push import Refused
from exporter.core.settings import TaskSetConfig
from exporter.providers import PROVIDERS
from tests.cluster_state import KEYS, Replica, client, done, leases, pending, poll, snapshot
from tests.redis_server import RedisServer

MAX_TASKS = 10


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch) -> tuple[TaskSetConfig, IdSyntax]:
    monkeypatch.setenv("INBOX_TEST_TOKEN", "inbox-test-token-0123456789")
    account = {"provider": "yandex_direct", "endpoint": "http://127.0.0.1:9/", "token": {"env": "INBOX_TEST_TOKEN"}}
    task_set = {
        "name": "s",
        "account": "d",
        "interval": 60,
        "max_tasks": MAX_TASKS,
        "tasks": {"push_token": {"env": "INBOX_TEST_TOKEN"}},
    }
    cfg = config_mod.parse({"accounts": {"d": account}, "task_sets": [task_set]}, PROVIDERS, "inbox.yaml")
    return cfg.task_sets[0], PROVIDERS["yandex_direct"].task_id_syntax(cfg.accounts["d"])


async def holder_with_history(redis: Redis) -> Replica:
    """The set's holder, having saved 1 and 2 (tracked) and 3 (forgotten: tombstoned)."""
    a = Replica(redis, {"s": "token-a"})
    assert await leases(redis, "a").acquire("s", "token-a")
    await a.open("s")
    a.store.track("s", ["1", "2", "3"], 100.0)
    poll(a.store, "s", 100, pending("1"), pending("2"), pending("3"))
    poll(a.store, "s", 200, done("3", 150.0))
    assert a.store.forget_final("s", older_than=250.0, now=7200.0) == 1
    await a.store.flush("s")
    return a


async def inbox_of(redis: Redis) -> set[str]:
    return {str(i) for i in await redis.smembers(KEYS.unit("s").inbox)}


async def test_a_push_queues_only_ids_not_tracked_forgotten_or_queued(
    redis_server: RedisServer, config: tuple[TaskSetConfig, IdSyntax]
) -> None:
    task_set, syntax = config
    redis = client(redis_server)
    await holder_with_history(redis)
    assert await inbox.push(redis, KEYS, task_set, ["1", "3", "4", "4", "5"], syntax) == 2
    assert await inbox_of(redis) == {"4", "5"}
    assert await inbox.push(redis, KEYS, task_set, ["2", "5", "6"], syntax) == 1
    assert await inbox_of(redis) == {"4", "5", "6"}
    assert await inbox.push(redis, KEYS, task_set, ["1", "2", "3", "4", "5", "6"], syntax) == 0
    assert await inbox_of(redis) == {"4", "5", "6"}


async def test_a_bad_id_refuses_the_whole_push(
    redis_server: RedisServer, config: tuple[TaskSetConfig, IdSyntax]
) -> None:
    task_set, syntax = config
    redis = client(redis_server)
    with pytest.raises(Refused) as refused:
        await inbox.push(redis, KEYS, task_set, ["7", "not-a-number", "8"], syntax)
    assert refused.value.status == 400 and refused.value.counted == "malformed"
    assert "not-a-number" in refused.value.reason and "positive integer" in refused.value.reason
    assert await redis.keys("*") == []  # not even the good IDs of it


async def test_a_push_past_max_tasks_is_refused_whole(
    redis_server: RedisServer, config: tuple[TaskSetConfig, IdSyntax]
) -> None:
    task_set, syntax = config
    redis = client(redis_server)
    await holder_with_history(redis)  # 2 tracked; the tombstone does not count
    assert await inbox.push(redis, KEYS, task_set, ["10", "11", "12"], syntax) == 3
    fill = [str(i) for i in range(20, 20 + MAX_TASKS - 5)]
    assert await inbox.push(redis, KEYS, task_set, [*fill, "1", "10"], syntax) == len(fill)  # exactly at the cap
    before = await inbox_of(redis)
    with pytest.raises(Refused) as refused:
        await inbox.push(redis, KEYS, task_set, ["99", "1"], syntax)
    assert refused.value.status == 413 and refused.value.counted == "max_tasks"
    assert "10 are tracked or waiting" in refused.value.reason
    assert await inbox_of(redis) == before
    assert await inbox.push(redis, KEYS, task_set, ["1", "3", "10"], syntax) == 0  # nothing new: not refused


async def test_taken_ids_leave_the_inbox_only_with_the_next_successful_save(
    redis_server: RedisServer, config: tuple[TaskSetConfig, IdSyntax]
) -> None:
    task_set, syntax = config
    redis = client(redis_server)
    a = await holder_with_history(redis)
    await inbox.push(redis, KEYS, task_set, ["4", "5", "6"], syntax)
    taken = await a.sink.take_inbox("s", 2)
    assert len(taken) == 2 and set(taken) <= {"4", "5", "6"}
    a.store.track("s", taken, 300.0)
    assert await inbox_of(redis) == {"4", "5", "6"}  # taken, not kept yet: a crash here loses nothing
    await inbox.push(redis, KEYS, task_set, ["7"], syntax)  # pushed after the take
    await a.store.flush("s")
    (left,) = {"4", "5", "6"} - set(taken)
    assert await inbox_of(redis) == {left, "7"}
    rows = (await snapshot(redis, "s"))["rows"]
    assert set(taken) <= set(rows) and left not in rows

    # Taken by a replica whose lease was then taken over: its refused save keeps them in the inbox.
    taken = await a.sink.take_inbox("s", 100)
    assert set(taken) == {left, "7"}
    a.store.track("s", taken, 400.0)
    await redis.delete(KEYS.unit("s").lease)  # as if it lapsed
    assert await leases(redis, "b").acquire("s", "token-b")
    with pytest.raises(StoreUnavailable):
        await a.store.flush("s")
    assert await inbox_of(redis) == {left, "7"}

    b = Replica(redis, {"s": "token-b"})
    await b.open("s")
    b.store.track("s", await b.sink.take_inbox("s", 100), 500.0)
    await b.store.flush("s")
    assert await inbox_of(redis) == set()
    assert set((await snapshot(redis, "s"))["rows"]) == {"1", "2", "4", "5", "6", "7"}
