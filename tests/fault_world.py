"""Simulators on 127.0.0.1 in a loop thread, the exporter config that polls them, and their truth.

The tests block (scraping a real exporter process) while the simulators answer from an
asyncio loop in a daemon thread; everything that touches a simulator runs in that loop.
Each provider gets credentials of its own, passed to the exporter through the environment,
so a test can look for every one of them in the logs and on /metrics.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from exporter.providers import PROVIDERS
from exporter.simulator.aliyun_vod import AliyunVodSimulator
from exporter.simulator.base import Received, Simulator
from exporter.simulator.encoding_com import EncodingComSimulator
from exporter.simulator.ipernity import IpernitySimulator
from exporter.simulator.yandex_direct import YandexDirectSimulator
from tests.prometheus_stack import LoopThread

T = TypeVar("T")
ALL = ("yandex_direct", "ipernity", "encoding_com", "aliyun_vod")
DEFAULT_BODY_CAP = 32 * 1024 * 1024
# Where a failed upload ends: ipernity only says a ticket turned invalid (not_found), the others report an error.
FAILURE_STATE = {"ipernity": "not_found"}


def body_cap(provider: str) -> int:
    """The provider's cap on a response body (a ClassVar on its class; the core's default before it)."""
    return int(getattr(PROVIDERS[provider], "max_body_bytes", DEFAULT_BODY_CAP))


@dataclass(frozen=True)
class Truth:
    done: int
    failed: int  # failures the exporter counts as errors
    not_found: int  # failures the API reports as unknown IDs (ipernity's invalid tickets)


class World:
    """One simulator per provider, each with its own secrets, serving from a loop thread."""

    def __init__(self, providers: Sequence[str] = ALL, *, account_timeout: str = "0.8s") -> None:
        self.loop = LoopThread()
        self.account_timeout = account_timeout
        self.env: dict[str, str] = {}
        self.sims: dict[str, Simulator] = {}
        try:
            for provider in providers:
                self.sims[provider] = self._make(provider)
                self.loop.run(self.sims[provider].start())
        except BaseException:
            self.close()
            raise

    def _secret(self, env: str, prefix: str) -> str:
        self.env[env] = f"{prefix}{secrets.token_hex(12)}"
        return self.env[env]

    def _make(self, provider: str) -> Simulator:
        if provider == "yandex_direct":
            return YandexDirectSimulator(token=self._secret("FT_YANDEX_TOKEN", "y0_ft"))
        if provider == "ipernity":
            return IpernitySimulator(
                api_key=self._secret("FT_IPERNITY_KEY", "ftkey"),
                api_secret=self._secret("FT_IPERNITY_SECRET", "ftsecret"),
                auth_token=self._secret("FT_IPERNITY_TOKEN", "fttoken"),
            )
        if provider == "encoding_com":
            return EncodingComSimulator(userid="ft-user", userkey=self._secret("FT_ENCODING_KEY", "ftuserkey"))
        return AliyunVodSimulator(
            key_id=self._secret("FT_VOD_KEY_ID", "LTAI5tFt"),
            key_secret=self._secret("FT_VOD_KEY_SECRET", "ftvodsecret"),
        )

    def secret_values(self) -> list[str]:
        return list(self.env.values())

    def account(self, provider: str) -> dict[str, Any]:
        """The raw config of the account that points at this provider's simulator."""
        sim = self.sims[provider]
        raw: dict[str, Any] = {"provider": provider, "endpoint": sim.url, "timeout": self.account_timeout}
        fields = {
            "yandex_direct": {"token": "FT_YANDEX_TOKEN"},
            "ipernity": {
                "api_key": "FT_IPERNITY_KEY",
                "api_secret": "FT_IPERNITY_SECRET",
                "auth_token": "FT_IPERNITY_TOKEN",
            },
            "encoding_com": {"userkey": "FT_ENCODING_KEY"},
            "aliyun_vod": {"access_key_id": "FT_VOD_KEY_ID", "access_key_secret": "FT_VOD_KEY_SECRET"},
        }[provider]
        raw.update({name: {"env": env} for name, env in fields.items()})
        if provider == "encoding_com":
            raw["userid"] = "ft-user"
        return raw

    # -- the loop thread ----------------------------------------------------------------
    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` in the simulators' loop (so it never races a request) and return its result."""

        async def run() -> T:
            return fn()

        return self.loop.run(run())

    def set_fault(self, providers: Iterable[str], kind: str, **opts: Any) -> None:
        for provider in providers:
            sim = self.sims[provider]
            self.call(lambda sim=sim: sim.set_fault(kind, **opts))  # type: ignore[misc]

    def clear_fault(self, providers: Iterable[str]) -> None:
        for provider in providers:
            self.call(self.sims[provider].clear_fault)

    def received(self, provider: str) -> list[Received]:
        return self.call(lambda: list(self.sims[provider].received))

    def omitted(self, provider: str) -> dict[str, int]:
        """How often each ID was left out by the current `partial` fault."""
        return self.call(lambda: dict(fault.omitted) if (fault := self.sims[provider].fault) else {})

    def add_tasks(self, provider: str, finish_at: Sequence[float], *, fail_every: int = 0) -> list[str]:
        """Tasks that finish at these (simulator clock) times; every `fail_every`-th one fails."""
        sim = self.sims[provider]

        def add() -> list[str]:
            now = sim.clock()
            fails = [bool(fail_every) and i % fail_every == fail_every - 1 for i in range(len(finish_at))]
            return [
                sim.add_task(duration=max(0.0, at - now), fails=f).task_id
                for at, f in zip(finish_at, fails, strict=True)
            ]

        return self.call(add)

    def clock(self, provider: str) -> float:
        return self.sims[provider].clock()

    def expected(self, provider: str, task_id: str, at: float) -> str:
        """The normalized state the API reports for this task at `at`."""
        task = self.sims[provider].tasks[task_id]
        if task.finish_at > at:
            return "pending"
        return "done" if not task.fails else FAILURE_STATE.get(provider, "error")

    def truth(self, provider: str, ids: Iterable[str], at: float) -> Truth:
        """What the API will have reported by `at` for these tasks: done, failed, gone."""
        tasks = self.sims[provider].tasks
        finished = [tasks[i] for i in ids if tasks[i].finish_at <= at]
        failures = sum(t.fails for t in finished)
        counted = FAILURE_STATE.get(provider) != "not_found"
        return Truth(len(finished) - failures, failures if counted else 0, 0 if counted else failures)

    def close(self) -> None:
        async def stop() -> None:
            await asyncio.gather(*(sim.stop() for sim in self.sims.values()), return_exceptions=True)

        try:
            self.loop.run(stop())
        finally:
            self.loop.close()
