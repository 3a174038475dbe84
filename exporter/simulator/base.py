"""What every simulator shares: a clock, task timelines, call logs and errors on demand.

A simulated task has a fixed timeline: created, expected to finish at `finish_at`, with an
outcome. Its state at any time follows from the clock, so tests move time forward
instead of sleeping.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import web

from exporter.simulator import faults as fault_modes

HANG_SECONDS = 30.0  # how long an injected timeout keeps the request open


@dataclass
class SimTask:
    """One simulated upload task."""

    task_id: str
    created: float
    finish_at: float
    fails: bool
    fault: tuple[str, str] = ("", "")  # (code, message) when it fails
    owner: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def finished(self, now: float) -> bool:
        return now >= self.finish_at

    def progress(self, now: float) -> float:
        if self.finished(now):
            return 1.0
        span = max(self.finish_at - self.created, 1e-9)
        return max(0.0, min(1.0, (now - self.created) / span))


@dataclass(frozen=True)
class Received:
    """One request as it arrived, whatever answered it, for tests that measure gaps between calls."""

    at: float  # on the simulator's clock
    answer: str  # "ok", a fault kind, "injected:<kind>" or "flow_control"
    retry_after: float | None = None  # what the answer asked the client to wait


@dataclass(frozen=True)
class Call:
    """What one request asked for, for tests to assert on."""

    at: float
    ids: tuple[str, ...]
    params: dict[str, Any]


class Simulator:
    """Base of every simulator: subclasses add the protocol in `handle` and `error_body`."""

    name: ClassVar[str]
    path: ClassVar[str]  # where the API is served
    route: ClassVar[str] = ""  # a pattern after `path` for APIs that put the method in the URL
    faults: ClassVar[Sequence[tuple[str, str]]]  # realistic (code, message) pairs

    def __init__(self, *, clock: Callable[[], float] = time.time, seed: int = 1, log_size: int = 100_000) -> None:
        self.clock = clock
        self.rng = random.Random(seed)
        self.tasks: dict[str, SimTask] = {}
        self.calls: collections.deque[Call] = collections.deque(maxlen=log_size)
        self._injected: collections.deque[str] = collections.deque()
        self._next_id = 1000
        self.requests = 0  # every request received, refused and injected ones included
        self.received: collections.deque[Received] = collections.deque(maxlen=log_size)
        self.fault: fault_modes.Fault | None = None
        self._fault_generation = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- tasks ------------------------------------------------------------------------
    def new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def add_task(
        self,
        *,
        duration: float,
        fails: bool = False,
        created: float | None = None,
        owner: str = "",
        task_id: str | None = None,
        **extra: Any,
    ) -> SimTask:
        now = self.clock() if created is None else created
        task = SimTask(
            task_id or self.new_id(),
            now,
            now + duration,
            fails,
            self.rng.choice(self.faults) if fails else ("", ""),
            owner,
            dict(extra),
        )
        self.tasks[task.task_id] = task
        return task

    def add_random_tasks(
        self,
        count: int,
        *,
        min_s: float = 20,
        max_s: float = 240,
        fail_ratio: float = 0.15,
        backdate_s: float = 0,
        owners: Sequence[str] = ("",),
    ) -> list[str]:
        """Tasks with random durations and outcomes, created up to `backdate_s` ago."""
        now = self.clock()
        ids = []
        for _ in range(count):
            task = self.add_task(
                duration=self.rng.uniform(min_s, max_s),
                fails=self.rng.random() < fail_ratio,
                created=now - self.rng.uniform(0, backdate_s),
                owner=self.rng.choice(owners),
            )
            ids.append(task.task_id)
        return ids

    # -- errors on demand -------------------------------------------------------------
    # One-shot failures (`fail_next`) for unit tests, and sustained fault modes (`set_fault`,
    # kinds and options in `faults`) for the fault matrix; every request lands in `received`.
    def fail_next(self, kind: str, times: int = 1) -> None:
        """The next `times` requests fail: 'http_500', 'timeout', 'malformed', or 'api:<code>'."""
        self._injected.extend([kind] * times)

    def set_fault(self, kind: str, **opts: Any) -> None:
        """Answer every request with this fault until `clear_fault` (see `faults` for kinds and options)."""
        fault_modes.check(kind, opts, self.fault_kinds)
        self._fault_generation += 1
        self.fault = fault_modes.Fault(kind, dict(opts), self._fault_generation)

    def clear_fault(self) -> None:
        """Answer normally again; requests held by a `hang` fault are answered now (if still waited for)."""
        self._fault_generation += 1
        self.fault = None

    def left_out(self, asked: list[str]) -> set[str]:
        """The asked IDs a `partial` fault leaves out of this answer (none without one)."""
        fault = self.fault
        return fault.left_out(asked) if fault is not None and fault.kind == "partial" else set()

    async def _fault_response(self, request: web.Request, fault: fault_modes.Fault) -> web.StreamResponse | None:
        kind, opts = fault.kind, fault.opts
        if kind in fault_modes.HTTP_STATUS_KINDS:
            return fault_modes.http_status(kind, opts)
        if kind == "hang":
            cleared = await fault_modes.hang(opts, lambda: self._fault_generation == fault.generation)
            if cleared and request.transport is not None and not request.transport.is_closing():
                return await self.handle(request)  # a client still waiting gets its answer, late
            return web.Response(status=504, text="Gateway Timeout")
        if kind in ("reset", "truncated"):
            answer = await self.handle(request)
            body = answer.body if isinstance(answer, web.Response) and isinstance(answer.body, bytes) else b""
            return await fault_modes.cut_body(request, answer.status, body, answer.content_type, reset=kind == "reset")
        if kind == "malformed":
            return web.Response(status=200, body=self.malformed_body, content_type=self.content_type)
        if kind == "wrong_content_type":
            return fault_modes.wrong_content_type()
        if kind.startswith("oversized"):
            return await fault_modes.oversized(
                request, self.oversized_prefix, self.content_type, int(opts["size"]), with_length=kind == "oversized"
            )
        if kind == "throttle":
            return self.error_response(self.throttle_code)
        if kind == "auth":
            return self.auth_response()
        if kind in fault_modes.XML_KINDS:
            return web.Response(status=200, body=self.xml_fault_body(kind), content_type=self.content_type)
        return None  # partial: the protocol's own answer, with IDs left out

    async def _injected_response(self) -> web.StreamResponse | None:
        if not self._injected:
            return None
        kind = self._injected.popleft()
        if kind == "http_500":
            return web.Response(status=500, text="Internal Server Error")
        if kind == "timeout":
            await asyncio.sleep(HANG_SECONDS)
            return web.Response(status=504)
        if kind == "malformed":
            return web.Response(status=200, body=self.malformed_body, content_type=self.content_type)
        if kind.startswith("api:"):
            return self.error_response(kind[4:])
        raise ValueError(f"unknown injected failure {kind!r}")

    # -- protocol (subclasses) --------------------------------------------------------
    content_type: ClassVar[str] = "application/json"
    malformed_body: ClassVar[bytes] = b'{"data": {"items": [{"id": '  # cut off mid-document
    oversized_prefix: ClassVar[bytes] = b'{"data": {"items": ['  # how an oversized body starts
    fault_kinds: ClassVar[frozenset[str]] = fault_modes.COMMON_KINDS
    throttle_code: ClassVar[str]  # the API's own "slow down" error, answered by the `throttle` fault
    auth_code: ClassVar[str]  # the API's "credentials refused" error, answered by the `auth` fault

    def error_response(self, code: str) -> web.Response:
        raise NotImplementedError

    def auth_response(self) -> web.Response:
        """The API's answer to refused credentials."""
        return self.error_response(self.auth_code)

    def xml_fault_body(self, kind: str) -> bytes:
        """An XML bomb or external-entity body, for APIs that answer XML."""
        raise NotImplementedError

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    def flow_control(self) -> web.Response | None:
        """The API's answer to a call over its rate cap, or None; APIs without one say None."""
        return None

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        at = self.clock()
        refused = self.flow_control()
        if refused is not None:
            self.received.append(Received(at, "flow_control"))
            return refused
        fault = self.fault
        if fault is not None:
            retry_after = fault.opts.get("retry_after") if fault.kind == "http_503" else None
            self.received.append(Received(at, fault.kind, None if retry_after is None else float(retry_after)))
            response = await self._fault_response(request, fault)
            if response is not None:
                return response
            return await self.handle(request)
        kind = self._injected[0] if self._injected else ""
        self.received.append(Received(at, f"injected:{kind}" if kind else "ok"))
        injected = await self._injected_response()
        return injected if injected is not None else await self.handle(request)

    def record(self, ids: Sequence[str], **params: Any) -> None:
        self.calls.append(Call(self.clock(), tuple(ids), params))

    # -- serving ----------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", self.path + self.route, self._dispatch)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on loopback; returns the API's base URL."""
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = runner_port(self._runner)
        self.url = f"http://{host}:{bound}{self.path}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- demo -------------------------------------------------------------------------
    def demo_account(self) -> dict[str, Any]:
        """The raw config of an account pointing at this simulator (secrets via env)."""
        raise NotImplementedError

    def demo_tasks(self, ids_file: str) -> dict[str, Any]:
        """The raw `tasks` section of the demo task set."""
        return {"files": [ids_file]}


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def runner_port(runner: web.AppRunner) -> int:
    """The port a runner's first site is bound to (after binding to port 0)."""
    for address in runner.addresses:
        return int(address[1])
    raise RuntimeError("the simulator is not listening")
