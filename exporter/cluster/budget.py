"""Per-account pacing shared by replicas through Redis: one call budget however many run.

`SharedLimiter` is `core.ratelimit.AccountLimiter` with its rate state in Redis: concurrency
is still capped in this process, but the sliding window of call times, a server's
Retry-After hold and the halved-on-throttle rate live in three keys per account, changed
only by Lua scripts, so each decision is atomic and made on the Redis server's clock
(replicas with skewed clocks agree). The keys share a hash tag, so Redis Cluster works:
`{<prefix>:acct:<account>}:window`, `...:notbefore` and `...:rate` (cluster.keys.AccountKeys).

`hold`, `throttled` and `succeeded` are called where no await is possible: they note the
report and send it at once in the background; `slot` sends what is still pending before it
asks for a place, so a replica always sees its own reports. When Redis cannot be asked,
`slot` raises StoreUnavailable: no call goes out unpaced.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from exporter.cluster.keys import DEFAULT_PREFIX, ClusterKeys
from exporter.core.errors import StoreUnavailable
from exporter.core.ratelimit import HOLD_CAP_SECONDS, WINDOW_SECONDS, Limiter
from exporter.core.secrets import redact

MIN_RATE = 0.1  # one call every ten seconds, as the local limiter
OP_TIMEOUT_SECONDS = 2.0  # one script run, connecting included
MAX_SLEEP_SECONDS = 1.0  # ask again at least this often: another replica may have changed the state
MIN_SLEEP_SECONDS = 0.002
# The longest a call waits for its place: the longest hold, then one call at the lowest rate.
MAX_WAIT_SECONDS = HOLD_CAP_SECONDS + WINDOW_SECONDS / MIN_RATE + 30.0
RATE_TTL_MS = 3_600_000  # a lowered rate nobody touched for an hour is forgotten: back to the cap
MAX_PENDING_RUNS = 32  # reports not yet sent, as runs of one kind; the oldest go first
FLUSH_ROUNDS = 4  # reports arriving while some are sent: sent in a few more rounds at most

log = logging.getLogger(__name__)

# KEYS: window, notbefore, rate. ARGV: cap (calls/s), window (µs), this call's member.
# Returns 0 when the call may start, else the µs to wait before asking again.
ADMIT = """
local held = redis.call('PTTL', KEYS[2])
if held > 0 then return held * 1000 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local max = tonumber(ARGV[1])
local rate = tonumber(redis.call('GET', KEYS[3]) or max)
if rate > max then rate = max end
local window = tonumber(ARGV[2])
if rate < 1 then window = window / rate end
local cap = math.max(math.floor(rate), 1)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n < cap then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], n - cap, n - cap, 'WITHSCORES')
return math.max(math.ceil(tonumber(oldest[2]) + window - now), 1)
"""

# KEYS: rate, notbefore. ARGV: cap, hold (ms, 0 for none), rate TTL (ms), then pairs of
# report ('t' throttled, 's' succeeded) and count, oldest first. Returns the new rate.
ADJUST = """
local max = tonumber(ARGV[1])
local hold = tonumber(ARGV[2])
if hold > 0 then
  local left = redis.call('PTTL', KEYS[2])
  if left < 0 or hold > left + 1000 then redis.call('SET', KEYS[2], '1', 'PX', hold) end
end
local rate = tonumber(redis.call('GET', KEYS[1]) or max)
if rate > max then rate = max end
for i = 4, #ARGV - 1, 2 do
  local n = tonumber(ARGV[i + 1])
  if ARGV[i] == 't' then
    rate = math.max(rate / 2 ^ math.min(n, 64), 0.1)
  else
    rate = math.min(max, rate + n * max / 10)
  end
