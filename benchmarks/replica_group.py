"""Exporter processes sharing one Redis, over one config: started, scraped, killed, started again.

Each replica is `python -m exporter --state.redis-url=...` on a 127.0.0.1 port of its own,
its log in the work dir. Every wait is bounded in time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from benchmarks import common

START_SECONDS = 30.0  # start-up of a replica on a busy 2-core machine
STEP_SECONDS = 0.05
ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = aiohttp.ClientTimeout(total=3)

Scrape = dict[tuple[str, frozenset[tuple[str, str]]], float]


def value(scrape: Scrape | None, name: str, **labels: str) -> float:
    """The sum of the samples of `name` carrying `labels` (0 without a scrape)."""
    if scrape is None:
        return 0.0
    wanted = set(labels.items())
    return sum(v for (n, ls), v in scrape.items() if n == name and wanted <= ls)


class Replica:
    """One exporter process on a port of its own; started again (on a new port) after a kill."""

    def __init__(self, workdir: Path, index: int, args: list[str], env: dict[str, str]) -> None:
        self.log = workdir / f"replica{index}.log"
        self.args, self.env = args, env
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        self.port = common.free_port()
        argv = [sys.executable, "-m", "exporter", *self.args, f"--web.listen-address=127.0.0.1:{self.port}"]
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=err)

    async def ready(self, session: aiohttp.ClientSession) -> None:
        await common.wait_http(session, f"http://127.0.0.1:{self.port}/-/ready", START_SECONDS)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    async def scrape(self, session: aiohttp.ClientSession) -> Scrape | None:
        if not self.running():
            return None
        try:
            async with session.get(f"http://127.0.0.1:{self.port}/metrics", timeout=TIMEOUT) as resp:
                text = await resp.text() if resp.status == 200 else ""
        except (aiohttp.ClientError, TimeoutError):
            return None
        families = text_string_to_metric_families(text) if text else []
        return {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}


class Group:
    """The replicas over one config and one Redis."""

    def __init__(self, workdir: Path, config: Path, redis_url: str, count: int, ttl: float) -> None:
        self.config = config
        args = [
            f"--config.file={config}",
            "--log.level=warn",
            f"--state.redis-url={redis_url}",
            f"--state.redis-lease-ttl={ttl:g}",
        ]
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost"}  # loopback only
        self.replicas = [Replica(workdir, i, args, env) for i in range(count)]

    async def start(self, session: aiohttp.ClientSession) -> None:
        for r in self.replicas:
            r.spawn()
        for r in self.replicas:
            await r.ready(session)

    def kill_all(self) -> None:
        for r in self.replicas:
            r.kill()

    async def scrapes(self, session: aiohttp.ClientSession) -> list[Scrape | None]:
        return list(await asyncio.gather(*(r.scrape(session) for r in self.replicas)))

    async def sole_holder(self, session: aiohttp.ClientSession, name: str, timeout: float) -> int:
        """Wait until exactly one replica says it holds the set's lease; its index."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            scrapes = await self.scrapes(session)
            held = [i for i, s in enumerate(scrapes) if value(s, "upload_lease_held", task_set=name)]
            if len(held) == 1:
                return held[0]
            await asyncio.sleep(STEP_SECONDS * 4)
        raise RuntimeError(f"no sole holder of {name} in {timeout:.0f}s [{common.tail(self.replicas[0].log)}]")
