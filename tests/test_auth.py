"""Basic auth under hostile clients: bcrypt off the event loop, bounded, cached, constant-cost 401s."""

from __future__ import annotations

import asyncio
import base64
import statistics
import time

import aiohttp
import bcrypt
import pytest
from aiohttp.test_utils import TestServer

from exporter.core import config as config_mod
from exporter.core.daemon import Daemon
from exporter.core.server import make_app
from exporter.core.webconfig import WebConfig
from exporter.providers import PROVIDERS

PUSH_TOKEN = "auth-push-token-0123456789"
CONFIG = {
    "accounts": {
        "direct": {"provider": "yandex_direct", "endpoint": "http://127.0.0.1:9/", "token": {"env": "AUTH_TEST_TOKEN"}}
    },
    "task_sets": [
        {
            "name": "banners",
            "account": "direct",
            "interval": 3600,
            "jitter": 0,
            "tasks": {"push_token": {"env": "AUTH_PUSH_TOKEN"}},
        }
    ],
}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Daemon:
    monkeypatch.setenv("AUTH_TEST_TOKEN", "auth-test-token-0123456789")
    monkeypatch.setenv("AUTH_PUSH_TOKEN", PUSH_TOKEN)
    cfg = config_mod.parse(CONFIG, PROVIDERS, "auth.yaml")
    return Daemon(lambda: cfg, PROVIDERS)


async def timed(client: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[int, float]:
    started = time.perf_counter()
    async with client.get(url, headers=headers) as r:
        await r.read()
        return r.status, time.perf_counter() - started


async def test_bcrypt_runs_off_the_loop_and_successes_are_cached(runtime: Daemon) -> None:
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=12))
    started = time.perf_counter()
    bcrypt.checkpw(b"wrong", hashed)
    one_check = time.perf_counter() - started
    app = make_app(runtime, web_config=WebConfig(users={"prometheus": hashed}))
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as client:
        url = str(server.make_url("/metrics"))
        status, first = await timed(client, url, basic("prometheus", "right"))
        assert status == 200 and first >= one_check / 2  # the first success pays bcrypt once
        status, second = await timed(client, url, basic("prometheus", "right"))
        assert status == 200 and second < one_check / 2  # then it is cached

        async def flood() -> None:
            for _ in range(2):  # bounded
                async with client.get(url, headers=basic("prometheus", "wrong")) as r:
                    assert r.status == 401

        lags: list[float] = []

        async def watch(stop: asyncio.Event) -> None:
            while not stop.is_set():  # bounded by the flood below, itself bounded
                before = time.perf_counter()
                await asyncio.sleep(0.005)
                lags.append(time.perf_counter() - before - 0.005)

        stop = asyncio.Event()
        watcher = asyncio.create_task(watch(stop))
        scrapes = []
        flooding = asyncio.gather(*(flood() for _ in range(4)))
        while not flooding.done():  # bounded: 8 wrong passwords at cost 12
            scrapes.append(await timed(client, url, basic("prometheus", "right")))
            health = await timed(client, str(server.make_url("/-/healthy")), {})
            assert health[0] == 200
        await flooding
        stop.set()
        await watcher
    assert all(s == 200 for s, _ in scrapes)
    # On the loop, each wrong password would stall it for a whole check.
    assert max(lags) < one_check / 2, (max(lags), one_check)
    assert max(t for _, t in scrapes) < one_check / 2, (max(t for _, t in scrapes), one_check)


async def test_unknown_users_cost_what_known_ones_do(runtime: Daemon) -> None:
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=10))
    app = make_app(runtime, web_config=WebConfig(users={"prometheus": hashed}))
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as client:
        url = str(server.make_url("/metrics"))
        known, unknown = [], []
        for i in range(5):
            status, t = await timed(client, url, basic("prometheus", f"wrong-{i}"))
            assert status == 401
            known.append(t)
            status, t = await timed(client, url, basic(f"nobody-{i}", "wrong"))
            assert status == 401
            unknown.append(t)
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.5 < ratio < 2.0, (known, unknown)


async def test_long_passwords_and_unparseable_hashes_are_401_not_500(runtime: Daemon) -> None:
    hashed = bcrypt.hashpw(b"p" * 72, bcrypt.gensalt(rounds=4))
    users = {"prometheus": hashed, "broken": b"$2y$10$bogus"}  # the loader refuses the second; never a 500
    app = make_app(runtime, web_config=WebConfig(users=users))
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as client:
        url = str(server.make_url("/metrics"))
        assert (await timed(client, url, basic("prometheus", "p" * 72)))[0] == 200
        for headers in (
            basic("prometheus", "p" * 73),
            basic("prometheus", "p" * 500),
            basic("broken", "x"),
            {"Authorization": "Basic !!!"},
            {"Authorization": "Basic " + "A" * 5000},
            {"Authorization": "Bearer x"},
            basic("prometheus", "\u00e9" * 40),
        ):
            status, _ = await timed(client, url, headers)
            assert status == 401, headers


async def test_push_route_uses_the_bearer_token_not_basic_auth(runtime: Daemon) -> None:
    hashed = bcrypt.hashpw(b"scrape", bcrypt.gensalt(rounds=4))
    app = make_app(runtime, web_config=WebConfig(users={"prometheus": hashed}))
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as client:
        url = str(server.make_url("/api/v1/task_sets/banners/tasks"))
        async with client.post(url, json={"ids": ["1"]}, headers={"Authorization": f"Bearer {PUSH_TOKEN}"}) as r:
            assert r.status == 200 and (await r.json())["added"] == 1
        async with client.post(url, json={"ids": ["2"]}, headers=basic("prometheus", "scrape")) as r:
            assert r.status == 401 and "bearer" in (await r.json())["error"]
        async with client.get(str(server.make_url("/metrics"))) as r:
            assert r.status == 401  # every other route stays guarded
        async with client.get(str(server.make_url("/"))) as r:
            assert r.status == 401
