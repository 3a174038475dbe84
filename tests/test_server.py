"""The HTTP surface and the process lifecycle: endpoints, readiness, signals, exit codes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from exporter.core import config as config_mod
from exporter.core.daemon import Daemon
from exporter.core.server import make_app
from exporter.providers import PROVIDERS
from exporter.simulator.yandex_direct import YandexDirectSimulator

REPO = Path(__file__).resolve().parent.parent
TOKEN = "server-token-0123456789"
CONFIG = """
accounts:
  direct:
    provider: yandex_direct
    endpoint: {url}
    token: {{env: SERVER_TOKEN}}
task_sets:
  - name: banners
    account: direct
    interval: {interval}
    jitter: 0
    tasks: {{discover: true}}
"""


@pytest.fixture(autouse=True)
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVER_TOKEN", TOKEN)


@pytest.fixture
async def sim():
    s = YandexDirectSimulator(token=TOKEN)
    s.add_random_tasks(50, min_s=0, max_s=1, backdate_s=5)
    await s.start()
    yield s
    await s.stop()


async def test_endpoints_and_readiness(sim, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(url=sim.url, interval=1))
    runtime = Daemon(lambda: config_mod.load(path, PROVIDERS), PROVIDERS)
    async with (
        TestServer(make_app(runtime, lifecycle_api=True), host="127.0.0.1") as server,
        aiohttp.ClientSession() as client,
    ):
        base = str(server.make_url(""))
        async with client.get(base + "/-/healthy") as r:
            assert r.status == 200
        for _ in range(100):  # bounded: the first poll comes within the jitter (0 here)
            async with client.get(base + "/-/ready") as r:
                if r.status == 200:
                    break
            await asyncio.sleep(0.05)
        assert r.status == 200
        async with client.get(base + "/metrics") as r:
            text = await r.text()
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        tracked = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith('upload_tasks{provider="yandex_direct",state=')
        ]
        assert len(tracked) == 4 and sum(tracked) == 50
        assert TOKEN not in text
        async with client.get(base + "/") as r:
            page = await r.text()
            assert "banners" in page and 'href="/metrics"' in page
        # A bad config on reload is refused and the running one keeps going.
        path.write_text("accounts: {}\n")
        async with client.post(base + "/-/reload") as r:
            assert r.status == 500 and "accounts" in await r.text()
        path.write_text(CONFIG.format(url="ftp://user:PASSWORD@api.example.com/", interval="never"))
        async with client.post(base + "/-/reload") as r:
            body = await r.text()
            assert r.status == 500 and "interval" in body and "PASSWORD" not in body and "ftp://***@" in body
        async with client.get(base + "/metrics") as r:
            assert "banners" in await r.text()
        path.write_text(CONFIG.format(url=sim.url, interval=2).replace("banners", "logos"))
        async with client.post(base + "/-/reload") as r:
            assert r.status == 200
        async with client.get(base + "/metrics") as r:
            text = await r.text()
        assert 'task_set="banners"' not in text  # the old set's series are gone


async def test_reload_needs_the_lifecycle_flag(sim, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(url=sim.url, interval=60))
    cfg = config_mod.load(path, PROVIDERS)
    async with (
        TestServer(make_app(Daemon(lambda: cfg, PROVIDERS)), host="127.0.0.1") as server,
        aiohttp.ClientSession() as client,
        client.post(str(server.make_url("/-/reload"))) as r,
    ):
        assert r.status in (404, 405)  # not routed at all


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for(url: str, seconds: float = 15.0) -> str:
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as client:
        while time.monotonic() < deadline:
            try:
                async with client.get(url) as r:
                    if r.status == 200:
                        return await r.text()
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {seconds}s")


async def test_sighup_reload_and_sigterm_stop(sim, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(url=sim.url, interval=1))
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter",
            f"--config.file={path}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.format=json",
        ],
        cwd=REPO,
        env={**os.environ, "SERVER_TOKEN": TOKEN},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        await wait_for(f"http://127.0.0.1:{port}/-/ready")
        path.write_text("task_sets: nope\n")
        proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        assert proc.poll() is None  # still running on the old config
        text = await wait_for(f"http://127.0.0.1:{port}/metrics")
        assert 'task_set="banners"' in text
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.to_thread(proc.communicate, timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "config reload failed" in err and "Traceback" not in err
    assert TOKEN not in err


def test_busy_port_exits_1():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "exporter", "--demo", f"--web.listen-address=127.0.0.1:{port}"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert proc.returncode == 1 and "cannot listen" in proc.stderr and "Traceback" not in proc.stderr


async def test_pushed_ids_are_tracked_and_polled(sim, tmp_path, monkeypatch):
    monkeypatch.setenv("PUSH_TOKEN", "push-token-abcdef")
    path = tmp_path / "config.yaml"
    path.write_text(
        CONFIG.format(url=sim.url, interval=60).replace(
            "tasks: {discover: true}", "tasks: {push_token: {env: PUSH_TOKEN}}"
        )
    )
    cfg = config_mod.load(path, PROVIDERS)
    runtime = Daemon(lambda: cfg, PROVIDERS)
    ids = list(sim.tasks)[:7]
    async with TestServer(make_app(runtime), host="127.0.0.1") as server, aiohttp.ClientSession() as client:
        url = str(server.make_url("/api/v1/task_sets/banners/tasks"))
        async with client.post(url, json={"ids": ids}) as r:
            assert r.status == 401
        auth = {"Authorization": "Bearer push-token-abcdef"}
        async with client.post(url, json={"ids": ["bad id with spaces"]}, headers=auth) as r:
            assert r.status == 400
        async with client.post(url, json={"ids": ids[:5]}, headers=auth) as r:
            assert r.status == 200 and (await r.json())["added"] == 5
        async with client.post(url, data="\n".join(ids), headers=auth) as r:
            assert (await r.json()) == {"task_set": "banners", "added": 2, "tracked": 7}
        async with client.post(
            str(server.make_url("/api/v1/task_sets/nope/tasks")), json={"ids": ids}, headers=auth
        ) as r:
            assert r.status == 404
        await runtime.runner("banners").poll_once()
        assert sorted(sim.calls[-1].ids) == sorted(ids)
        async with client.get(str(server.make_url("/metrics"))) as r:
            assert "push-token-abcdef" not in await r.text()
