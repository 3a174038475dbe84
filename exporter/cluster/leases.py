"""Members and leases in Redis: heartbeats, rendezvous ownership, and leases that expire.

Each replica writes a heartbeat (an expiry on the server's clock, and its config hash) every
tick; a member whose heartbeat expired is dropped by whoever looks next. A unit's rightful
holder is the live member with the highest rendezvous score for it, so when members come or
go only the units of that member move. A lease is a key holding the holder's random token
with a TTL: it lapses on its own if the holder dies, and only the token's owner can renew
or release it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from redis.asyncio import Redis

from exporter.cluster.keys import ClusterKeys
from exporter.core.config import Config

# KEYS: members, configs. ARGV: replica ID, TTL (ms), config hash. Returns the live members'
# config hashes as a flat list.
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, id in ipairs(dead) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
return redis.call('HGETALL', KEYS[2])
"""
# KEYS: members, configs. ARGV: replica ID.
LEAVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 0
"""
# KEYS: lease. ARGV: token, TTL (ms). 1 when renewed.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS: lease. ARGV: token. 1 when released.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def score(member: str, unit: str) -> int:
    """The rendezvous score of a member for a unit: the highest live score holds the unit."""
    return int.from_bytes(hashlib.blake2b(f"{member}\0{unit}".encode(), digest_size=8).digest(), "big")


def rightful(members: Iterable[str], unit: str) -> str | None:
    """The member that should hold `unit`, or None with no member."""
    return max(members, key=lambda m: score(m, unit), default=None)


class Leases:
    """This replica's membership and its lease operations (every call may raise RedisError)."""

    def __init__(self, redis: Redis, keys: ClusterKeys, replica: str, config_hash: str, ttl: float) -> None:
        self.redis = redis
        self.keys = keys
        self.replica = replica
        self.config_hash = config_hash
        self.ttl_ms = int(ttl * 1000)
        self._heartbeat = redis.register_script(HEARTBEAT)
        self._leave = redis.register_script(LEAVE)
        self._renew = redis.register_script(RENEW)
        self._release = redis.register_script(RELEASE)

    async def heartbeat(self) -> dict[str, str]:
        """Say this replica is alive; returns the live members and their config hashes."""
        flat = await self._heartbeat(
            keys=[self.keys.members, self.keys.configs], args=[self.replica, self.ttl_ms, self.config_hash]
        )
        return dict(zip(flat[::2], flat[1::2], strict=True))

    async def leave(self) -> None:
        await self._leave(keys=[self.keys.members, self.keys.configs], args=[self.replica])

    async def acquire(self, unit: str, token: str) -> bool:
        return bool(await self.redis.set(self.keys.unit(unit).lease, token, nx=True, px=self.ttl_ms))

    async def renew(self, held: Mapping[str, str]) -> set[str]:
        """Renew the leases held (unit -> token); returns the units whose lease was renewed."""
        units = list(held)
        async with self.redis.pipeline(transaction=False) as pipe:
            for unit in units:
                await self._renew(keys=[self.keys.unit(unit).lease], args=[held[unit], self.ttl_ms], client=pipe)
            results = await pipe.execute()
        return {unit for unit, ok in zip(units, results, strict=True) if ok}

    async def release(self, unit: str, token: str) -> None:
        await self._release(keys=[self.keys.unit(unit).lease], args=[token])

    async def free(self, units: Sequence[str]) -> set[str]:
        """The units whose lease nobody holds."""
        if not units:
            return set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for unit in units:
                pipe.exists(self.keys.unit(unit).lease)
            results = await pipe.execute()
        return {unit for unit, held in zip(units, results, strict=True) if not held}


def config_hash(config: Config) -> str:
    """A short hash of the config file, to see replicas that run different configs."""
    try:
        data = Path(config.path).read_bytes()
    except OSError:
        data = repr(sorted(ts.name for ts in config.task_sets)).encode()
    return hashlib.sha256(data).hexdigest()[:12]
