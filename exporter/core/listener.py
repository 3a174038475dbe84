"""The listening socket, guarded against clients that hold connections open.

aiohttp alone keeps a connection that never sends a whole request for its keep-alive
timeout, and accepts connections until the process runs out of file descriptors; asyncio
then logs a traceback for every failed accept. Here:

- a connection that has not sent a complete first request within `read_header_timeout`
  is closed; an idle keep-alive connection (and a slow second request) within
  `idle_timeout` (aiohttp's keep-alive timer);
- at most `max_connections` are open, below the descriptor limit: a new connection beyond
  that closes the oldest one that has not sent a whole request yet (a slow or silent
  client's), else the one whose last whole request is the oldest; so a scraper gets in, and
  its keep-alive connection, which sends a request every scrape, is the last to go;
- "out of system resource" accept errors are logged at most once a minute, no traceback.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl
import time
from collections import OrderedDict
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)

DESCRIPTOR_RESERVE = 128  # for provider connections, the state file, logs and the listening sockets
MAX_CONNECTIONS = 10_000
READ_HEADER_TIMEOUT = 10.0
IDLE_TIMEOUT = 75.0  # longer than Prometheus' default 1 m scrape interval, so scrapes reuse connections
TLS_HANDSHAKE_TIMEOUT = 10.0
LOG_EVERY_SECONDS = 60.0


def raise_descriptor_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (as Go programs do); returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65_536)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def default_max_connections(descriptor_limit: int) -> int:
    return max(16, min(MAX_CONNECTIONS, descriptor_limit - DESCRIPTOR_RESERVE))


class RateLimitedLog:
    """Logs a message at most once every `every` seconds, with how many were held back."""

    def __init__(self, every: float = LOG_EVERY_SECONDS) -> None:
        self.every = every
        self.last = -float("inf")
        self.held = 0

    def warning(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            self.held += 1
            return
        held, self.held, self.last = self.held, 0, now
        log.warning(message + (f" ({held} more since the last report)" if held else ""), *args)


class ConnectionGuard:
    """Protocol factory around aiohttp's server: caps connections, times out slow first requests."""

    def __init__(self, server: web.Server, max_connections: int, read_header_timeout: float) -> None:
        self.server = server
        self.max_connections = max_connections
        self.read_header_timeout = read_header_timeout
        self.fresh: OrderedDict[_Guarded, None] = OrderedDict()  # no whole request yet, oldest first
        self.served: OrderedDict[_Guarded, None] = OrderedDict()  # by their last whole request, oldest first
        self.shed_log = RateLimitedLog()

    def __call__(self) -> asyncio.Protocol:
        return _Guarded(self, self.server())


class _Guarded(asyncio.Protocol):
    """Delegates to aiohttp's RequestHandler; only adds bookkeeping around it."""

    def __init__(self, guard: ConnectionGuard, inner: RequestHandler) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        guard = self.guard
        while len(guard.fresh) + len(guard.served) >= guard.max_connections:  # bounded: one removed a round
            oldest, _ = (guard.fresh or guard.served).popitem(last=False)
            guard.shed_log.warning(
                "connection limit (%d) reached: closing the oldest idle or slow connections", guard.max_connections
            )
            oldest.abort()
        guard.fresh[self] = None
        self.timer = asyncio.get_running_loop().call_later(guard.read_header_timeout, self._header_deadline)
        self.inner.connection_made(transport)

    def _header_deadline(self) -> None:
        self.timer = None
        if self.inner._request_count == 0:  # no complete request yet: a slow or silent client
            self.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        before = self.inner._request_count
        self.inner.data_received(data)
        if self.inner._request_count != before:  # a whole request: this client does real work
            self.guard.fresh.pop(self, None)
            self.guard.served[self] = None
            self.guard.served.move_to_end(self)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()  # type: ignore[func-returns-value]

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.guard.fresh.pop(self, None)
        self.guard.served.pop(self, None)
        if self.timer is not None:
            self.timer.cancel()
        self.inner.connection_lost(exc)


class GuardedSite(web.TCPSite):
    """web.TCPSite whose connections go through a ConnectionGuard."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str | None,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        max_connections: int,
        read_header_timeout: float = READ_HEADER_TIMEOUT,
    ) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context)
        self.max_connections = max_connections
        self.read_header_timeout = read_header_timeout

    async def start(self) -> None:
        self._runner._reg_site(self)
        server = self._runner.server
        assert server is not None and isinstance(server, web.Server)
        guard = ConnectionGuard(server, self.max_connections, self.read_header_timeout)
        self._server = await asyncio.get_running_loop().create_server(
            guard,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if self._ssl_context else None,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Report "out of system resource" accept errors once a minute, no traceback; others as before."""
    limited = RateLimitedLog()
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if "socket.accept() out of system resource" in message:
            err = context.get("exception")
            limited.warning("cannot accept connections: %s (descriptor limit reached?); retrying", err)
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
