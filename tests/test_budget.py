"""The per-account limiter replicas share through a real redis-server on loopback.

Each "replica" is a SharedLimiter on its own Redis client, as separate processes would have;
call times are taken on this process's monotonic clock as each call starts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import aiohttp
import pytest
from aiohttp import web
from redis.asyncio.retry import Retry
from redis.backoff import ConstantBackoff

from benchmarks.replicas import busiest_second
from exporter.cluster.budget import OP_TIMEOUT_SECONDS, SharedLimiter
from exporter.cluster.keys import ClusterKeys
from exporter.core.errors import StoreUnavailable, Throttled
from exporter.core.http import HttpClient, HttpResponse
from exporter.core.ratelimit import WINDOW_SECONDS
from exporter.simulator.base import runner_port
from tests.redis_server import RedisServer

ACCOUNT = "shared-account"
CAP = 20
WORKERS = 4  # calls in flight per replica


def replicas(server: RedisServer, n: int = 3, rate: float = CAP) -> list[SharedLimiter]:
    return [SharedLimiter(server.client(), rate, WORKERS, name=ACCOUNT) for _ in range(n)]


async def drive(limiters: list[SharedLimiter], seconds: float) -> list[tuple[int, float]]:
    """Every replica calls as fast as its limiter lets it for `seconds`: (replica, start time) of each call."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    calls: list[tuple[int, float]] = []

    async def worker(replica: int, limiter: SharedLimiter) -> None:
        for _ in range(10_000):
            if loop.time() >= end:
                return
            try:
                async with asyncio.timeout_at(end), limiter.slot():
                    calls.append((replica, loop.time()))
                    await asyncio.sleep(0.005)  # the call itself
            except TimeoutError:
                return

    await asyncio.gather(*(worker(i, lim) for i, lim in enumerate(limiters) for _ in range(WORKERS)))
    return calls


async def test_replicas_share_one_cap(redis_server: RedisServer) -> None:
    seconds = 3.0
    calls = await drive(replicas(redis_server), seconds)
    times = [t for _, t in calls]
    assert busiest_second(times) <= CAP
    # Bursts of CAP at 0, 1.1 and 2.2 s: the budget is used, not starved by the sharing.
    expected = CAP * (int(seconds / WINDOW_SECONDS) + 1)
    assert expected - CAP / 2 <= len(calls) <= expected
    assert {replica for replica, _ in calls} == {0, 1, 2}


async def test_a_hold_on_one_replica_holds_every_replica(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.cluster.budget")
    a, b, c = replicas(redis_server)
    a.hold(0.8)
    a.hold(0.5)  # shorter: changes nothing, said nothing
    await a.flush()
    started = time.monotonic()
    async with b.slot():
        waited_b = time.monotonic() - started
    async with c.slot():
        waited_c = time.monotonic() - started
    assert 0.65 <= waited_b < 2.0
    assert 0.65 <= waited_c < 2.0
    said = [r.getMessage() for r in caplog.records if "Retry-After" in r.getMessage()]
    assert len(said) == 1 and ACCOUNT in said[0]


async def test_a_long_hold_is_capped(redis_server: RedisServer) -> None:
    (a,) = replicas(redis_server, 1)
    a.hold(10_000)
    await a.flush()
    held_ms = await redis_server.client().pttl(ClusterKeys().account(ACCOUNT).notbefore)
    assert 290_000 < held_ms <= 300_000


async def test_waiting_for_a_place_is_bounded(redis_server: RedisServer) -> None:
    a = SharedLimiter(redis_server.client(), CAP, 1, name=ACCOUNT, max_wait=0.3)
    b = SharedLimiter(redis_server.client(), CAP, 1, name=ACCOUNT, max_wait=0.3)
    a.hold(5)
    await a.flush()
    for limiter in (a, b):
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"no call slot within 0\.3s"):
            async with asyncio.timeout(10), limiter.slot():
                pytest.fail("a call went out during a hold")
        assert time.monotonic() - started < 1.0


