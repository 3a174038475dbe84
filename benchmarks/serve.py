"""Child processes of the benchmark, so that what is measured runs alone in its process.

    python -m benchmarks.serve simulator --tasks N --ids-file F   prints the simulator's URL
    python -m benchmarks.serve churn --tasks N --ids-file F --churn-seconds S
                                    likewise, tasks finishing over S seconds once started (benchmarks/churn.py)
    python -m benchmarks.serve baseline --endpoint URL --port P   prints "ready" once serving
    python -m benchmarks.serve auth-baseline --port P --hash H    basic auth checked on the event loop

Both serve on 127.0.0.1 until terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import bcrypt
from aiohttp import web
from prometheus_client import CollectorRegistry, start_http_server

from benchmarks import common
from benchmarks.baseline import HandWrittenExporter
from benchmarks.churn import ChurnSimulator
from exporter.simulator.yandex_direct import YandexDirectSimulator

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def simulator(tasks: int, ids_file: Path) -> None:
    sim = common.make_simulator(YandexDirectSimulator.name)
    ids = common.add_mixed_tasks(sim, tasks)
    ids_file.write_text("".join(f"{i}\n" for i in ids))
    print(await sim.start(), flush=True)
    await asyncio.Event().wait()


async def churn(tasks: int, ids_file: Path, churn_seconds: float) -> None:
    sim = ChurnSimulator(tasks, churn_seconds)
    ids_file.write_text("".join(f"{i}\n" for i in sim.tasks))
    print(await sim.start(), flush=True)
    await asyncio.Event().wait()


async def baseline(endpoint: str) -> CollectorRegistry:
    """The hand-written exporter's registry, one Gauge series per task of the simulator."""
    raw = {
        "accounts": {"a": common.remote_yandex_account(endpoint)},
        "task_sets": [common.task_set("bench", "a", {"discover": True})],
    }
    async with aiohttp.ClientSession() as session:
        exporter = HandWrittenExporter(common.provider_for(raw, common.live_client(session)), "bench")
        # Filled from one listing: asking one task a request, as it would, takes minutes at
        # 100,000 tasks (its polling cost is measured on its own).
        await exporter.fill_from_listing()
    return exporter.registry


def auth_baseline(port: int, hashed: bytes) -> None:
    """The exporter's former basic auth: bcrypt on the event loop, successes cached; a fixed body."""
    verified: set[tuple[str, bytes]] = set()
    body = b"# a small exposition\nupload_build_info 1\n" * 100

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        user, _, password = base64.b64decode(request.headers.get("Authorization", "Basic Og==")[6:]).partition(b":")
        if user == b"prometheus" and ((user.decode(), password) in verified or bcrypt.checkpw(password, hashed)):
            verified.add((user.decode(), password))
            return await handler(request)
        return web.Response(status=401)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=body)

    app = web.Application(middlewares=[auth])
    app.router.add_get("/metrics", metrics)
    print("ready", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="role", required=True)
    sim = sub.add_parser("simulator")
    sim.add_argument("--tasks", type=int, required=True)
    sim.add_argument("--ids-file", type=Path, required=True)
    moving = sub.add_parser("churn")
    moving.add_argument("--tasks", type=int, required=True)
    moving.add_argument("--ids-file", type=Path, required=True)
    moving.add_argument("--churn-seconds", type=float, required=True)
    base = sub.add_parser("baseline")
    base.add_argument("--endpoint", required=True)
    base.add_argument("--port", type=int, required=True)
    auth = sub.add_parser("auth-baseline")
    auth.add_argument("--port", type=int, required=True)
    auth.add_argument("--hash", required=True)
    args = parser.parse_args()
    if args.role == "auth-baseline":
        auth_baseline(args.port, args.hash.encode())
    elif args.role == "simulator":
        asyncio.run(simulator(args.tasks, args.ids_file))
    elif args.role == "churn":
        asyncio.run(churn(args.tasks, args.ids_file, args.churn_seconds))
    else:
        start_http_server(args.port, addr="127.0.0.1", registry=asyncio.run(baseline(args.endpoint)))
        print("ready", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
