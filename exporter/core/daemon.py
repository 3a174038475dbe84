"""The exporter's life in one place: start, reload and a bounded stop.

A `Daemon` is an async context manager: entering it opens the HTTP session and starts a
runner per task set; leaving it stops the runners (waiting at most a bound), saves what they
changed and closes the state file and the session. `serve` runs it behind the web app on the
listen addresses until SIGTERM or SIGINT, or until a state file turns out unusable; SIGHUP
and POST /-/reload reload the config, and a bad new one leaves the running one in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

import aiohttp
from aiohttp import web

from exporter import __version__
from exporter.core import listener, partitions, push
from exporter.core.config import Config, TaskSetConfig
from exporter.core.errors import ConfigError
from exporter.core.exposition import NegotiatedExposition
from exporter.core.memory import tune_collector
from exporter.core.placement import Placement
from exporter.core.provider import ProviderRegistry
from exporter.core.scheduler import Scheduler, TaskSetRunner
from exporter.core.selfmetrics import ReloadStatus, live_registry
from exporter.core.server import make_app
from exporter.core.state import StateStore
from exporter.core.webconfig import WebConfig
from exporter.core.wiring import build_exposition, build_scheduler

log = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 5.0  # runners still polling after this are cancelled
SWITCH_INTERVAL_SECONDS = 0.001


@dataclass(frozen=True)
class WebOptions:
    """Where and how the daemon serves."""

    addresses: Sequence[tuple[str | None, int]]
    web_config: WebConfig = field(default_factory=WebConfig)
    lifecycle_api: bool = False  # POST /-/reload
    telemetry_path: str = "/metrics"
    max_connections: int = 0  # 0: from the descriptor limit
    read_header_timeout: float = listener.READ_HEADER_TIMEOUT
    idle_timeout: float = listener.IDLE_TIMEOUT


class Daemon:
    """The running exporter: its config, state, runners and exposition (what the handlers read)."""

    def __init__(
        self,
        load_config: Callable[[], Config],
        providers: ProviderRegistry,
        store: StateStore | None = None,
        *,
        clock: Callable[[], float] = time.time,
        placement: Placement | None = None,
    ) -> None:
        self.load_config = load_config
        self.providers = providers
        self.config = load_config()
        self.store = store or StateStore()
        self.clock = clock
        self.placement = placement  # None: this process polls every set
        self.reload_status = ReloadStatus()
        self._live = live_registry(self.reload_status)  # reload, process, platform and GC metrics
        if placement is not None:
            self._live.register(placement.collector())
        self.exposition = self._exposition()
        self.stopping = asyncio.Event()
        self.fatal: Exception | None = None  # why the daemon cannot go on (a state file it cannot restore)
        self._session: aiohttp.ClientSession | None = None
        self._scheduler: Scheduler | None = None
        self._reloading = asyncio.Lock()

    def _exposition(self) -> NegotiatedExposition:
        return NegotiatedExposition(
            build_exposition(self.config, self.providers, self.store), self._live, self.reload_status
        )

    # -- start and stop -----------------------------------------------------------------
    async def __aenter__(self) -> Daemon:
        # No trust_env: each account's proxy (its own, or HTTP(S)_PROXY/NO_PROXY) is resolved once, in
        # exporter/core/proxy.py, instead of two thread hops and a .netrc read on every request.
        self._session = aiohttp.ClientSession(headers={"User-Agent": f"upload-status-exporter/{__version__}"})
        self._start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self.placement is not None:
                await self.placement.halt()
            if self._scheduler is not None:
                await self._scheduler.stop(STOP_TIMEOUT_SECONDS)
            await self.store.close()  # every set's last changes saved, the state file closed
            if self.placement is not None:
                await self.placement.stop()
        finally:
            if self._session is not None:
                await self._session.close()

    async def running(self, app: web.Application) -> AsyncIterator[None]:
        """The web app's cleanup context: the daemon runs while the app does."""
        async with self:
            yield

    def _start(self) -> None:
        assert self._session is not None
        self._scheduler = build_scheduler(
            self.config, self.providers, self.store, self._session, clock=self.clock, placement=self.placement
        )
        self.exposition = self._exposition()
        if self.placement is None:
            self._scheduler.start(on_fatal=self._fatal)
        else:
            self.placement.start(self._scheduler, self.config, self._fatal)

    def runner(self, name: str) -> TaskSetRunner:
        """The runner of a task set, to poll it now (tests and tools)."""
        assert self._scheduler is not None, "the daemon is not running"
        return next(r for r in self._scheduler.runners if r.config.name == name)

    def not_ready(self) -> str | None:
        """Why /-/ready says no: the placement cannot serve, or a set it polls has nothing to show yet."""
        if self.placement is not None and (why := self.placement.not_ready()) is not None:
            return why
        waiting = [
            unit
            for ts in self.config.task_sets
            for unit in partitions.units(ts)
            if (self.placement is None or self.placement.holds(unit))
            and (not (st := self.store.sets.get(unit)) or not (st.polled or st.restored))
        ]
        return f"waiting for the first poll of {', '.join(waiting)}" if waiting else None

    async def push(self, task_set: TaskSetConfig, ids: list[str]) -> tuple[int, int | None]:
        """Track pushed IDs (saved before this returns), each in its partition, wherever that is
        polled; how many were new, and how many the set tracks (None when not all of it is here)."""
        account = self.config.accounts[task_set.account]
        syntax = self.providers[account.provider].task_id_syntax(account)
        push.check_syntax(ids, syntax)  # all or nothing: no partition tracks any of a bad push
        added, tracked = 0, 0
        groups = partitions.by_unit(task_set, ids)
        for unit, some in groups.items():
            unit_set = dataclasses.replace(task_set, name=unit, max_tasks=task_set.max_tasks // task_set.partitions)
            if self.placement is None or self.placement.holds(unit):
                added += await push.track(self.store, unit, some, unit_set.max_tasks)
            else:
                added += await self.placement.push(unit_set, some, syntax)
        for unit in partitions.units(task_set):
            if unit not in self.store.sets:
                return added, None
            tracked += len(self.store.sets[unit].tasks)
        return added, tracked

    def _fatal(self, err: Exception) -> None:
        self.fatal = self.fatal or err
        self.stopping.set()

    async def reload(self) -> None:
        """Load the config again; a bad one is reported (and raised) and the running one keeps going."""
        async with self._reloading:
            try:
                new = self.load_config()
            except ConfigError as err:
                self.reload_status.failed()
                log.error("config reload failed; keeping the running config:\n%s", err)
                raise
            self.reload_status.succeeded()
            if self._scheduler is not None:
                await self._scheduler.stop(STOP_TIMEOUT_SECONDS)
            self.config = new
            self._start()
            log.info("config reloaded from %s: %d task sets", new.path, len(new.task_sets))

    # -- serving ------------------------------------------------------------------------
    async def serve(self, options: WebOptions) -> None:
        """Serve on the listen addresses until SIGTERM or SIGINT; SIGHUP reloads. Raises the
        fatal error, if one stopped it."""
        app = make_app(
            self,
            lifecycle_api=options.lifecycle_api,
            web_config=options.web_config,
            telemetry_path=options.telemetry_path,
        )
        tune_collector()  # before the first poll
        # The parse and state-file threads give the interpreter back to the event loop within a
        # millisecond when it asks (CPython's default is 5 ms), so a scrape waits little behind them.
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        loop = asyncio.get_running_loop()
        listener.quiet_accept_errors(loop)
        max_connections = options.max_connections or listener.default_max_connections(listener.raise_descriptor_limit())
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=options.idle_timeout)
        await runner.setup()
        try:
            for host, port in options.addresses:
                await listener.GuardedSite(
                    runner,
                    host,
                    port,
                    ssl_context=options.web_config.ssl_context,
                    max_connections=max_connections,
                    read_header_timeout=options.read_header_timeout,
                ).start()
            log.info(
                "upload-status-exporter %s listening on %s (%d task sets)",
                __version__,
                ", ".join(_address(host, port) for host, port in options.addresses),
                len(self.config.task_sets),
            )
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stopping.set)
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self._reload_quietly()))
            await self.stopping.wait()
            if self.fatal is not None:
                raise self.fatal
            log.info("stopping")
        finally:
            await runner.cleanup()

    async def _reload_quietly(self) -> None:
        with contextlib.suppress(ConfigError):  # already logged; the running config stays
            await self.reload()


def _address(host: str | None, port: int) -> str:
    return f"[{host}]:{port}" if host and ":" in host else f"{host or ''}:{port}"
