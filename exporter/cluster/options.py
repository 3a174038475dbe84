"""The --state.redis-* flags: what they take, what they refuse, and the Redis connection.

The URL carries no password: it comes from UPLOAD_EXPORTER_REDIS_PASSWORD or from the file
named by --state.redis-password-file, so it is never on a command line (nor in `ps`).
"""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from exporter.cluster.keys import DEFAULT_PREFIX, ClusterKeys
from exporter.cluster.placement import DEFAULT_TTL_SECONDS, RedisPlacement

ENV_PASSWORD = "UPLOAD_EXPORTER_REDIS_PASSWORD"
SOCKET_TIMEOUT_SECONDS = 3.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--state.redis-url",
        dest="redis_url",
        default="",
        help="share state with other replicas in Redis (redis:// or rediss://, no password in it); "
        "excludes --state.file",
    )
    p.add_argument(
        "--state.redis-password-file",
        dest="redis_password_file",
        default="",
        help=f"file holding the Redis password (else ${ENV_PASSWORD}, if set)",
    )
    p.add_argument(
        "--state.redis-key-prefix",
        dest="redis_prefix",
        default=DEFAULT_PREFIX,
        help="prefix of every key, for several exporter clusters on one Redis (default: %(default)s)",
    )
    p.add_argument(
        "--state.redis-lease-ttl",
        dest="redis_ttl",
        type=float,
        default=DEFAULT_TTL_SECONDS,
        help="seconds a task set's lease outlives its holder (default: %(default)s)",
    )
    p.add_argument(
        "--state.import-file",
        dest="import_file",
        default="",
        help="with --state.redis-url: copy this SQLite state file into Redis once, then exit",
    )


def problems(args: argparse.Namespace) -> list[str]:
    """What is wrong with the Redis flags, one line each."""
    out = []
    if args.import_file and not args.redis_url:
        out.append("--state.import-file: needs --state.redis-url (where to import to)")
    if not args.redis_url:
        return out
    if args.state_file:
        out.append("--state.redis-url: excludes --state.file (keep state in one place)")
    parts = urlsplit(args.redis_url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        out.append(f"--state.redis-url: expected a redis://, rediss:// or unix:// URL, got scheme {parts.scheme!r}")
    try:
        _ = parts.port  # raises for a port that is not one
    except ValueError:
        out.append("--state.redis-url: expected a port from 0 to 65535")
    if parts.password or "password" in parse_qs(parts.query):  # redis-py takes ?password= too
        out.append(
            f"--state.redis-url: must not carry a password; set ${ENV_PASSWORD} or --state.redis-password-file instead"
        )
    if args.redis_ttl < 3:
        out.append(f"--state.redis-lease-ttl: expected at least 3 seconds, got {args.redis_ttl:g}")
    if args.redis_password_file:
        try:
            Path(args.redis_password_file).read_text()
        except OSError as err:
            out.append(f"--state.redis-password-file: cannot read {args.redis_password_file}: {err.strerror or err}")
    return out


def connect(args: argparse.Namespace) -> Redis:
    """A client for the URL, with the password from the file or the environment."""
    password = None
    if args.redis_password_file:
        password = Path(args.redis_password_file).read_text().strip() or None
    elif os.environ.get(ENV_PASSWORD):
        password = os.environ[ENV_PASSWORD]
    return Redis.from_url(
        args.redis_url,
        password=password,
        decode_responses=True,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1),  # a failure shows at once; the callers decide what to do
    )


def placement(args: argparse.Namespace) -> RedisPlacement:
    replica = f"{socket.gethostname()}-{os.getpid()}"
    return RedisPlacement(connect(args), keys=ClusterKeys(args.redis_prefix), replica=replica, ttl=args.redis_ttl)
