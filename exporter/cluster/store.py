"""A unit's state in Redis, written only under its lease.

Every write is a script that first checks the unit's lease still holds this replica's
token, so a replica that lost its lease (paused, cut off) cannot write over the one that
took the unit over. A changed task's row is written with the counters its transition
moves, and those move only when the row Redis holds says the task was not final yet: a
transition is counted once, in the step that checks it, whichever replica reports it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from exporter.cluster.keys import ClusterKeys
from exporter.core import ledger
from exporter.core.errors import StateFileError, StoreUnavailable
from exporter.core.model import TaskState
from exporter.core.sink import LogEntry, RowGroup, SavedSet, SetChanges

log = logging.getLogger(__name__)

CHUNK = 2_000  # rows or tombstones a script writes at a time

# KEYS: lease, rows, counters. ARGV: token, then per task: ID, row, n, n pairs of (field, amount).
SAVE_ROWS = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local conflicts, i = 0, 2
while i <= #ARGV do
  local id, row, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if n > 0 then
    local old = redis.call('HGET', KEYS[2], id)
    if old and not string.find(old, '^%["pending"') then
      conflicts = conflicts + 1
    else
      for j = 0, n - 1 do
        redis.call('HINCRBYFLOAT', KEYS[3], ARGV[i + 3 + 2 * j], ARGV[i + 4 + 2 * j])
      end
    end
  end
  redis.call('HSET', KEYS[2], id, row)
  i = i + 3 + 2 * n
end
return conflicts
"""
# KEYS: lease, rows, tombstones. ARGV: token, then (ID, "state hour") to bury.
BURY = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
for i = 2, #ARGV, 2 do
  redis.call('HDEL', KEYS[2], ARGV[i])
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
end
return 0
"""
# KEYS: lease, aggregates, tombstones, inbox. ARGV: token, provider, aggregates, n, n IDs to
# unbury, then IDs taken from the inbox.
FINISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[2], 'provider', ARGV[2], 'aggregates', ARGV[3])
local n = tonumber(ARGV[4])
for i = 5, 4 + n do redis.call('HDEL', KEYS[3], ARGV[i]) end
for i = 5 + n, #ARGV do redis.call('SREM', KEYS[4], ARGV[i]) end
return 0
"""


def unavailable(err: RedisError, doing: str) -> StoreUnavailable:
    """The error to raise for a Redis failure: the kind of failure, never an address or password."""
    return StoreUnavailable(f"Redis failed while {doing}: {type(err).__name__}")


