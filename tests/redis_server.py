"""A real `redis-server` on 127.0.0.1 for the tests of state shared by replicas.

The process (a temp dir, no persistence unless told, optional `requirepass`, a port kept
across `stop`/`kill` and `start`) is benchmarks/redis_server.py's; the tests add clients
that give up fast. Every wait is bounded in time.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from benchmarks import redis_server

CLIENT_TIMEOUT_SECONDS = 2.0


class RedisServer(redis_server.RedisServer):
    """One redis-server process; `start`, `stop`, `kill`, `start` again on the same port; `client`s of it."""

    def __init__(
        self,
        workdir: Path,
        *,
        password: str | None = None,
        extra_config: dict[str, str] | None = None,
    ) -> None:
        super().__init__(workdir, password=password, extra_config=extra_config)
        self._clients: list[aioredis.Redis] = []

    def client(self, *, password: str | None = None, **options: Any) -> aioredis.Redis:
        """A redis.asyncio client for this server (its own password unless given), closed by `aclose`.

        By default it gives up fast: one immediate retry (a pooled connection the server closed)
        and socket timeouts, so a test sees the real failure; `options` override any of it.
        """
        settings: dict[str, Any] = {
            "password": self.password if password is None else password,
            "socket_timeout": CLIENT_TIMEOUT_SECONDS,
            "socket_connect_timeout": CLIENT_TIMEOUT_SECONDS,
            "retry": Retry(NoBackoff(), 1),
            **options,
        }
        client = aioredis.Redis(host="127.0.0.1", port=self.port, db=0, **settings)
        self._clients.append(client)
        return client

    async def aclose(self) -> None:
        """Close every client handed out, then stop the server."""
        for client in self._clients:
            with contextlib.suppress(Exception):
                await client.aclose()
        self._clients.clear()
        self.stop()
