"""Three replicas sharing one real Redis never double-poll, take over from a dead or paused
holder without counting anything twice, stop calling when Redis goes, and take pushes for
sets another replica holds. Real processes, a real redis-server, simulators on 127.0.0.1.
"""

from __future__ import annotations

import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.replicas import busiest_second
from tests.exporter_process import ExporterProcess, wait_for
from tests.fault_world import World
from tests.redis_server import RedisServer
from tests.replica_world import Replicas, calls

VOD = "aliyun_vod"
SETS = ("yandex_direct", "ipernity", "encoding_com", VOD)
TASKS = 60  # per set; VOD asks 10 a call: 6 calls a poll
SLACK = 4.0  # start-up, scheduling and a busy 2-core machine
PUSH_TOKEN = secrets.token_hex(16)


def task_set(name: str, account: str, ids: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "account": account,
        "interval": "1s",
        "max_tries": 2,
        "max_retry_time": "0.5s",
        "tasks": {"ids": ids, "push_token": {"env": "FT_PUSH_TOKEN"}},
        **extra,
    }


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    # Persistent, so a stopped and restarted Redis still has the shared state.
    server = RedisServer(tmp_path / "redis", extra_config={"appendonly": "yes", "appendfsync": "always"})
    (tmp_path / "redis").mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def world() -> Iterator[World]:
    w = World(SETS)
    try:
        yield w
    finally:
        w.close()


def make_config(world: World, finish_in: float = 8.0) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """One set per provider; tasks finish over `finish_in` seconds, every fourth fails."""
    ids = {
        p: world.add_tasks(p, [world.clock(p) + 2 + finish_in * i / TASKS for i in range(TASKS)], fail_every=4)
        for p in SETS
    }
    config = {
        "accounts": {p: world.account(p) for p in SETS},
        "task_sets": [task_set(f"set-{p}", p, ids[p]) for p in SETS],
    }
    return config, ids


def replicas(tmp_path: Path, world: World, config: dict[str, Any], redis: RedisServer, **kw: Any) -> Replicas:
    return Replicas(tmp_path, world, config, redis, env={"FT_PUSH_TOKEN": PUSH_TOKEN}, **kw)


def assert_truth(group: Replicas, world: World, ids: dict[str, list[str]]) -> None:
    """Summed over the replicas, every set's totals equal what its simulator reported: once each."""
    last = world.call(lambda: max(world.sims[p].tasks[i].finish_at for p in SETS for i in ids[p]))
    time.sleep(max(0.0, last - time.time()))  # every task has finished: the truth is final
    at = time.time()
    for p in SETS:
        truth = world.truth(p, ids[p], at)

        def settled(p: str = p, truth: Any = truth) -> bool:
            scrapes = group.scrapes()
            done = group.total("upload_tasks_completed_total", scrapes, task_set=f"set-{p}")
            failed = group.total("upload_tasks_failed_total", scrapes, task_set=f"set-{p}")
            assert done <= truth.done and failed <= truth.failed, f"{p} counted twice: {done}, {failed}, {truth}"
            return done == truth.done and failed == truth.failed

        wait_for(settled, 20.0, f"the totals of set-{p} to reach the simulator's truth\n{group.log_tails()}")


QUIET = 0.25  # seconds without a call to a set around a count of its polls: no poll of it under way


def polls_at_rest(exporters: list[ExporterProcess], world: World, provider: str) -> tuple[float, float]:
    """A moment no poll of the provider's set is under way, and the polls the exporters made of it by then."""

    def quiet() -> tuple[float, float] | None:
        at = time.time()
        scrapes = [e.scrape(3.0) for e in exporters]
        count = sum(m.value("upload_poll_duration_seconds_count", task_set=f"set-{provider}") for m in scrapes if m)
        time.sleep(QUIET)
        return (at, count) if not calls(world, provider, at - QUIET) else None

    return wait_for(quiet, 20.0, f"a moment without a poll of set-{provider}")