class RedisSink:
    """The StateSink of a replica: each set (unit) it holds, saved under that unit's lease."""

    counts_transitions = True  # each transition's increments are applied where its prior state is checked
    whole_saves_cheap = False  # every task's field written: a poll's changes are listed, however many

    def __init__(
        self,
        redis: Redis,
        keys: ClusterKeys,
        token: Callable[[str], str | None],
        *,
        lost: Callable[[str, str], None] = lambda unit, why: None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.token = token  # the lease token this replica holds on a unit, if it holds one
        self.lost = lost  # told when a save is refused: the unit and why
        self._cursors: dict[tuple[str, str], int] = {}  # (unit, last ID read) -> HSCAN cursor
        self._taken: dict[str, set[str]] = {}  # unit -> IDs taken from its inbox, not yet saved
        self._save_rows = redis.register_script(SAVE_ROWS)
        self._bury = redis.register_script(BURY)
        self._finish = redis.register_script(FINISH)

    # -- reading ----------------------------------------------------------------------------
    async def load(self, name: str, provider: str) -> SavedSet | None:
        k = self.keys.unit(name)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(k.aggregates)
                pipe.hgetall(k.counters)
                pipe.hgetall(k.tombstones)
                saved, counters, graves = await pipe.execute()
        except RedisError as err:
            raise unavailable(err, f"loading set {name}") from None
        if not saved or saved.get("provider") != provider:
            return None
        try:
            aggregates = json.loads(saved["aggregates"])
            if not isinstance(aggregates, dict):
                raise ValueError("not a JSON object")
            totals = {field: float(v) for field, v in counters.items()}
            aggregates.update(ledger.to_aggregates(totals, (TaskState.DONE, TaskState.ERROR)))
            tombstones = [(tid, TaskState(st), int(hour)) for tid, (st, hour) in _split(graves)]
        except (KeyError, ValueError, TypeError) as err:
            raise self.damaged(err, f"the aggregates of set {name}") from None
        return SavedSet(aggregates, tombstones)

    async def rows(self, name: str, after: str, limit: int) -> list[tuple[Any, ...]]:
        """A page of the unit's rows; `after` is the last ID of the page before (HSCAN order)."""
        cursor = 0 if not after else self._cursors.pop((name, after), 0)
        if after and cursor == 0:
            return []  # the scan is complete
        try:
            cursor, page = await self.redis.hscan(self.keys.unit(name).rows, cursor, count=limit)
        except RedisError as err:
            raise unavailable(err, f"loading the tasks of set {name}") from None
        try:
            out = _rows(page)
        except (ValueError, TypeError) as err:
            raise self.damaged(err, f"the tasks of set {name}") from None
        if out and cursor:
            self._cursors[(name, out[-1][0])] = cursor
        elif not out and cursor:  # an empty step of the scan: go on from where it is
            return await self._rows_from(name, cursor, limit)
        return out

    async def _rows_from(self, name: str, cursor: int, limit: int) -> list[tuple[Any, ...]]:
        for _ in range(1000):  # HSCAN may return empty steps; bounded
            try:
                cursor, page = await self.redis.hscan(self.keys.unit(name).rows, cursor, count=limit)
            except RedisError as err:
                raise unavailable(err, f"loading the tasks of set {name}") from None
            if page:
                out = _rows(page)
                if cursor:
                    self._cursors[(name, out[-1][0])] = cursor
                return out
            if not cursor:
                return []
        return []

    async def log(self, name: str, after: int, limit: int) -> list[LogEntry]:
        return []  # each task is one field of the unit's rows, updated where it is

    def rewrite_due(self, name: str, tracked: int) -> bool:
        return False

    def forget(self, name: str) -> None:
        """Drop what this replica remembered of a unit it held before (it holds it afresh)."""
        self._taken.pop(name, None)
        for key in [k for k in self._cursors if k[0] == name]:
            del self._cursors[key]

    # -- the inbox of pushed IDs ------------------------------------------------------------
    async def take_inbox(self, name: str, limit: int) -> list[str]:
        """Up to `limit` IDs pushed to the unit through any replica; they leave the inbox with
        the save that keeps them, so none is lost if this replica dies first."""
        try:
            _, ids = await self.redis.sscan(self.keys.unit(name).inbox, 0, count=limit)
        except RedisError as err:
            raise unavailable(err, f"reading the pushed IDs of set {name}") from None
        taken = [str(i) for i in ids[:limit]]
        self._taken.setdefault(name, set()).update(taken)
        return taken

    # -- writing ----------------------------------------------------------------------------
    async def save(self, changes: SetChanges, rows: AsyncIterator[Sequence[RowGroup]]) -> None:
        name = changes.name
        k = self.keys.unit(name)
        token = self.token(name)
        if token is None:
            raise self._refused(name, "this replica does not hold the set")
        try:
            conflicts = 0
            async for chunk in rows:
                args: list[Any] = [token]
                for values, ids in chunk:
                    row = json.dumps(values)
                    for task_id in ids:
                        counted = changes.counted.get(task_id, ())
                        args += [task_id, row, len(counted)]
                        for field, amount in counted:
                            args += [field, amount]
                conflicts += self._checked(await self._save_rows(keys=[k.lease, k.rows, k.counters], args=args), name)
            for start in range(0, len(changes.buried), CHUNK):
                args = [token]
                for task_id, state, hour in changes.buried[start : start + CHUNK]:
                    args += [task_id, f"{state.value} {hour}"]
                self._checked(await self._bury(keys=[k.lease, k.rows, k.tombstones], args=args), name)
            taken = self._taken.pop(name, set())
            args = [token, changes.provider, changes.aggregates, len(changes.unburied), *changes.unburied, *taken]
            self._checked(await self._finish(keys=[k.lease, k.aggregates, k.tombstones, k.inbox], args=args), name)
        except RedisError as err:
            raise unavailable(err, f"saving set {name}") from None
        if conflicts:
            # Another replica already counted these tasks' transitions: ours were not counted
            # again, and this replica's view of the set is stale.
            raise self._refused(name, f"{conflicts} tasks were already final in the shared state")

    def _checked(self, result: int, name: str) -> int:
        if result < 0:
            raise self._refused(name, "its lease is held by another replica")
        return result

    def _refused(self, name: str, why: str) -> StoreUnavailable:
        self.lost(name, why)
        return StoreUnavailable(f"the save of set {name} was refused: {why}")

    async def drop_sets_except(self, keep: Collection[str]) -> None:
        """Sets this replica no longer runs may be another replica's: their keys stay."""

    async def close(self) -> None:
        """The connection belongs to the cluster, which closes it."""

    def damaged(self, err: Exception, what: str = "") -> Exception:
        detail = f"{what}: " if what else ""
        return StateFileError(
            f"the shared state in Redis cannot be used ({detail}{err.__class__.__name__}: {str(err)[:200]}); "
            "delete the set's keys (it then starts afresh) or restore a backup"
        )


def _rows(page: Any) -> list[tuple[Any, ...]]:
    """Rows as the store loads them (task_id, then FIELDS with the state as a TaskState)."""
    out = []
    for task_id, value in page.items():
        values = json.loads(value)
        if not isinstance(values, list) or not values:
            raise ValueError("not a task row")
        values[0] = TaskState(values[0])
        out.append((task_id, *values))
    return out


def _split(graves: Any) -> list[tuple[str, tuple[str, str]]]:
    out = []
    for task_id, value in graves.items():
        state, hour = value.split(" ")
        out.append((task_id, (state, hour)))
    return out
