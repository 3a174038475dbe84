"""Shared fixtures: simulators on 127.0.0.1:0, a manual clock, runners driven one poll at a time, real Redis."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from exporter.core import config as config_mod
from exporter.core.collector import Exposition
from exporter.core.scheduler import TaskSetRunner
from exporter.core.state import StateStore
from exporter.core.wiring import build_exposition, build_scheduler
from exporter.providers import PROVIDERS
from exporter.simulator.yandex_direct import YandexDirectSimulator
from tests.redis_server import RedisServer

YANDEX_TOKEN = "y0_core-test-token-0123456789"


class ManualClock:
    """A clock tests move by hand: no sleeping in tests."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


class Harness:
    """An exporter core wired to simulators, polled by hand."""

    def __init__(self, raw: dict[str, Any], session: aiohttp.ClientSession, clock: ManualClock) -> None:
        self.config = config_mod.parse(raw, PROVIDERS, "test.yaml")
        self.store = StateStore()
        self.scheduler = build_scheduler(self.config, PROVIDERS, self.store, session, clock=clock, backoff_base=0.01)
        self.exposition: Exposition = build_exposition(self.config, PROVIDERS, self.store)

    def runner(self, name: str | None = None) -> TaskSetRunner:
        runners = self.scheduler.runners
        return runners[0] if name is None else next(r for r in runners if r.config.name == name)

    async def poll(self, name: str | None = None) -> None:
        await self.runner(name).poll_once()

    def metrics(self) -> str:
        return self.exposition.render().decode()

    def value(self, metric: str, **labels: str) -> float | None:
        """The value of the one series of `metric` carrying all `labels`, or None."""
        from prometheus_client.parser import text_string_to_metric_families

        for family in text_string_to_metric_families(self.metrics()):
            for sample in family.samples:
                if sample.name == metric and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return None


@pytest.fixture
def harness(session: aiohttp.ClientSession, clock: ManualClock) -> Callable[[dict[str, Any]], Harness]:
    def make(raw: dict[str, Any]) -> Harness:
        return Harness(raw, session, clock)

    return make


@pytest.fixture
def caplog_all(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.fixture
async def yandex(clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[YandexDirectSimulator]:
    """A Yandex Direct simulator on loopback, its token in $YANDEX_TEST_TOKEN: the core's test provider."""
    monkeypatch.setenv("YANDEX_TEST_TOKEN", YANDEX_TOKEN)
    sim = YandexDirectSimulator(token=YANDEX_TOKEN, clock=clock)
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def make_redis_server(tmp_path: Path) -> AsyncIterator[Callable[..., RedisServer]]:
    """Start real redis-servers on loopback (options as RedisServer takes them); all stopped after the test."""
    servers: list[RedisServer] = []

    def make(**options: Any) -> RedisServer:
        workdir = tmp_path / f"redis-{len(servers)}"
        workdir.mkdir()
        server = RedisServer(workdir, **options)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        await server.aclose()


@pytest.fixture
async def redis_server(make_redis_server: Callable[..., RedisServer]) -> RedisServer:
    """A real redis-server on 127.0.0.1, no password, no persistence: `.url`, `.client()`, `.stop()`, `.start()`."""
    return make_redis_server()
