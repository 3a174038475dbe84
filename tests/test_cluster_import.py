"""`--state.import-file`: a SQLite state file copied into a real Redis by the CLI, restored
from there as it was saved; a set Redis has, or one a running replica holds, is left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from exporter.cluster import importer
from exporter.core.errors import StoreUnavailable
from exporter.core.model import TaskStatus
from exporter.core.persist import StateFile
from exporter.core.state import StateStore
from tests.cluster_state import (
    KEYS,
    PROVIDER,
    VOCAB,
    N,
    Replica,
    client,
    done,
    failed,
    leases,
    pending,
    poll,
    snapshot,
    view,
)
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
RUN_SECONDS = 60.0  # python start-up and the copy, on a busy 2-core machine
TASKS = 1200


async def make_state_file(path: Path) -> None:
    """Two sets as one process would leave them: tasks in every state, counters, tombstones."""
    store = StateStore(StateFile(path))
    ids = [str(i) for i in range(1, TASKS + 1)]
    for name in ("s", "t"):
        store.ensure_set(name, PROVIDER, VOCAB)
        store.track(name, ids, 100.0)
        poll(store, name, 100, *(pending(i, progress=0.5) for i in ids))

        def at_200(i: int, task_id: str) -> TaskStatus:
            return [done(task_id, 150.0), failed(task_id, f"E{i % 2 + 1}", 190.0), TaskStatus(task_id, N, "missing")][
                i % 3
            ]

        await store.flush(name)  # each step saved on its own: the file's log holds them in turn
        poll(store, name, 200, *(at_200(i, t) for i, t in enumerate(ids) if i % 4))
        await store.flush(name)
        store.forget_final(name, older_than=250.0, now=7200.0)
        await store.flush(name)
        poll(store, name, 7300, *(done(t, 7250.0) for t in ids[::4][:100]))  # final, still tracked
        store.track(name, ["9000"], 7300.0)
    await store.close()


async def saved_view(path: Path, name: str) -> dict[str, Any]:
    """The set as a process restarted on the state file would see it."""
    store = StateStore(StateFile(path))
    st = store.ensure_set(name, PROVIDER, VOCAB)
    await store.restore(name)
    await store.close()
    return view(st)


def run_import(server: RedisServer, path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPLOAD_EXPORTER_")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            f"--state.redis-url={server.url}",
            f"--state.redis-key-prefix={KEYS.prefix}",
            f"--state.import-file={path}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
        check=False,
    )


async def test_an_imported_state_file_restores_from_redis_as_it_was_saved(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    path = tmp_path / "state.db"
    await make_state_file(path)
    expected = {name: await saved_view(path, name) for name in ("s", "t")}
    assert len(expected["s"]["tombstones"]) > 100 and expected["s"]["counted"]["completed_total"] > 100

    done_ = run_import(redis_server, path)
    assert done_.returncode == 0, done_.stderr
    tracked = len(expected["s"]["tasks"])
    assert done_.stdout.splitlines() == [f"imported set s: {tracked} tasks", f"imported set t: {tracked} tasks"]
    assert "Traceback" not in done_.stderr

    redis = client(redis_server)
    assert not await redis.exists(KEYS.unit("s").lease, KEYS.unit("t").lease)  # given back
    for name in ("s", "t"):
        replica = Replica(redis)
        st = await replica.open(name)
        assert st.restored
        assert view(st) == expected[name]

    # A second import leaves what Redis has alone, even after the holder moved it on.
    holder = Replica(redis, {"s": "token-a"})
    assert await leases(redis, "a").acquire("s", "token-a")
    await holder.open("s")
    poll(holder.store, "s", 7400, done("9000", 7390.0))
    await holder.store.flush("s")
    await redis.delete(KEYS.unit("s").lease)
    before = {name: await snapshot(redis, name) for name in ("s", "t")}
    again = run_import(redis_server, path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == ""
    assert again.stderr.count("is already in Redis: left alone") == 2, again.stderr
    assert {name: await snapshot(redis, name) for name in ("s", "t")} == before


async def test_a_set_a_running_replica_holds_is_not_imported(redis_server: RedisServer, tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    await make_state_file(path)
    redis = client(redis_server)
    assert await leases(redis, "running").acquire("s", "its-token")  # a replica took s, has saved nothing yet

    result = run_import(redis_server, path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"imported set t: {len((await saved_view(path, 't'))['tasks'])} tasks"]
    assert "set s is held by a running replica: left alone" in result.stderr
    assert await redis.keys(f"{{{KEYS.prefix}:u:s}}:*") == [KEYS.unit("s").lease]
    assert await redis.get(KEYS.unit("s").lease) == "its-token"  # its lease untouched
    assert await snapshot(redis, "s") == {
        "rows": {},
        "counters": {},
        "aggregates": {},
        "tombstones": {},
        "inbox": set(),
    }


async def test_redis_going_away_mid_import_is_one_error_not_a_crash(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.db"
    await make_state_file(path)
    monkeypatch.setattr(importer, "PAGE", 100)
    pages: list[int] = []
    group = importer.alike

    def alike(rows: Any) -> Any:
        pages.append(len(pages))
        if len(pages) == 2:  # the first page is copied: Redis dies before the second
            redis_server.kill()
        return group(rows)

    monkeypatch.setattr(importer, "alike", alike)
    with pytest.raises(StoreUnavailable, match="Redis failed while saving set s: ConnectionError"):
        await importer.import_file(str(path), client(redis_server), KEYS)


async def test_an_import_that_cannot_read_or_write_exits_1_with_one_line(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    missing = run_import(redis_server, tmp_path / "missing.db")
    assert missing.returncode == 1 and "cannot be read" in missing.stderr
    assert len(missing.stderr.splitlines()) == 1 and not (tmp_path / "missing.db").exists()
    path = tmp_path / "state.db"
    await make_state_file(path)
    redis_server.stop()
    down = run_import(redis_server, path)
    assert down.returncode == 1 and len(down.stderr.splitlines()) == 1, down.stderr
    assert "Redis failed while importing set s: ConnectionError" in down.stderr
    assert "127.0.0.1" not in down.stderr and "Traceback" not in down.stderr
