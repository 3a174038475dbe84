"""The shared state in a real Redis (cluster.store.RedisSink under a StateStore): saves are
fenced by the lease, a transition two replicas report is counted once, and a large set
restores exactly, page by page."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from exporter.core import ledger, state
from exporter.core.errors import StoreUnavailable
from exporter.core.model import PollOutcome, Tally, TaskStatus
from tests.cluster_state import (
    KEYS,
    D,
    E,
    N,
    P,
    Replica,
    client,
    counted,
    done,
    failed,
    leases,
    pending,
    poll,
    snapshot,
    view,
    wrap_rows,
)
from tests.redis_server import RedisServer


async def lapse(redis: Redis, name: str) -> None:
    """The set's lease runs out, as when its holder stopped renewing it."""
    lease = KEYS.unit(name).lease
    await redis.pexpire(lease, 1)
    for _ in range(250):
        if not await redis.exists(lease):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the lease did not lapse within 5 s")


async def test_a_save_after_the_lease_was_taken_over_writes_nothing_and_says_so(redis_server: RedisServer) -> None:
    redis = client(redis_server)
    a = Replica(redis, {"s": "token-a"})
    assert await leases(redis, "a").acquire("s", "token-a")
    st = await a.open("s")
    a.store.track("s", ["0", "1", "2", "3", "4"], 100.0)
    poll(a.store, "s", 100, done("0", 90.0), *(pending(i) for i in "1234"))  # 0: history, not counted
    a.store.forget_final("s", older_than=150.0, now=3600.0)  # 0 tombstoned
    await a.store.flush("s")
    poll(a.store, "s", 160, done("1", 150.0))
    await a.store.flush("s")  # lands: a holds the lease
    saved = await snapshot(redis, "s")
    assert sorted(saved["rows"]) == ["1", "2", "3", "4"] and saved["rows"]["1"].startswith('["done"')
    assert saved["counters"][ledger.COMPLETED] == "1" and saved["tombstones"] == {"0": "done 1"}
    assert a.lost == []

    await lapse(redis, "s")
    assert await leases(redis, "b").acquire("s", "token-b")
    # a goes on as if it still held the set: rows, transitions, tombstones made and expired.
    poll(a.store, "s", 220, done("2", 210.0), failed("3", "E1", 215.0), pending("4", progress=0.5))
    a.store.track("s", ["5"], 220.0)
    a.store.forget_final("s", older_than=200.0, now=7200.0)  # 1 tombstoned
    assert st.tombstones.expire(["0"], (), 7200.0) == 1
    assert st.dirty and st.counted and st.tombstones.made and st.tombstones.expired  # something to write in each step
    assert not st.whole_when_many  # Redis: a poll's changes are listed, however many
    with pytest.raises(StoreUnavailable, match="held by another replica"):
        await a.store.flush("s")
    assert await snapshot(redis, "s") == saved
    # Saves without task rows are fenced as well: tombstones alone, then the aggregates alone.
    assert a.store.forget_final("s", older_than=300.0, now=10800.0) == 2  # 2 and 3
    with pytest.raises(StoreUnavailable, match="held by another replica"):
        await a.store.flush("s")
    a.store.apply_poll("s", PollOutcome(started=400.0, duration=0.5, results=[], requests={("ok", None): 3}))
    with pytest.raises(StoreUnavailable, match="held by another replica"):
        await a.store.flush("s")
    assert await snapshot(redis, "s") == saved
    assert a.lost == [("s", "its lease is held by another replica")] * 3
    assert await redis.get(KEYS.unit("s").lease) == "token-b"

    # The new holder restores what a saved under its lease, and saves under its own.
    b = Replica(redis, {"s": "token-b"})
    sb = await b.open("s")
    assert sorted(sb.tasks) == ["1", "2", "3", "4"] and sb.completed_total == 1 and dict(sb.failed_total) == {}
    poll(b.store, "s", 230, done("2", 210.0))
    await b.store.flush("s")
    assert (await snapshot(redis, "s"))["counters"][ledger.COMPLETED] == "2"
    assert b.lost == []


async def test_a_replica_that_holds_no_lease_saves_nothing(redis_server: RedisServer) -> None:
    redis = client(redis_server)
    a = Replica(redis)  # its token function says it holds nothing
    await a.open("s")
    a.store.track("s", ["1"], 100.0)
    poll(a.store, "s", 100, done("1", 90.0))
    with pytest.raises(StoreUnavailable, match="does not hold"):
        await a.store.flush("s")
    assert await redis.keys("*") == []
    assert a.lost == [("s", "this replica does not hold the set")]


