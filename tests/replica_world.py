"""Three exporter processes sharing one real redis-server, polling simulators on 127.0.0.1.

Each replica is a real `python -m exporter --state.redis-url=...` process with its own
port and log. The helpers here read what the tests compare: who holds which set (from
`upload_lease_held`), totals summed over the replicas that export a set, and the calls
each simulator received. Every wait is bounded (tests.prometheus_stack.wait_for).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.exporter_process import ExporterProcess, Metrics, wait_for
from tests.fault_world import World
from tests.redis_server import RedisServer

TTL_SECONDS = 3.0  # the lease TTL the replicas run with
START_SECONDS = 30.0


class Replicas:
    """`count` exporter processes over one config, one Redis and one World of simulators."""

    def __init__(
        self,
        workdir: Path,
        world: World,
        config: Mapping[str, Any],
        redis: RedisServer,
        *,
        count: int = 3,
        env: Mapping[str, str] | None = None,
        ttl: float = TTL_SECONDS,
    ) -> None:
        self.world = world
        self.redis = redis
        self.ttl = ttl
        args = [f"--state.redis-url={redis.url}", f"--state.redis-lease-ttl={ttl:g}"]
        env = {**world.env, **(env or {})}
        if redis.password is not None:
            env["UPLOAD_EXPORTER_REDIS_PASSWORD"] = redis.password
        self.exporters = [ExporterProcess(workdir, config, env, args=args, name=f"replica{i}") for i in range(count)]

    def start(self) -> None:
        for exporter in self.exporters:
            exporter.start()

    def stop(self) -> None:
        for exporter in self.exporters:
            exporter.stop()

    def alive(self) -> list[ExporterProcess]:
        return [e for e in self.exporters if e.running()]

    def scrapes(self) -> list[Metrics | None]:
        return [e.scrape(3.0) if e.running() else None for e in self.exporters]

    def holders(self, task_set: str, scrapes: Sequence[Metrics | None] | None = None) -> list[int]:
        """Indices of the replicas that say they hold the set's lease."""
        scrapes = self.scrapes() if scrapes is None else scrapes
        return [i for i, m in enumerate(scrapes) if m is not None and m.value("upload_lease_held", task_set=task_set)]

    def sole_holder(self, task_set: str, timeout: float) -> int:
        """Wait until exactly one live replica holds the set; its index."""

        def one() -> list[int] | None:
            held = self.holders(task_set)
            return held if len(held) == 1 else None

        return wait_for(one, timeout, f"one replica to hold {task_set}")[0]

    def settled_holder(self, task_set: str, timeout: float) -> int:
        """The sole holder of the set once every live replica counts all the live ones as members
        and the set stays where it is over a lease TTL: the start-up hand-overs are past."""

        def settled() -> list[int] | None:
            scrapes = self.scrapes()
            alive = sum(m is not None for m in scrapes)
            if any(m is not None and m.value("upload_cluster_members") != alive for m in scrapes):
                return None
            held = self.holders(task_set, scrapes)
            if len(held) != 1:
                return None
            time.sleep(self.ttl)
            return held if self.holders(task_set) == held else None

        return wait_for(settled, timeout, f"{task_set} to settle on one replica\n{self.log_tails()}")[0]

    def total(self, name: str, scrapes: Iterable[Metrics | None] | None = None, **labels: str) -> float:
        """A series summed over the replicas (each exports only the sets it holds)."""
        scrapes = self.scrapes() if scrapes is None else scrapes
        return sum(m.value(name, **labels) for m in scrapes if m is not None)

    def pause(self, index: int) -> None:
        proc = self.exporters[index].proc
        assert proc is not None
        proc.send_signal(signal.SIGSTOP)

    def resume(self, index: int) -> None:
        proc = self.exporters[index].proc
        assert proc is not None
        proc.send_signal(signal.SIGCONT)

    def ready(self) -> list[int]:
        return [e.get("/-/ready", 2.0)[0] for e in self.exporters if e.running()]

    def log_tails(self) -> str:
        return "\n".join(f"--- {e.log_path.name}\n{e.log_tail(15)}" for e in self.exporters)


def calls(world: World, provider: str, since: float = 0.0) -> list[float]:
    """Times (time.time()) of the requests the provider's simulator received after `since`."""
    return [r.at for r in world.received(provider) if r.at > since]