def calls_per_poll(exporters: list[ExporterProcess], world: World, seconds: float) -> dict[str, tuple[int, float]]:
    """Calls each simulator received and polls the exporters made of its set, over about `seconds`
    between two moments no poll of the set is under way (a poll is never cut in two)."""
    since = {p: polls_at_rest(exporters, world, p) for p in SETS}
    time.sleep(seconds)
    until = {p: polls_at_rest(exporters, world, p) for p in SETS}
    return {
        p: (len([t for t in calls(world, p, since[p][0]) if t < until[p][0]]), until[p][1] - since[p][1]) for p in SETS
    }


def test_each_set_is_polled_by_one_replica_and_calls_per_poll_equal_one_process(
    tmp_path: Path, world: World, redis: RedisServer
) -> None:
    config, _ = make_config(world, finish_in=600.0)  # pending all along
    alone = ExporterProcess(tmp_path, config, {**world.env, "FT_PUSH_TOKEN": PUSH_TOKEN}, name="alone")
    alone.start()
    try:
        wait_for(lambda: alone.get("/-/ready", 2.0)[0] == 200, 20.0, "the single process ready")
        one = calls_per_poll([alone], world, 6.0)
    finally:
        alone.stop()
    group = replicas(tmp_path, world, config, redis)
    group.start()
    try:
        for p in SETS:
            group.sole_holder(f"set-{p}", 20.0)
        time.sleep(2 * group.ttl)  # past the start-up hand-overs
        three = calls_per_poll(group.exporters, world, 6.0)
        after = group.scrapes()
    finally:
        group.stop()
    for p in SETS:
        name = f"set-{p}"
        assert len(group.holders(name, after)) == 1, f"{name} held by {group.holders(name, after)}"
        exporting = [m for m in after if m is not None and m.get("upload_poll_up", task_set=name) is not None]
        assert len(exporting) == 1, f"{name} exported by {len(exporting)} replicas"
        assert group.total("upload_tasks", after, task_set=name) == TASKS
        (calls_one, polls_one), (calls_three, polls_three) = one[p], three[p]
        assert polls_one >= 3 and polls_three >= 3, (one, three)
        if calls_one < 5:  # ipernity asks a ticket again only once its ETA passed: too few calls for a ratio
            assert calls_three <= calls_one + 1, f"{name}: {three[p]} (calls, polls) against {one[p]} alone"
            continue
        ratio = (calls_three / polls_three) / (calls_one / polls_one)
        assert 0.8 <= ratio <= 1.25, f"{name}: calls per poll x{ratio:.2f} of one process's: {one[p]} vs {three[p]}"


def test_sets_of_one_account_on_several_replicas_share_its_rate_cap(
    tmp_path: Path, world: World, redis: RedisServer
) -> None:
    cap, sets = 5, 6
    ids = [world.add_tasks(VOD, [world.clock(VOD) + 600.0] * TASKS) for _ in range(sets)]
    account = {**world.account(VOD), "rate_limit": cap}
    config = {
        "accounts": {VOD: account},
        "task_sets": [task_set(f"vod-{i}", VOD, ids[i]) for i in range(sets)],  # 36 calls a second asked for
    }
    group = replicas(tmp_path, world, config, redis)
    group.start()
    try:

        def spread() -> set[int] | None:
            scrapes = group.scrapes()
            held = [group.holders(f"vod-{i}", scrapes) for i in range(sets)]
            holders = {h[0] for h in held if len(h) == 1}
            return holders if all(len(h) == 1 for h in held) and len(holders) >= 2 else None

        # The first replica takes every set until the others' heartbeats arrive, then hands over.
        wait_for(spread, 20.0, "the sets spread over the replicas, one holder each")
        since = time.time()
        time.sleep(6.0)
        times = calls(world, VOD, since)
    finally:
        group.stop()
    assert busiest_second(times) <= cap, f"{busiest_second(times)} calls in one second, cap {cap}"
    assert len(times) >= 3 * 6, f"only {len(times)} calls in 6 s: the cap should be used"


