"""A one-shot copy of a SQLite state file into Redis, for moving one process to replicas.

Each set in the file is copied under a lease of its own, so a running replica and the
import never write one set at once; a set that Redis already has is left alone (the
import says so and can be run again after its keys are deleted).
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from exporter.cluster.keys import ClusterKeys
from exporter.cluster.leases import Leases
from exporter.cluster.store import RedisSink, unavailable
from exporter.core import ledger
from exporter.core.errors import StateFileError, StoreUnavailable
from exporter.core.persist import StateFile
from exporter.core.sink import RowGroup, SetChanges, alike

log = logging.getLogger(__name__)

PAGE = 5_000
LOG_ENTRIES = 50  # groups of tasks read from the file's log at a time


def saved_sets(path: str) -> list[tuple[str, str]]:
    """(set, provider) of every set in the state file."""
    try:
        with sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True) as db:
            return [(str(n), str(p)) for n, p in db.execute("SELECT task_set, provider FROM sets ORDER BY task_set")]
    except sqlite3.Error as err:
        raise StateFileError(f"state file {path} cannot be read ({err}); nothing was imported") from None


async def import_file(path: str, redis: Redis, keys: ClusterKeys) -> dict[str, int]:
    """Copy every set of the file that Redis does not have yet; returns set -> tasks copied."""
    sets = saved_sets(path)
    source = StateFile(path)
    leases = Leases(redis, keys, "import", "", ttl=60.0)
    copied: dict[str, int] = {}
    try:
        for name, provider in sets:
            k = keys.unit(name)
            token = secrets.token_hex(16)
            try:
                if await redis.exists(k.aggregates, k.rows):
                    log.warning("set %s is already in Redis: left alone", name)
                    continue
                if not await leases.acquire(name, token):
                    log.warning("set %s is held by a running replica: left alone (stop the replicas first)", name)
                    continue
            except RedisError as err:
                raise unavailable(err, f"importing set {name}") from None
            try:
                copied[name] = await _copy(source, redis, keys, name, provider, token)
            finally:
                with contextlib.suppress(RedisError):  # Redis gone: the lease lapses on its own
                    await leases.release(name, token)
    finally:
        await source.close()
    return copied


async def _copy(source: StateFile, redis: Redis, keys: ClusterKeys, name: str, provider: str, token: str) -> int:
    saved = await source.load(name, provider)
    if saved is None:
        return 0
    sink = RedisSink(redis, keys, lambda unit: token)
    rows = await _saved_rows(source, name)

    async def pages() -> AsyncIterator[list[RowGroup]]:
        for start in range(0, len(rows), PAGE):
            yield alike((values, [task_id]) for task_id, values in rows[start : start + PAGE])

    aggregates = json.dumps(saved.aggregates)
    changes = SetChanges(name, provider, aggregates, buried=list(saved.tombstones))
    try:
        counters: dict[Any, Any] = ledger.from_aggregates(saved.aggregates)
        await redis.hset(keys.unit(name).counters, mapping=counters)
        await sink.save(changes, pages())
    except (RedisError, StoreUnavailable) as err:
        failed = unavailable(err, f"importing set {name}") if isinstance(err, RedisError) else err
        raise StoreUnavailable(
            f"{failed}; set {name} is partly imported: delete its keys ({keys.unit(name).rows.rsplit(':', 1)[0]}:*) "
            "and import again"
        ) from None
    return len(rows)


async def _saved_rows(source: StateFile, name: str) -> list[tuple[str, tuple[Any, ...]]]:
    """The set's tasks as saved: (ID, FIELDS' values with the state as its value). The file keeps
    them as rows followed by groups saved later (see persist.SCHEMA): they are merged here, in
    memory, as a restore does."""
    saved: dict[str, tuple[Any, ...]] = {}
    after = ""
    while page := await source.rows(name, after, PAGE):
        after = page[-1][0]
        saved.update((task_id, (state.value, *rest)) for task_id, state, *rest in page)
    seq = 0
    while entries := await source.log(name, seq, LOG_ENTRIES):
        seq = entries[-1][0]
        for _, values, ids in entries:
            if values is None:
                for task_id in ids:
                    saved.pop(task_id, None)
            else:
                saved.update(dict.fromkeys(ids, (values[0].value, *values[1:])))
    return list(saved.items())
