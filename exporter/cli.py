"""Command line: flags, logging set-up, exit codes; nothing else.

Exit codes: 0 on a clean stop, a valid --check-config or a healthy --healthcheck; 1 when the
server cannot start or --healthcheck finds it unhealthy; 2 on a bad configuration or bad
flags, with one line per problem on stderr and no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import sqlite3
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from exporter import __version__, logs
from exporter.cluster import importer
from exporter.cluster import options as cluster_options
from exporter.cluster.keys import ClusterKeys
from exporter.core import config as config_mod
from exporter.core import listener, probe, webconfig
from exporter.core.daemon import Daemon, WebOptions
from exporter.core.errors import ConfigError, StateFileError, StoreUnavailable
from exporter.core.persist import StateFile
from exporter.core.state import StateStore
from exporter.providers import PROVIDERS

log = logging.getLogger("exporter")

DEFAULT_LISTEN = ":9877"
RESERVED_PATHS = ("/", "/-/healthy", "/-/ready", "/-/reload", "/api/v1/status")
ENV_LISTEN = "UPLOAD_EXPORTER_LISTEN_ADDRESS"
ENV_WEB_CONFIG = "UPLOAD_EXPORTER_WEB_CONFIG_FILE"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="upload-status-exporter", description="Prometheus exporter for upload-task status APIs."
    )
    p.add_argument(
        "--config.file", dest="config_file", default="config.yaml", help="YAML config (default: %(default)s)"
    )
    # Defaults may come from the environment, so that a container's HEALTHCHECK and its
    # command line read the same values.
    p.add_argument(
        "--web.listen-address",
        dest="listen",
        action="append",
        default=[],
        help="address to serve on, [host]:port; repeat it to listen on several "
        f"(default: ${ENV_LISTEN}, space-separated, or {DEFAULT_LISTEN})",
    )
    p.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        default="/metrics",
        help="path under which to expose metrics (default: %(default)s)",
    )
    p.add_argument(
        "--web.config.file",
        dest="web_config",
        default=os.environ.get(ENV_WEB_CONFIG, ""),
        help=f"TLS and basic auth, in the exporter-toolkit format (default: ${ENV_WEB_CONFIG})",
    )
    p.add_argument(
        "--web.max-connections",
        dest="max_connections",
        type=int,
        default=0,
        help="connections served at once; beyond, the oldest is closed "
        f"(default: the descriptor limit less {listener.DESCRIPTOR_RESERVE})",
    )
    p.add_argument(
        "--web.read-header-timeout",
        dest="read_header_timeout",
        type=float,
        default=listener.READ_HEADER_TIMEOUT,
        help="seconds a new connection has to send its first request (default: %(default)s)",
    )
    p.add_argument(
        "--web.idle-timeout",
        dest="idle_timeout",
        type=float,
        default=listener.IDLE_TIMEOUT,
        help="seconds an idle keep-alive connection is kept (default: %(default)s)",
    )
    p.add_argument(
        "--web.enable-lifecycle",
        dest="lifecycle",
        action="store_true",
        help="allow POST /-/reload (SIGHUP always reloads)",
    )
    p.add_argument(
        "--state.file",
        dest="state_file",
        default="",
        help="SQLite file that keeps tracked tasks and counters across restarts (default: memory only)",
    )
    cluster_options.add_arguments(p)
    p.add_argument("--log.level", dest="log_level", default="info", choices=["debug", "info", "warn", "error"])
    p.add_argument("--log.format", dest="log_format", default="logfmt", choices=["logfmt", "json"])
    p.add_argument("--check-config", action="store_true", help="validate the config and exit (0 valid, 2 invalid)")
    p.add_argument(
        "--healthcheck",
        action="store_true",
        help="ask the exporter running with these --web.* flags whether it is healthy (exit 0) or not (1)",
    )
    p.add_argument("--demo", action="store_true", help="run against simulated providers on loopback; no config needed")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    args = p.parse_args(argv)
    args.listen = args.listen or os.environ.get(ENV_LISTEN, "").split() or [DEFAULT_LISTEN]
    return args


HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$")


def split_address(address: str) -> tuple[str | None, int]:
    """':9877' -> (None, 9877) for all interfaces; '127.0.0.1:9877'; 'host:9877'; '[::1]:9877'."""
    problem = ValueError(f"--web.listen-address: expected [host]:port, [IPv6]:port or :port, got {address[:80]!r}")
    m = re.fullmatch(r"\[([^\[\]]+)\]:(\d{1,5})|([^:\[\]]*):(\d{1,5})", address)
    if not m:
        raise problem
    host, port = (m.group(1), m.group(2)) if m.group(1) is not None else (m.group(3), m.group(4))
    if not 0 < int(port) < 65536:
        raise problem
    if m.group(1) is not None:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise problem from None
    elif host and not HOST_NAME.match(host):
        raise problem
    return host or None, int(port)


def healthcheck(args: argparse.Namespace, addresses: list[tuple[str | None, int]]) -> int:
    """--healthcheck: 0 if every listen address answers /-/healthy with 200, else 1."""
    try:
        web_config = webconfig.load(args.web_config) if args.web_config else webconfig.WebConfig()
    except ConfigError as err:
        return report(err)
    healthy = True
    for host, port in addresses:
        ok, seen = probe.check(host, port, web_config)
        print(("healthy: " if ok else "unhealthy: ") + seen, file=sys.stdout if ok else sys.stderr)
        healthy = healthy and ok
    return 0 if healthy else 1


def report(err: ConfigError) -> int:
    """One line per problem on stderr, each naming the file and key path; exit status 2."""
    for problem in err.problems:
        print(problem, file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logs.setup("warning" if args.log_level == "warn" else args.log_level, args.log_format)
    try:
        addresses = [split_address(address) for address in args.listen]
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    if not args.telemetry_path.startswith("/") or args.telemetry_path in RESERVED_PATHS:
        print(
            f"--web.telemetry-path: expected a path starting with '/', other than {', '.join(RESERVED_PATHS)};"
            f" got {args.telemetry_path!r}",
            file=sys.stderr,
        )
        return 2
    if args.healthcheck:
        return healthcheck(args, addresses)
    if wrong := cluster_options.problems(args):
        print("\n".join(wrong), file=sys.stderr)
        return 2
    if args.import_file:
        return asyncio.run(import_state(args))
    if args.check_config:
        if args.demo:
            print("--check-config does not apply to --demo", file=sys.stderr)
            return 2
        try:
            cfg = config_mod.load(args.config_file, PROVIDERS)
            if args.web_config:
                webconfig.load(args.web_config)
        except ConfigError as err:
            return report(err)
        print(f"{args.config_file}: valid ({len(cfg.accounts)} accounts, {len(cfg.task_sets)} task sets)")
        return 0
    try:
        return asyncio.run(serve(args, addresses))
    except ConfigError as err:
        return report(err)
    except StateFileError as err:
        log.error("%s", err)
        return 1
    except sqlite3.Error as err:
        log.error("cannot use the state file %s: %s; move it aside or restore a backup", args.state_file, err)
        return 1
    except OSError as err:
        log.error("cannot listen on %s: %s", ", ".join(args.listen), err.strerror or err)
        return 1
    except KeyboardInterrupt:
        return 0


async def import_state(args: argparse.Namespace) -> int:
    """--state.import-file: copy a SQLite state file into Redis once."""
    redis = cluster_options.connect(args)
    try:
        copied = await importer.import_file(args.import_file, redis, ClusterKeys(args.redis_prefix))
    except (StateFileError, StoreUnavailable) as err:
        log.error("%s", err)
        return 1
    finally:
        await redis.aclose()
    for name, tasks in copied.items():
        print(f"imported set {name}: {tasks} tasks")
    return 0


async def serve(args: argparse.Namespace, addresses: Sequence[tuple[str | None, int]]) -> int:
    """Run the daemon until SIGTERM or SIGINT; SIGHUP reloads the config."""
    async with contextlib.AsyncExitStack() as stack:
        if args.demo:
            from exporter.simulator.demo import Demo  # the demo is the only user of the simulators

            demo = Demo(Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="upload-demo-"))))
            demo_config = config_mod.parse(await demo.start(), PROVIDERS, "<demo>")
            stack.push_async_callback(demo.stop)

            def load() -> config_mod.Config:
                return demo_config
        else:

            def load() -> config_mod.Config:
                return config_mod.load(args.config_file, PROVIDERS)

        web_config = webconfig.load(args.web_config) if args.web_config else webconfig.WebConfig()
        placement = cluster_options.placement(args) if args.redis_url else None
        if placement is not None:
            store = placement.store
        else:
            store = StateStore(StateFile(args.state_file)) if args.state_file else StateStore()
        await Daemon(load, PROVIDERS, store, placement=placement).serve(
            WebOptions(
                addresses,
                web_config,
                lifecycle_api=args.lifecycle,
                telemetry_path=args.telemetry_path,
                max_connections=args.max_connections,
                read_header_timeout=args.read_header_timeout,
                idle_timeout=args.idle_timeout,
            )
        )
    return 0
