"""Basic auth for the exporter's endpoints, with bcrypt kept off the event loop.

A bcrypt check costs tens to hundreds of milliseconds by design. Run on the loop, a few
clients sending wrong passwords stall every scrape and liveness probe; run without a
bound, they queue unbounded work. So checks run in CHECKERS worker processes at nice 19:
processes rather than threads, because a low-priority thread that is descheduled while it
holds the GIL (to hand back its result) would stall the event loop with it; at the lowest
priority, so the event loop wins every core it wants. Beyond MAX_WAITING queued checks a
request is told 401 at once (a client that guesses faster than bcrypt runs gets nothing).
A successful check is cached, keyed on the user and a hash of the password (as the
exporter-toolkit does), so Prometheus scraping every few seconds pays bcrypt once. An
unknown user is checked against a dummy hash of the same cost, so a 401 takes as long
whether or not the user exists. A password bcrypt cannot take (over 72 bytes) or a hash it
cannot parse gives 401, never 500.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import multiprocessing
from collections.abc import Awaitable, Callable, Collection, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import bcrypt
from aiohttp import web
from aiohttp.typedefs import Middleware

from exporter.core import bcryptworker

log = logging.getLogger(__name__)

CHECKERS = 2  # bcrypt checks at a time: the machine's cores are for polling and scraping too
MAX_WAITING = 16  # checks queued beyond that; more are refused (401) without running bcrypt
CACHE_SIZE = 1024
MAX_PASSWORD_BYTES = 72  # bcrypt's own limit
REALM = 'Basic realm="upload-status-exporter"'

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _cost(hashed: bytes) -> int:
    try:
        return int(hashed.split(b"$")[2])
    except (IndexError, ValueError):
        return 10


class BasicAuth:
    """Checks `Authorization: Basic` credentials against bcrypt hashes."""

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self.users = dict(users)
        cost = min(max(max((_cost(h) for h in self.users.values()), default=10), 4), 31)
        # Same cost as the real hashes, so an unknown user costs what a known one does. It
        # matches no password and needs no hashing to make: bcrypt runs its rounds all the same.
        self.dummy = bcrypt.gensalt(rounds=cost) + b"." * 31
        self.cache: dict[bytes, None] = {}  # keys of checks that passed, oldest first
        self.executor: ProcessPoolExecutor | None = None  # started at the first check
        self.waiting = 0

    def _key(self, user: str, password: bytes) -> bytes:
        hashed = self.users.get(user, self.dummy)
        return hashlib.sha256(user.encode() + b"\0" + password + b"\0" + hashed).digest()

    async def check(self, header: str) -> bool:
        credentials = _parse(header)
        if credentials is None:
            return False
        user, password = credentials
        key = self._key(user, password)
        if key in self.cache:
            return True
        if self.waiting >= CHECKERS + MAX_WAITING:
            return False  # a flood: refuse without queueing more bcrypt work
        self.waiting += 1
        hashed = self.users.get(user)
        try:
            matches = await asyncio.get_running_loop().run_in_executor(
                self._pool(),
                bcryptworker.check,
                password[:MAX_PASSWORD_BYTES],
                self.dummy if hashed is None else hashed,
            )
        except BrokenProcessPool:  # a worker died (killed, out of memory): start afresh next time
            log.warning("a bcrypt worker process died; starting new ones")
            self.close()
            matches = False
        finally:
            self.waiting -= 1
        # A longer password is refused, after the same work as any other check.
        ok = matches and hashed is not None and len(password) <= MAX_PASSWORD_BYTES
        if ok:
            self.cache[key] = None
            if len(self.cache) > CACHE_SIZE:
                del self.cache[next(iter(self.cache))]
        return ok

    def _pool(self) -> ProcessPoolExecutor:
        if self.executor is None:
            # "spawn": a fresh interpreter, not a fork of this one with its threads and sockets.
            self.executor = ProcessPoolExecutor(
                CHECKERS, mp_context=multiprocessing.get_context("spawn"), initializer=bcryptworker.lower_priority
            )
        return self.executor

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor = None


def _parse(header: str) -> tuple[str, bytes] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or len(encoded) > 1024:
        return None
    try:
        user, sep, clear = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not sep:
        return None
    return user, clear.encode()


def basic_auth_middleware(auth: BasicAuth, exempt: Collection[str] = ()) -> Middleware:
    """Require one of `auth`'s users on every route except those whose resource names are in `exempt`."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route
        if route.resource is not None and route.resource.canonical in exempt:
            return await handler(request)
        if await auth.check(request.headers.get("Authorization", "")):
            return await handler(request)
        return web.Response(status=401, text="Unauthorized\n", headers={"WWW-Authenticate": REALM})

    return middleware


def constant_time_equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