def test_kill9_of_the_holder_mid_batch_is_taken_over_and_counts_each_transition_once(
    tmp_path: Path, world: World, redis: RedisServer
) -> None:
    config, ids = make_config(world, finish_in=20.0)
    config["accounts"][VOD]["rate_limit"] = 4  # a poll of 6 calls takes over a second: kills land mid-batch
    group = replicas(tmp_path, world, config, redis)
    group.start()
    name = f"set-{VOD}"
    try:
        for round_ in range(3):
            holder = group.sole_holder(name, 20.0)
            wait_for(lambda: calls(world, VOD, time.time() - 0.3), 10.0, "a VOD call in flight")
            group.exporters[holder].kill9()
            killed = time.monotonic()
            wait_for(
                lambda h=holder: (n := group.holders(name)) and n[0] != h and calls(world, VOD, time.time() - 0.5),
                group.ttl + 1.0 + SLACK,
                f"a take-over of {name} (round {round_ + 1})\n{group.log_tails()}",
            )
            took = time.monotonic() - killed
            assert took <= group.ttl + 1.0 + SLACK, took
            group.exporters[holder].start()  # back to three
        assert_truth(group, world, ids)
    finally:
        group.stop()


def test_a_paused_holder_is_fenced_off_and_counts_nothing_twice(
    tmp_path: Path, world: World, redis: RedisServer
) -> None:
    config, ids = make_config(world, finish_in=10.0)
    config["accounts"][VOD]["rate_limit"] = 4
    group = replicas(tmp_path, world, config, redis)
    group.start()
    name = f"set-{VOD}"
    try:
        holder = group.sole_holder(name, 20.0)
        wait_for(lambda: calls(world, VOD, time.time() - 0.3), 10.0, "a VOD call in flight")
        group.pause(holder)
        others = [e for i, e in enumerate(group.exporters) if i != holder]
        try:
            wait_for(
                lambda: [e for e in others if (m := e.scrape(2.0)) and m.value("upload_lease_held", task_set=name)],
                group.ttl + 1.0 + SLACK,
                "another replica to take the paused holder's set",
            )
            time.sleep(1.0)
        finally:
            group.resume(holder)
        paused = group.exporters[holder]
        wait_for(
            lambda: (m := paused.scrape(2.0)) is not None and m.value("upload_lease_lost_total", task_set=name) >= 1,
            group.ttl + SLACK,
            f"the paused holder to find its lease lost\n{paused.log_tail()}",
        )
        group.sole_holder(name, 3 * group.ttl)  # the rightful holder may take it back: one at a time
        assert_truth(group, world, ids)
    finally:
        group.stop()


def test_redis_down_stops_calls_and_readiness_and_both_come_back(
    tmp_path: Path, world: World, redis: RedisServer
) -> None:
    config, ids = make_config(world, finish_in=30.0)
    group = replicas(tmp_path, world, config, redis)
    group.start()
    try:
        for p in SETS:
            group.sole_holder(f"set-{p}", 20.0)
        wait_for(lambda: group.ready() == [200, 200, 200], 20.0, "every replica ready")
        tracked = group.total("upload_tasks")
        redis.stop()
        wait_for(lambda: group.ready() == [503, 503, 503], group.ttl + SLACK, "every replica not ready")
        quiet_from = time.time() + group.ttl  # polls stop within two thirds of the TTL
        time.sleep(group.ttl + 3.0)
        late = {p: calls(world, p, quiet_from) for p in SETS}
        assert not any(late.values()), f"calls while Redis was down: { {p: len(t) for p, t in late.items()} }"
        scrapes = group.scrapes()
        assert all(m is not None and m.value("upload_store_up") == 0 for m in scrapes)
        assert group.total("upload_tasks", scrapes) == tracked  # the last snapshot, still served
        assert all(e.running() for e in group.exporters)
        leaving = group.exporters[2]
        leaving.stop()  # a stop while Redis is away: clean, whatever it could not save
        assert leaving.proc is not None and leaving.proc.returncode == 0, leaving.log_tail()
        assert "Traceback" not in leaving.log_text()
        redis.start()
        wait_for(lambda: group.ready() == [200, 200], 3 * group.ttl + SLACK, "the replicas ready again")
        resumed = time.time()
        wait_for(lambda: all(calls(world, p, resumed) for p in SETS), 10.0, "polling to resume")
        assert_truth(group, world, ids)
    finally:
        group.stop()