async def test_a_transition_two_replicas_report_is_counted_once(redis_server: RedisServer) -> None:
    redis = client(redis_server)
    tokens = {"s": "shared"}  # both pass the lease check: only the check of the prior state is left
    assert await leases(redis, "r").acquire("s", "shared")
    a, b = Replica(redis, tokens), Replica(redis, tokens)
    ids = ["1", "2", "3", "4", "5"]
    sa = await a.open("s")
    a.store.track("s", ids, 100.0)
    poll(a.store, "s", 100, *(pending(i) for i in ids))
    await a.store.flush("s")
    sb = await b.open("s")
    assert sb.by_state[P] == 5 and sb.restored

    final = (
        done("1", 150.0),
        TaskStatus("2", D, "Done", created=20.0, finished=140.0, tallies=(Tally("bytes", 10.0),)),
        failed("3", "E1", 140.0),
        failed("4", "E2", 5000.0),  # past the largest bucket
    )
    poll(a.store, "s", 160, *final)
    poll(b.store, "s", 170, *final, done("5", 165.0))  # only b sees 5 finish
    assert sb.completed_total == sa.completed_total + 1 and sb.failed_total == sa.failed_total
    await a.store.flush("s")
    after_a = await snapshot(redis, "s")
    totals = {field: float(v) for field, v in after_a["counters"].items()}
    assert ledger.to_aggregates(totals, (D, E)) == counted(sa)

    with pytest.raises(StoreUnavailable, match="4 tasks were already final"):
        await b.store.flush("s")
    assert b.lost == [("s", "4 tasks were already final in the shared state")]
    after_b = await snapshot(redis, "s")
    moved = {f: float(v) - float(after_a["counters"].get(f, 0)) for f, v in after_b["counters"].items()}
    assert {f: d for f, d in moved.items() if d} == dict(ledger.increments(D, "", (), 165.0 - 10.0))  # 5's alone

    c = Replica(redis, tokens)
    sc = await c.open("s")
    assert sc.completed_total == 3 and dict(sc.failed_total) == {"E1": 1, "E2": 1}
    assert dict(sc.tallies) == {("bytes", ""): 10.0}
    assert counted(sc) == counted(sb)  # b's own count was right: a and b each saw one task b alone saw
    assert sc.durations[D].count == 3 and sc.durations[E].count == 2
    assert sc.durations[D].total == (150.0 - 10.0) + (140.0 - 20.0) + (165.0 - 10.0)
    assert sc.by_state == {P: 0, D: 3, E: 2, N: 0}


async def test_a_large_set_restores_page_by_page_exactly(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state, "RESTORE_PAGE", 700)
    monkeypatch.setattr(state, "RESTORE_CHUNK", 300)
    redis = client(redis_server)
    tokens = {"s": "tok"}
    assert await leases(redis, "r").acquire("s", "tok")
    a = Replica(redis, tokens)
    sa = await a.open("s")
    ids = [f"t{i:05d}" for i in range(5000)]
    a.store.track("s", ids, 100.0)
    poll(a.store, "s", 100, *(pending(t, progress=(i % 10) / 10, eta=float(i)) for i, t in enumerate(ids)))
    await a.store.flush("s")

    def at_200(i: int, task_id: str) -> TaskStatus:
        kind = i % 6
        if kind == 0:
            return done(task_id, 150.0 + i % 97)
        if kind == 1:
            return failed(task_id, "E1" if i % 4 == 1 else "E2", 160.0)
        if kind == 2:
            return TaskStatus(task_id, N, "missing")
        if kind == 3:
            return TaskStatus(task_id, P, "Queued", progress=0.25, eta_seconds=30.0, not_before=400.0)
        return pending(task_id)

    poll(a.store, "s", 200, *(at_200(i, t) for i, t in enumerate(ids)))
    await a.store.flush("s")
    late = [(i, t) for i, t in enumerate(ids) if i % 6 >= 4 and i < 1500]  # final at 300: still tracked after
    poll(a.store, "s", 300, *(done(t, 290.0) if i % 6 == 4 else failed(t, "E2", 295.0) for i, t in late))
    assert a.store.forget_final("s", older_than=250.0, now=7200.0) > 2000  # final ones not seen since 200
    a.store.track("s", [f"n{i}" for i in range(40)], 7000.0)  # tracked, never polled
    await a.store.flush("s")
    assert len(sa.tombstones) > 2000 and len(sa.tasks) > 2000
    assert await redis.hlen(KEYS.unit("s").rows) == len(sa.tasks)
    assert await redis.hlen(KEYS.unit("s").tombstones) == len(sa.tombstones)

    c = Replica(redis, tokens)
    pages: list[tuple[str, int]] = []
    monkeypatch.setattr(c.sink, "rows", wrap_rows(c.sink, pages))
    sc = await c.open("s")
    assert sc.restored
    assert len(pages) >= 4 and pages[-1][1] == 0, pages  # several pages, then the end of the scan
    assert sum(n for _, n in pages) >= len(sa.tasks)
    assert view(sc) == view(sa)
    assert sc.completed_total == sa.completed_total and sc.failed_total == sa.failed_total
    assert c.store.track("s", ids, 8000.0) == 0  # every ID tracked or forgotten