end
if rate >= max then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], tostring(rate), 'PX', tonumber(ARGV[3]))
end
return tostring(rate)
"""


class SharedLimiter:
    """Caps concurrent calls (this process) and calls per second (every replica) for one account."""

    def __init__(
        self,
        client: aioredis.Redis,
        rate: float,
        concurrency: int,
        *,
        name: str,
        prefix: str = DEFAULT_PREFIX,
        op_timeout: float = OP_TIMEOUT_SECONDS,
        max_wait: float = MAX_WAIT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name  # the account's name in the config: the same on every replica
        self.max_rate = max(rate, MIN_RATE)
        self.rate = self.max_rate  # as last heard from Redis
        self.not_before = 0.0  # on `clock`: this replica's own last hold
        self._client = client
        self._keys = ClusterKeys(prefix).account(name)
        self._op_timeout = op_timeout
        self._max_wait = max_wait
        self._clock = clock
        self._admit: AsyncScript = client.register_script(ADMIT)
        self._adjust: AsyncScript = client.register_script(ADJUST)
        self._member = f"{uuid.uuid4().hex}:"  # this replica's calls in the window
        self._calls = 0
        self._hold_logged = False
        self._pending: list[list[str | int]] = []  # [kind, count] runs not yet sent
        self._pending_hold = 0.0  # on `clock`: a hold not yet sent
        self._sender: asyncio.Task[None] | None = None
        self._sem = asyncio.Semaphore(max(concurrency, 1))
        self._lock = asyncio.Lock()
        self._send_lock = asyncio.Lock()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for a free slot within the concurrency and the shared rate cap, then hold it."""
        async with self._sem:
            await self._wait_for_rate()
            yield

    async def _wait_for_rate(self) -> None:
        try:
            # Bounded with the time queued behind this replica's other calls: one asks at a time.
            async with asyncio.timeout(self._max_wait), self._lock:
                for _ in range(int(self._max_wait / MIN_SLEEP_SECONDS) + 2):  # each round sleeps
                    now = self._clock()
                    if now < self.not_before:  # our own hold: no need to ask
                        wait = self.not_before - now
                    else:
                        await self.flush()
                        wait = await self._ask() / 1e6
                        if wait <= 0:
                            return
                    await asyncio.sleep(max(MIN_SLEEP_SECONDS, min(wait, MAX_SLEEP_SECONDS)))
        except TimeoutError:  # ours: Redis timeouts are StoreUnavailable by now
            pass
        raise TimeoutError(f"account {self.name}: no call slot within {self._max_wait:g}s")

    async def _ask(self) -> int:
        self._calls += 1
        keys = [self._keys.window, self._keys.notbefore, self._keys.rate]
        args: list[str | int] = [repr(self.max_rate), int(WINDOW_SECONDS * 1e6), f"{self._member}{self._calls}"]
        return int(await self._run(self._admit, keys, args))

    async def _run(self, script: AsyncScript, keys: list[str], args: list[str | int]) -> Any:
        try:
            async with asyncio.timeout(self._op_timeout):
                return await script(keys=keys, args=args, client=self._client)
        except (RedisError, OSError) as err:  # OSError: TimeoutError and socket errors
            raise StoreUnavailable(self._message(err)) from None

    def _message(self, err: BaseException) -> str:
        """What failed, by kind: never the server's address or a password (core.errors.StoreUnavailable)."""
        what = f"no answer within {self._op_timeout:g}s" if isinstance(err, TimeoutError) else type(err).__name__
        return redact(f"account {self.name}: calls cannot be paced, Redis failed: {what}")

    def hold(self, seconds: float) -> None:
        """The server asked for no call before `seconds` from now: every replica waits."""
        wanted = seconds
        seconds = min(max(seconds, 0.0), HOLD_CAP_SECONDS)
        until = self._clock() + seconds
        if until <= self.not_before + 1.0:  # already holding about as long: said once
            return
        self.not_before = until
        self._pending_hold = max(self._pending_hold, until)
        if not self._hold_logged:  # once until a call succeeds again
            self._hold_logged = True
            capped = f" (asked for {wanted:.0f}s, capped)" if wanted > HOLD_CAP_SECONDS else ""
            log.info(
                "account %s: the server asked to wait (Retry-After); no call for %.1fs on any replica%s",
                self.name,
                seconds,
                capped,
            )
        self._send_soon()

    def throttled(self) -> None:
        """The API said slow down: halve the shared rate (not below one call every ten seconds)."""
        self._note("t")

    def succeeded(self) -> None:
        """Recover a tenth of the cap per successful call, up to the cap, for every replica."""
        self._hold_logged = False
        self._note("s")

    def _note(self, kind: str) -> None:
        if self._pending and self._pending[-1][0] == kind:
            self._pending[-1][1] = int(self._pending[-1][1]) + 1
        else:
            self._pending.append([kind, 1])
            del self._pending[:-MAX_PENDING_RUNS]
        self._send_soon()

    def _send_soon(self) -> None:
        if self._sender is not None and not self._sender.done():
            return  # the running sender takes this report too, or the next slot() does
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: the next slot() sends it
        self._sender = loop.create_task(self._send_in_background(), name=f"limiter-{self.name}")

    async def _send_in_background(self) -> None:
        try:
            await self.flush()
        except StoreUnavailable as err:  # kept; the next slot() tries again and raises it
            log.debug("%s", err)

    async def flush(self) -> None:
        """Send this replica's pending hold, throttle and success reports to Redis."""
        async with self._send_lock:
            for _ in range(FLUSH_ROUNDS):
                if not self._pending and not self._pending_hold:
                    return
                runs, until = self._pending, self._pending_hold
                self._pending, self._pending_hold = [], 0.0
                hold_ms = max(0, int((min(until - self._clock(), HOLD_CAP_SECONDS)) * 1000)) if until else 0
                args: list[str | int] = [repr(self.max_rate), hold_ms, RATE_TTL_MS]
                args += [item for run in runs for item in run]
                try:
                    self.rate = float(await self._run(self._adjust, [self._keys.rate, self._keys.notbefore], args))
                except BaseException:  # not sent (or not known to be): kept for the next try
                    self._pending = (runs + self._pending)[-MAX_PENDING_RUNS:]
                    self._pending_hold = max(until, self._pending_hold)
                    raise

    async def current_rate(self) -> float:
        """The account's shared rate (calls per second) as Redis has it now."""
        try:
            async with asyncio.timeout(self._op_timeout):
                value = await self._client.get(self._keys.rate)
        except (RedisError, OSError) as err:
            raise StoreUnavailable(self._message(err)) from None
        return self.max_rate if value is None else min(float(value), self.max_rate)


if TYPE_CHECKING:

    def _paces_http(limiter: SharedLimiter) -> Limiter:  # core.http takes it where it takes the local one
        return limiter
