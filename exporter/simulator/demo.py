"""The demo scenario: every simulator on loopback, tasks that keep coming, and the raw
config of an exporter pointed at them. The CLI turns that config into a normal start."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from exporter.simulator.aliyun_vod import AliyunVodSimulator
from exporter.simulator.base import Simulator
from exporter.simulator.encoding_com import EncodingComSimulator
from exporter.simulator.ipernity import IpernitySimulator
from exporter.simulator.yandex_direct import YandexDirectSimulator

log = logging.getLogger(__name__)

SIMULATORS: tuple[type[Simulator], ...] = (
    YandexDirectSimulator,
    IpernitySimulator,
    EncodingComSimulator,
    AliyunVodSimulator,
)
INITIAL_TASKS = 300
NEW_TASKS_EVERY_SECONDS = 5.0
POLL_INTERVAL = "10s"
# Calls per second per demo account. The providers' defaults (encoding_com and ipernity
# 2/s) protect real API quotas; simulators on loopback have none, and at those rates the
# first poll of 300 tasks takes ~6 s. Stay below the aliyun simulator's own cap of 100/s.
DEMO_RATE_LIMIT = 20.0


class Demo:
    """Owns the simulators and the task generator of one demo run."""

    def __init__(self, workdir: Path, seed: int = 7) -> None:
        self.workdir = workdir
        self.simulators = [cls(seed=seed + i) for i, cls in enumerate(SIMULATORS)]
        self._feeder: asyncio.Task[None] | None = None

    async def start(self) -> dict[str, Any]:
        """Start the simulators and the task generator; returns the exporter's raw config."""
        config: dict[str, Any] = {"accounts": {}, "task_sets": []}
        for sim in self.simulators:
            await sim.start()
            ids_file = self.workdir / f"{sim.name}.ids"
            self._publish(sim, ids_file, sim.add_random_tasks(INITIAL_TASKS, backdate_s=240))
            config["accounts"][f"demo-{sim.name}"] = {**sim.demo_account(), "rate_limit": DEMO_RATE_LIMIT}
            config["task_sets"].append(
                {
                    "name": f"demo-{sim.name}",
                    "account": f"demo-{sim.name}",
                    "interval": POLL_INTERVAL,
                    "tasks": sim.demo_tasks(str(ids_file)),
                    "labels": {"scenario": "demo"},
                }
            )
            log.info("simulator %s listening on %s", sim.name, sim.url)
        self._feeder = asyncio.create_task(self._feed(), name="demo-feeder")
        return config

    async def _feed(self) -> None:
        """New uploads keep arriving, so the demo never settles."""
        while True:
            await asyncio.sleep(NEW_TASKS_EVERY_SECONDS)
            for sim in self.simulators:
                ids = sim.add_random_tasks(sim.rng.randint(2, 8))
                self._publish(sim, self.workdir / f"{sim.name}.ids", ids)

    @staticmethod
    def _publish(sim: Simulator, ids_file: Path, ids: list[str]) -> None:
        with ids_file.open("a", encoding="utf-8") as f:
            f.writelines(f"{i}\n" for i in ids)

    async def stop(self) -> None:
        if self._feeder is not None:
            self._feeder.cancel()
            await asyncio.gather(self._feeder, return_exceptions=True)
        for sim in self.simulators:
            await sim.stop()
