"""The aiohttp app: /metrics, /-/healthy, /-/ready, /-/reload, a landing page and /api/v1/status.

The handlers only; the daemon they serve (core.daemon) runs in the app's cleanup context.
/metrics never calls a provider: it serves the exposition rendered from the last polls.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Protocol

from aiohttp import web

from exporter.core import push
from exporter.core.auth import BasicAuth, basic_auth_middleware
from exporter.core.config import Config, TaskSetConfig
from exporter.core.errors import ConfigError, StoreUnavailable
from exporter.core.exposition import NegotiatedExposition
from exporter.core.selfmetrics import ReloadStatus
from exporter.core.state import StateStore
from exporter.core.status import landing_page, status_document
from exporter.core.webconfig import WebConfig

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_SECONDS = 5.0
PUSH_ROUTE = "/api/v1/task_sets/{name}/tasks"
# Routes basic auth does not guard: the push route has its own bearer token per set, and a
# liveness probe learns nothing but "the process answers".
UNGUARDED = (PUSH_ROUTE, "/-/healthy")
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class Served(Protocol):
    """What the handlers read of the running daemon (`core.daemon.Daemon`)."""

    config: Config
    store: StateStore
    exposition: NegotiatedExposition
    reload_status: ReloadStatus

    async def reload(self) -> None: ...

    def not_ready(self) -> str | None: ...

    async def push(self, task_set: TaskSetConfig, ids: list[str]) -> tuple[int, int | None]: ...

    def running(self, app: web.Application) -> AsyncIterator[None]: ...


RUNTIME = web.AppKey("daemon", Served)
TELEMETRY_PATH = web.AppKey("telemetry_path", str)


def make_app(
    daemon: Served,
    *,
    lifecycle_api: bool = False,
    web_config: WebConfig | None = None,
    telemetry_path: str = "/metrics",
) -> web.Application:
    """The exporter's web app around a daemon, which runs while the app does; POST /-/reload only
    with `lifecycle_api` (like Prometheus)."""
    users = web_config.users if web_config else {}
    auth = BasicAuth(users) if users else None
    app = web.Application(
        middlewares=[basic_auth_middleware(auth, exempt=UNGUARDED)] if auth else [], client_max_size=push.MAX_PUSH_BYTES
    )
    if auth is not None:

        async def stop_checkers(app: web.Application) -> None:
            auth.close()

        app.on_cleanup.append(stop_checkers)
    app[RUNTIME] = daemon
    app[TELEMETRY_PATH] = telemetry_path
    app.router.add_get("/", landing)
    app.router.add_get(telemetry_path, metrics)
    app.router.add_get("/api/v1/status", status)
    app.router.add_post(PUSH_ROUTE, push_tasks)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    if lifecycle_api:
        app.router.add_post("/-/reload", reload)
    app.cleanup_ctx.append(daemon.running)
    return app


async def metrics(request: web.Request) -> web.Response:
    """The cached exposition in the format `Accept` asks for, gzipped when `Accept-Encoding` allows."""
    exposition = request.app[RUNTIME].exposition
    if exposition is None:
        return web.Response(status=503, text="Starting.\n")
    body, headers = exposition.render(request.headers.get("Accept", ""), request.headers.get("Accept-Encoding", ""))
    return web.Response(body=body, headers={**headers, "Vary": "Accept, Accept-Encoding"})


async def push_tasks(request: web.Request) -> web.Response:
    """Track the posted task IDs in a set with a push_token: JSON {"ids": [...]} or one ID a line."""
    runtime = request.app[RUNTIME]
    name = request.match_info["name"]
    ts = next((t for t in runtime.config.task_sets if t.name == name), None)
    if ts is None or ts.tasks.push_token is None:
        return web.json_response({"error": "no task set of that name accepts pushed IDs"}, status=404)
    if not push.authorised(request, ts.tasks.push_token.reveal()):
        return web.json_response(
            {"error": "missing or wrong bearer token"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="upload-status-exporter"'},
        )
    try:
        ids = await push.read_ids(request)
        added, tracked = await runtime.push(ts, ids)
    except push.Refused as refused:
        runtime.store.push_refused(name, refused.counted)
        return web.json_response({"error": refused.reason}, status=refused.status)
    except StoreUnavailable as err:
        return web.json_response({"error": str(err)}, status=503)
    answer: dict[str, object] = {"task_set": name, "added": added}
    if tracked is not None:
        answer["tracked"] = tracked
    return web.json_response(answer)


async def healthy(request: web.Request) -> web.Response:
    return web.Response(text="Healthy.\n")


async def ready(request: web.Request) -> web.Response:
    """Ready once every task set polled here was polled once (successfully or not) or restored."""
    why = request.app[RUNTIME].not_ready()
    if why is not None:
        return web.Response(status=503, text=f"Not ready: {why}.\n")
    return web.Response(text="Ready.\n")


async def reload(request: web.Request) -> web.Response:
    try:
        await request.app[RUNTIME].reload()
    except ConfigError as err:
        return web.Response(status=500, text=f"failed to reload config:\n{err}\n")
    return web.Response(text="Reloaded.\n")


async def landing(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    page = landing_page(runtime.config, runtime.store, runtime.reload_status, request.app[TELEMETRY_PATH], time.time())
    return web.Response(text=page, content_type="text/html", headers=PAGE_HEADERS)


async def status(request: web.Request) -> web.Response:
    """Each set's health, last error (redacted, bounded) and age of its last success, as JSON."""
    runtime = request.app[RUNTIME]
    return web.json_response(status_document(runtime.config, runtime.store, runtime.reload_status, time.time()))
