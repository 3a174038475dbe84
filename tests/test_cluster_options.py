"""The --state.redis-* flags and the Redis password: bad flags stop the start with one line
and exit 2, and the password, from the environment or a file, is never shown: not in the
log, on /metrics, /api/v1/status or the landing page, right or wrong."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter import cli
from exporter.cluster.options import ENV_PASSWORD
from tests.exporter_process import ExporterProcess
from tests.fault_world import World
from tests.prometheus_stack import wait_for
from tests.redis_server import RedisServer

PASSWORD = f"rpw-{secrets.token_hex(12)}"
TTL = 3.0
TASKS = 20
SLACK = 10.0  # start-up and a busy 2-core machine


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        ([f"--state.redis-url=redis://:{PASSWORD}@127.0.0.1:6379/0"], "must not carry a password"),
        ([f"--state.redis-url=redis://user:{PASSWORD}@127.0.0.1:6379/0"], "must not carry a password"),
        ([f"--state.redis-url=redis://127.0.0.1:6379/0?password={PASSWORD}"], "must not carry a password"),
        ([f"--state.redis-url=unix://:{PASSWORD}@/run/redis.sock"], "must not carry a password"),
        (["--state.redis-url=redis://127.0.0.1:6379/0", "--state.file=state.db"], "excludes --state.file"),
        (["--state.redis-url=http://127.0.0.1:6379/0"], "expected a redis://, rediss:// or unix:// URL"),
        (["--state.redis-url=redis://127.0.0.1:99999/0"], "expected a port"),
        (["--state.redis-url=redis://127.0.0.1:port/0"], "expected a port"),
        (["--state.import-file=state.db"], "--state.import-file: needs --state.redis-url"),
        (["--state.redis-url=redis://127.0.0.1:6379/0", "--state.redis-lease-ttl=1"], "at least 3 seconds, got 1"),
        (
            ["--state.redis-url=redis://127.0.0.1:6379/0", "--state.redis-password-file=/nonexistent/pw"],
            "--state.redis-password-file: cannot read /nonexistent/pw",
        ),
    ],
)
def test_bad_redis_flags_exit_2_with_one_line(
    flags: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A valid config: only the flags are wrong, and nothing starts.
    assert cli.main([*flags, "--config.file=/nonexistent/config.yaml", "--web.listen-address=127.0.0.1:9"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1 and problem in err, err
    assert PASSWORD not in err and "Traceback" not in err


# -- a real process against a redis-server that wants a password ----------------------------------


@pytest.fixture
def world() -> Iterator[World]:
    w = World(["yandex_direct"])
    try:
        yield w
    finally:
        w.close()


@pytest.fixture
def locked_redis(make_redis_server: Callable[..., RedisServer]) -> RedisServer:
    return make_redis_server(password=PASSWORD)


def config(world: World) -> dict[str, Any]:
    ids = world.add_tasks("yandex_direct", [world.clock("yandex_direct") + 600.0] * TASKS)
    task_set = {"name": "banners", "account": "d", "interval": "1s", "tasks": {"ids": ids}}
    return {"accounts": {"d": world.account("yandex_direct")}, "task_sets": [task_set]}


def replica(
    tmp_path: Path, world: World, redis: RedisServer, name: str, *args: str, env: dict[str, str] | None = None
) -> ExporterProcess:
    flags = [f"--state.redis-url={redis.url}", f"--state.redis-lease-ttl={TTL:g}", f"--state.redis-key-prefix={name}"]
    return ExporterProcess(tmp_path, config(world), {**world.env, **(env or {})}, args=[*flags, *args], name=name)


def shown(exporter: ExporterProcess) -> str:
    """Everything the process shows: its log, /metrics, /api/v1/status, the landing page, its command line."""
    assert exporter.proc is not None
    pages = [exporter.get(path, 5.0)[1] for path in ("/metrics", "/api/v1/status", "/")]
    cmdline = Path(f"/proc/{exporter.proc.pid}/cmdline").read_bytes().decode(errors="replace")
    return "\n".join([exporter.log_text(), *pages, cmdline])


def polled(exporter: ExporterProcess) -> bool:
    metrics = exporter.scrape(3.0)
    return metrics is not None and metrics.value("upload_tasks", task_set="banners") == TASKS


def test_the_password_from_the_environment_or_a_file_is_used_and_never_shown(
    tmp_path: Path, world: World, locked_redis: RedisServer
) -> None:
    password_file = tmp_path / "redis-password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    from_env = replica(tmp_path, world, locked_redis, "env", env={ENV_PASSWORD: PASSWORD})
    from_file = replica(tmp_path, world, locked_redis, "file", f"--state.redis-password-file={password_file}")
    exporters = [from_env, from_file]
    try:
        for exporter in exporters:
            exporter.start()
        for exporter in exporters:
            name = exporter.log_path.name
            wait_for(lambda e=exporter: e.get("/-/ready", 2.0)[0] == 200, 20.0 + SLACK, f"{name} ready")  # type: ignore[misc]
            wait_for(lambda e=exporter: polled(e), 10.0 + SLACK, f"{name} to poll the set")  # type: ignore[misc]
            metrics = exporter.scrape()
            assert metrics is not None and metrics.value("upload_store_up") == 1
            assert metrics.value("upload_lease_held", task_set="banners") == 1
        assert len(world.received("yandex_direct")) >= 2
        for exporter in exporters:
            text = shown(exporter)
            assert PASSWORD not in text, exporter.log_path.name
            assert "Traceback" not in exporter.log_text()
    finally:
        for exporter in exporters:
            exporter.stop()


def test_a_wrong_password_keeps_the_process_up_and_not_ready_and_is_not_shown(
    tmp_path: Path, world: World, locked_redis: RedisServer
) -> None:
    wrong = f"wrong-{secrets.token_hex(12)}"
    exporter = replica(tmp_path, world, locked_redis, "wrong", env={ENV_PASSWORD: wrong})
    exporter.start()
    try:
        wait_for(
            lambda: "cannot be reached (AuthenticationError)" in exporter.log_text(),
            3 * TTL + SLACK,
            "the failed authentication to be logged",
        )
        for _ in range(3):  # over a lease TTL: it stays up, never ready, never polls
            assert exporter.running()
            assert exporter.get("/-/ready", 2.0)[0] == 503
            metrics = exporter.scrape()
            assert metrics is not None and metrics.value("upload_store_up") == 0
            time.sleep(TTL / 2)
        assert world.received("yandex_direct") == []
        text = shown(exporter)
        assert wrong not in text and PASSWORD not in text
        assert "Traceback" not in exporter.log_text()
    finally:
        exporter.stop()
