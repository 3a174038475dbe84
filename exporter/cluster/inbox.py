"""Pushes on any replica: pushed IDs wait in the unit's inbox in Redis for its holder.

An ID already tracked or forgotten (tombstoned) is not added; one not in the provider's
syntax refuses the push (400); a push that would take the set past `max_tasks` is refused
(413). The holder takes IDs from the inbox at its next poll, and they leave the inbox only
with the save that keeps them.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

from exporter.cluster.keys import ClusterKeys
from exporter.cluster.store import unavailable
from exporter.core.config import TaskSetConfig
from exporter.core.provider import IdSyntax
from exporter.core.push import Refused, check_syntax

CHUNK = 5_000


async def push(
    redis: Redis, keys: ClusterKeys, task_set: TaskSetConfig, ids: list[str], syntax: IdSyntax | None
) -> int:
    """Add the new IDs to the set's inbox; returns how many were new."""
    check_syntax(ids, syntax)
    k = keys.unit(task_set.name)
    unique = list(dict.fromkeys(ids))
    try:
        new: list[str] = []
        for start in range(0, len(unique), CHUNK):
            chunk = unique[start : start + CHUNK]
            async with redis.pipeline(transaction=False) as pipe:
                pipe.hmget(k.rows, chunk)
                pipe.hmget(k.tombstones, chunk)
                pipe.smismember(k.inbox, chunk)
                rows, graves, waiting = await pipe.execute()
            new += [
                i for i, r, g, w in zip(chunk, rows, graves, waiting, strict=True) if r is None and g is None and not w
            ]
        async with redis.pipeline(transaction=False) as pipe:
            pipe.hlen(k.rows)
            pipe.scard(k.inbox)
            tracked, queued = await pipe.execute()
        if tracked + queued + len(new) > task_set.max_tasks:
            raise Refused(
                413,
                f"task set {task_set.name!r} would track more than its max_tasks ({task_set.max_tasks:,}); "
                f"{tracked + queued:,} are tracked or waiting",
                "max_tasks",
            )
        for start in range(0, len(new), CHUNK):
            await redis.sadd(k.inbox, *new[start : start + CHUNK])
    except RedisError as err:
        raise unavailable(err, f"taking a push to set {task_set.name}") from None
    return len(new)