def test_a_push_to_one_replica_is_polled_by_the_holder(tmp_path: Path, world: World, redis: RedisServer) -> None:
    config, _ = make_config(world, finish_in=600.0)
    group = replicas(tmp_path, world, config, redis)
    group.start()
    name = f"set-{VOD}"
    try:
        holder = group.settled_holder(name, 30.0)
        other: ExporterProcess = group.exporters[(holder + 1) % 3]
        pushed = world.add_tasks(VOD, [world.clock(VOD) + 600.0] * 3)
        status, body = other.push(name, pushed, PUSH_TOKEN)
        assert status == 200, (status, body)
        assert body["added"] == 3 and "tracked" not in body
        asked = time.time() - 0.5
        wait_for(
            lambda: any(set(pushed) & set(c.ids) for c in asked_since(world, asked)),
            10.0,
            "the holder to ask the simulator about the pushed IDs",
        )
        wait_for(lambda: group.total("upload_tasks", task_set=name) == TASKS + 3, 10.0, "the pushed IDs tracked")
        status, body = other.push(name, pushed, PUSH_TOKEN)
        assert status == 200 and body["added"] == 0, (status, body)  # already tracked: not added again
        status, body = other.push(name, ["not a job id!"], PUSH_TOKEN)
        assert status == 400, (status, body)
    finally:
        group.stop()


def asked_since(world: World, since: float) -> list[Any]:
    """The VOD simulator's calls (with the IDs each asked for) after `since`."""
    return [c for c in world.call(lambda: list(world.sims[VOD].calls)) if c.at > since]


def test_partitions_of_one_set_are_held_apart_and_add_up(tmp_path: Path, world: World, redis: RedisServer) -> None:
    finish = [world.clock(VOD) + 2 + 8.0 * i / TASKS for i in range(TASKS)]
    ids = world.add_tasks(VOD, finish, fail_every=4)
    config = {"accounts": {VOD: world.account(VOD)}, "task_sets": [task_set("big", VOD, ids, partitions=3)]}
    group = replicas(tmp_path, world, config, redis)
    group.start()
    try:
        for p in range(3):
            wait_for(
                lambda p=p: [
                    m for m in group.scrapes() if m and m.value("upload_lease_held", task_set="big", partition=str(p))
                ],
                20.0,
                f"a holder of partition {p}",
            )
        pushed = world.add_tasks(VOD, [world.clock(VOD) + 3.0] * 6)
        status, body = group.exporters[0].push("big", pushed, PUSH_TOKEN)
        assert status == 200 and body["added"] == 6, (status, body)
        everything = [*ids, *pushed]
        try:
            wait_for(lambda: group.total("upload_tasks", task_set="big") == len(everything), 20.0, "every ID tracked")
        except AssertionError:
            held = [
                {p: m.by_label("upload_tasks", "partition", task_set="big").get(p) for p in "012"} if m else None
                for m in group.scrapes()
            ]
            raise AssertionError(
                f"tracked per replica and partition: {held}; pushed {pushed}\n{group.log_tails()}"
            ) from None
        scrapes = group.scrapes()
        for p in range(3):
            assert (
                len([m for m in scrapes if m and m.value("upload_lease_held", task_set="big", partition=str(p))]) == 1
            )
        last = world.call(lambda: max(world.sims[VOD].tasks[i].finish_at for i in everything))
        time.sleep(max(0.0, last - time.time()))
        truth = world.truth(VOD, everything, time.time())
        wait_for(
            lambda: (
                group.total("upload_tasks_completed_total", task_set="big") == truth.done
                and group.total("upload_tasks_failed_total", task_set="big") == truth.failed
            ),
            20.0,
            f"the partitions' totals to add up to the truth {truth}",
        )
    finally:
        group.stop()


def test_a_reload_keeps_the_sets_a_replica_holds(tmp_path: Path, world: World, redis: RedisServer) -> None:
    config, _ = make_config(world, finish_in=600.0)
    group = replicas(tmp_path, world, config, redis)
    group.start()
    name = f"set-{VOD}"
    try:
        holder = group.settled_holder(name, 30.0)
        exporter = group.exporters[holder]
        since = exporter.log_size()
        assert exporter.proc is not None
        exporter.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "config reloaded" in exporter.log_text(since), 10.0, "the reload")
        asked = time.time()
        time.sleep(2 * group.ttl)
        assert group.holders(name) == [holder]
        assert "gave up task set" not in exporter.log_text(since), exporter.log_text(since)
        assert calls(world, VOD, asked), "the holder stopped polling after the reload"
    finally:
        group.stop()
