"""Child processes of the benchmark, so that what is measured runs alone in its process.

    python -m benchmarks.serve simulator --tasks N --ids-file F   prints the simulator's URL
    python -m benchmarks.serve baseline --endpoint URL --port P   prints "ready" once serving

Both serve on 127.0.0.1 until terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
from pathlib import Path

import aiohttp
from prometheus_client import CollectorRegistry, start_http_server

from benchmarks import common
from benchmarks.baseline import HandWrittenExporter
from exporter.simulator.yandex_direct import YandexDirectSimulator


async def simulator(tasks: int, ids_file: Path) -> None:
    sim = common.make_simulator(YandexDirectSimulator.name)
    ids = common.add_mixed_tasks(sim, tasks)
    ids_file.write_text("".join(f"{i}\n" for i in ids))
    print(await sim.start(), flush=True)
    await asyncio.Event().wait()


async def baseline(endpoint: str) -> CollectorRegistry:
    """The hand-written exporter's registry, one Gauge series per task of the simulator."""
    raw = {"accounts": {"a": common.remote_yandex_account(endpoint)},
           "task_sets": [common.task_set("bench", "a", {"discover": True})]}
    async with aiohttp.ClientSession() as session:
        exporter = HandWrittenExporter(common.provider_for(raw, common.live_client(session)), "bench")
        # Filled from one listing: asking one task a request, as it would, takes minutes at
        # 100,000 tasks (its polling cost is measured on its own).
        await exporter.fill_from_listing()
    return exporter.registry


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="role", required=True)
    sim = sub.add_parser("simulator")
    sim.add_argument("--tasks", type=int, required=True)
    sim.add_argument("--ids-file", type=Path, required=True)
    base = sub.add_parser("baseline")
    base.add_argument("--endpoint", required=True)
    base.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if args.role == "simulator":
        asyncio.run(simulator(args.tasks, args.ids_file))
    else:
        start_http_server(args.port, addr="127.0.0.1", registry=asyncio.run(baseline(args.endpoint)))
        print("ready", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
