"""A partitioned set in one process: each partition polls its own IDs, series carry the
partition, pushes go to the partition of each ID, and discovery cannot be partitioned."""

from __future__ import annotations

from collections import Counter

import pytest

from exporter.core import config as config_mod
from exporter.core import partitions
from exporter.core.errors import ConfigError
from exporter.providers import PROVIDERS


def raw(yandex, ids, **task_set):
    account = {"provider": "yandex_direct", "endpoint": yandex.url, "token": {"env": "YANDEX_TEST_TOKEN"}}
    return {
        "accounts": {"y": account},
        "task_sets": [{"name": "big", "account": "y", "tasks": {"ids": ids}, "interval": 60, **task_set}],
    }


def test_partition_of_an_id_is_stable_and_spreads() -> None:
    ids = [f"task-{i}" for i in range(3000)]
    spread = Counter(partitions.partition_of(i, 3) for i in ids)
    assert set(spread) == {0, 1, 2} and min(spread.values()) > 800
    assert partitions.partition_of("task-7", 3) == partitions.partition_of("task-7", 3)
    assert partitions.partition_of("anything", 1) == 0


async def test_each_partition_polls_its_own_ids_and_series_carry_the_partition(yandex, harness, clock) -> None:
    ids = [yandex.add_task(duration=5, fails=i % 4 == 0).task_id for i in range(40)]
    h = harness(raw(yandex, ids, partitions=3))
    assert sorted(r.config.name for r in h.scheduler.runners) == ["big/0", "big/1", "big/2"]
    for r in h.scheduler.runners:
        await r.poll_once()
    clock.advance(10)
    for r in h.scheduler.runners:
        await r.poll_once()
    expected = Counter(partitions.partition_of(i, 3) for i in ids)
    for p in range(3):
        tasks = h.value("upload_tasks", task_set="big", partition=str(p), state="done")
        failed = h.value("upload_tasks", task_set="big", partition=str(p), state="error") or 0
        assert tasks is not None and tasks + failed == expected[p]
        assert h.value("upload_poll_up", task_set="big", partition=str(p)) == 1
    done = sum(h.value("upload_tasks_completed_total", task_set="big", partition=str(p)) or 0 for p in range(3))
    assert done == 30  # each transition counted once, in its own partition
    asked = [set(call.ids) for call in yandex.calls]
    for r in h.scheduler.runners:
        mine = {i for i in ids if partitions.partition_of(i, 3) == r.config.partition}
        assert any(a == mine for a in asked), f"{r.config.name} did not ask for exactly its own IDs"


def test_an_unpartitioned_set_has_no_partition_label(yandex, harness) -> None:
    h = harness(raw(yandex, ["1"]))
    assert [r.config.name for r in h.scheduler.runners] == ["big"]
    assert 'partition="' not in h.metrics()


@pytest.mark.parametrize(
    ("task_set", "expected"),
    [
        ({"partitions": 0}, "task_sets[0].partitions"),
        ({"partitions": 1000}, "task_sets[0].partitions"),
        ({"partitions": 2, "tasks": {"discover": True}}, "every partition would list every task"),
        ({"labels": {"partition": "x"}}, "task_sets[0].labels.partition"),
    ],
)
def test_bad_partition_settings_are_config_errors(yandex, task_set, expected) -> None:
    with pytest.raises(ConfigError) as err:
        config_mod.parse(raw(yandex, ["1"], **task_set), PROVIDERS, "test.yaml")
    assert expected in str(err.value)