async def test_throttled_on_one_replica_halves_the_rate_of_all(redis_server: RedisServer) -> None:
    a, b, c = replicas(redis_server)
    a.throttled()
    await a.flush()
    assert await b.current_rate() == CAP / 2
    seconds = 2.5
    calls = await drive([b, c], seconds)
    assert busiest_second([t for _, t in calls]) <= CAP / 2
    expected = CAP / 2 * (int(seconds / WINDOW_SECONDS) + 1)
    assert expected - CAP / 4 <= len(calls) <= expected
    for _ in range(4):
        c.succeeded()  # a tenth of the cap each, shared
    await c.flush()
    assert await a.current_rate() == pytest.approx(CAP / 2 + 4 * CAP / 10)
    c.succeeded()
    c.succeeded()
    await c.flush()
    assert await a.current_rate() == CAP  # never above the cap
    for _ in range(12):
        b.throttled()
    await b.flush()
    assert await c.current_rate() == pytest.approx(0.1)  # one call every ten seconds at least


async def test_redis_down_fails_promptly_and_back_works_again(redis_server: RedisServer) -> None:
    a, b = replicas(redis_server, 2)
    # With a client that retries for seconds (4.5 s here), the limiter still gives up in time.
    patient = SharedLimiter(redis_server.client(retry=Retry(ConstantBackoff(1.5), 3)), CAP, 1, name=ACCOUNT)
    for limiter in (a, patient):
        async with limiter.slot():
            pass
    redis_server.stop()
    messages = []
    for limiter in (a, patient):
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as raised:
            async with asyncio.timeout(10), limiter.slot():
                pytest.fail("a call went out with Redis down")
        assert time.monotonic() - started <= OP_TIMEOUT_SECONDS + 1.0
        messages.append(str(raised.value))
        assert ACCOUNT in messages[-1] and str(redis_server.port) not in messages[-1]  # no address
    assert "ConnectionError" in messages[0]  # the cause, when the client gives up before the limiter does
    assert "no answer within" in messages[1]
    b.throttled()  # reported while Redis is away: kept, and sent once it is back
    await asyncio.sleep(0.05)

    redis_server.start()
    async with asyncio.timeout(10):
        async with a.slot():
            pass
        async with b.slot():
            pass
    assert await a.current_rate() == CAP / 2

    redis_server.kill()  # gone at once, as after a crash
    with pytest.raises(StoreUnavailable):
        async with asyncio.timeout(10), b.slot():
            pytest.fail("a call went out with Redis down")
    redis_server.start()
    async with asyncio.timeout(10), b.slot():
        pass


async def test_password_right_and_wrong(make_redis_server: Callable[..., RedisServer]) -> None:
    password = "s3cret-redis-pass"
    server = make_redis_server(password=password)
    right = SharedLimiter(server.client(), CAP, WORKERS, name=ACCOUNT)
    async with asyncio.timeout(10), right.slot():
        pass
    wrong_password = "not-the-pass-123"
    for client in (server.client(password=wrong_password), server.client(password="")):
        limiter = SharedLimiter(client, CAP, WORKERS, name=ACCOUNT)
        with pytest.raises(StoreUnavailable) as raised:
            async with asyncio.timeout(10), limiter.slot():
                pytest.fail("a call went out without Redis")
        message = str(raised.value)
        assert "AuthenticationError" in message and ACCOUNT in message
        assert password not in message and wrong_password not in message and str(server.port) not in message
        assert raised.value.__cause__ is None and raised.value.__suppress_context__


async def test_a_retry_after_answer_to_one_replica_holds_the_other(
    redis_server: RedisServer, session: aiohttp.ClientSession
) -> None:
    answered: list[int] = []

    async def api(request: web.Request) -> web.Response:
        if not answered:
            answered.append(429)
            return web.Response(status=429, headers={"Retry-After": "1"})
        answered.append(200)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/status", api)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner_port(runner)}/status"

    def parse(response: HttpResponse) -> bool:
        response.raise_for_status()
        return bool(response.json()["ok"])

    try:
        a, b = replicas(redis_server, 2)
        first, second = (HttpClient(session, lim, timeout=5, observe=lambda *_: None) for lim in (a, b))
        with pytest.raises(Throttled):
            await first.call("GET", url, parse)
        await a.flush()  # sent in the background already; this waits for it
        assert await b.current_rate() == CAP / 2
        started = time.monotonic()
        async with asyncio.timeout(10):
            assert await second.call("GET", url, parse)
        assert time.monotonic() - started >= 0.8
        assert answered == [429, 200]
    finally:
        await runner.cleanup()
