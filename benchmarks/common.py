"""What the benchmark sections share: clocks, simulators and configs, recorded HTTP, processes.

Everything talks to 127.0.0.1 only, and every loop here is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from exporter.core import config as config_mod
from exporter.core.http import HttpClient, HttpResponse
from exporter.core.provider import Provider
from exporter.core.ratelimit import AccountLimiter
from exporter.core.scheduler import TaskSetRunner
from exporter.core.state import StateStore
from exporter.core.wiring import build_scheduler
from exporter.providers import PROVIDERS
from exporter.simulator import demo
from exporter.simulator.base import Simulator
from exporter.simulator.yandex_direct import YandexDirectSimulator

SIMULATORS: dict[str, type[Simulator]] = {cls.name: cls for cls in demo.SIMULATORS}
UNLIMITED = 10_000.0  # a rate limit that never binds, for sections that are not about pacing


class ManualClock:
    """Simulated time for call counting: the exporter and the simulators read the same clock."""

    def __init__(self) -> None:
        self.now = time.time()  # signatures carry real timestamps, which simulators check

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_simulator(provider: str, clock: Any = time.time, **kwargs: Any) -> Simulator:
    return SIMULATORS[provider](clock=clock, seed=11, **kwargs)


def add_mixed_tasks(sim: Simulator, count: int) -> list[str]:
    """Tasks created over the last ten minutes lasting up to twenty: some done, some failed, most pending."""
    return sim.add_random_tasks(count, min_s=30, max_s=1200, fail_ratio=0.1, backdate_s=600)


def account(sim: Simulator, **extra: Any) -> dict[str, Any]:
    """The raw config of an account at this simulator (its secrets go to the environment)."""
    return {**sim.demo_account(), **extra}


def remote_yandex_account(url: str) -> dict[str, Any]:
    """The account of a Yandex Direct simulator running in a child process at `url`."""
    sim = YandexDirectSimulator()  # not started: it only names the URL and the token's variable
    sim.url = url
    return account(sim)


def task_set(name: str, account_name: str, tasks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "account": account_name, "interval": 60, "jitter": 0, "tasks": tasks, **extra}


def parse_config(raw: dict[str, Any]) -> config_mod.Config:
    return config_mod.parse(raw, PROVIDERS, "<benchmark>")


def runners(
    raw: dict[str, Any], store: StateStore, session: aiohttp.ClientSession, clock: Any = time.time
) -> list[TaskSetRunner]:
    """The exporter's own pollers for this config, wired as the daemon wires them."""
    return build_scheduler(parse_config(raw), PROVIDERS, store, session, clock=clock).runners


# -- recorded HTTP ------------------------------------------------------------------------


class Unpaced(AccountLimiter):
    """No rate cap, and no slowing down when throttled: what a hand-written poller does."""

    def __init__(self) -> None:
        super().__init__(UNLIMITED, 64)

    def throttled(self) -> None:
        pass


def live_client(session: aiohttp.ClientSession, clock: Any = time.time) -> HttpClient:
    """Real HTTP, unpaced, counted nowhere."""
    return HttpClient(session, Unpaced(), timeout=60, observe=lambda *_: None, clock=clock)


class RecordingClient(HttpClient):
    """Real HTTP to the simulator, keeping every response for replay."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        super().__init__(session, Unpaced(), timeout=60, observe=lambda *_: None)
        self.responses: list[HttpResponse] = []

    async def _send(self, *args: Any) -> HttpResponse:
        response = await super()._send(*args)
        self.responses.append(response)
        return response


class ReplayClient(HttpClient):
    """Answers a provider's calls with recorded responses, in order: parse cost without the network."""

    def __init__(self, responses: Sequence[HttpResponse], clock: Any = time.time) -> None:
        super().__init__(
            None,  # type: ignore[arg-type]  # never sends: `call` answers from the recording
            Unpaced(),
            timeout=60,
            observe=lambda *_: None,
            clock=clock,
        )
        self._responses = iter(responses)

    async def _send(self, *args: Any) -> HttpResponse:
        return next(self._responses)


def provider_for(raw: dict[str, Any], http: HttpClient) -> Provider:
    cfg = parse_config(raw)
    acc = next(iter(cfg.accounts.values()))
    return PROVIDERS[acc.provider](acc, http)


# -- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process in MB, from /proc: now (VmRSS) or at its peak (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *args], env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )


def read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The next line a child prints (its address, or 'ready'), waiting at most `timeout`."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else b""  # children print whole lines, flushed
    if not line:
        raise RuntimeError(f"child {proc.args!r} said nothing in {timeout}s (exit {proc.poll()})")
    return line.decode().strip()


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def wait_http(session: aiohttp.ClientSession, url: str, timeout: float) -> None:
    """Wait until `url` answers 200 (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with session.get(url) as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout}s")


# -- figures ------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)))


def spawn_logged(children: list[subprocess.Popen[bytes]], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """A child whose stderr goes to `log` (read when something goes wrong), added to `children`."""
    with log.open("ab") as err:
        child = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=err)
    children.append(child)
    return child


def tail(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return " | ".join(lines[-3:])
