"""What an operator relies on beside the task data: formats and gzip from cache, self-metrics,
reload metrics, the status endpoint, and the listen/telemetry flags. Real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
import os
import signal
import subprocess
import sys

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from exporter.core import config as config_mod
from exporter.core.daemon import Daemon
from exporter.core.exposition import NegotiatedExposition
from exporter.core.selfmetrics import ReloadStatus, live_registry
from exporter.core.server import make_app
from exporter.core.state import StateStore
from exporter.core.status import MAX_ERROR_CHARS, safe_message
from exporter.core.wiring import build_exposition
from exporter.providers import PROVIDERS
from exporter.simulator.yandex_direct import YandexDirectSimulator
from tests.test_server import CONFIG, REPO, TOKEN, free_port, wait_for

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


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


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def promtool_findings(body: bytes) -> str:
    check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=30)
    return (check.stdout + check.stderr).decode()


async def wait_ready(client: aiohttp.ClientSession, base: str) -> None:
    for _ in range(200):  # bounded: the first poll comes within the jitter (0 here)
        async with client.get(base + "/-/ready") as r:
            if r.status == 200:
                return
        await asyncio.sleep(0.05)
    raise AssertionError("not ready within 10s")


async def test_formats_and_gzip_come_from_the_cache_and_pass_promtool(sim, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(url=sim.url, interval=60))
    cfg = config_mod.load(path, PROVIDERS)
    runtime = Daemon(lambda: cfg, PROVIDERS)
    async with (
        TestServer(make_app(runtime), host="127.0.0.1") as server,
        aiohttp.ClientSession(auto_decompress=False) as client,
    ):
        base = str(server.make_url(""))
        await wait_ready(client, base)
        async with client.get(base + "/metrics", skip_auto_headers=["Accept-Encoding"]) as r:
            plain = await r.read()
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert "Content-Encoding" not in r.headers
        async with client.get(base + "/metrics", headers={"Accept-Encoding": "gzip, deflate"}) as r:
            zipped = await r.read()
            assert r.headers["Content-Encoding"] == "gzip"
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        async with client.get(base + "/metrics", headers={"Accept": OPENMETRICS, "Accept-Encoding": "gzip"}) as r:
            om = gzip.decompress(await r.read()).decode()
            assert r.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
        unzipped = gzip.decompress(zipped)
        assert len(zipped) * 4 < len(unzipped)
        # Task data identical in both; the process metrics move between two scrapes.
        task_lines = [line for line in unzipped.decode().splitlines() if line.startswith("upload_")]
        assert task_lines == [line for line in plain.decode().splitlines() if line.startswith("upload_")]
        assert om.endswith("# EOF\n") and om.count("# EOF") == 1
        names = {fam.name for fam in parse_openmetrics(om)}  # the strict OpenMetrics parser accepts it
        assert {
            "upload_tasks",
            "process_resident_memory_bytes",
            "python_info",
            "python_gc_objects_collected",
            "upload_config_last_reload_successful",
        } <= names
        # One cache entry per format; the same task-data bytes until the state changes.
        exposition = runtime.exposition
        assert exposition is not None
        cached = dict(exposition._cache)
        assert len(cached) == 2
        async with client.get(base + "/metrics", headers={"Accept": OPENMETRICS}) as r:
            await r.read()
        assert all(exposition._cache[k] is v for k, v in cached.items())
        text_body = next(v for k, v in cached.items() if k.startswith("text/plain")).body
        assert text_body is exposition.exposition.render()
    assert promtool_findings(plain) == ""
    assert promtool_findings(unzipped) == ""
    # promtool 2.42 lints the text format only: in OpenMetrics a counter family `x` has samples
    # `x_total`, which it reads as a family without HELP. Nothing else may be reported.
    findings = [line for line in promtool_findings(om.encode()).splitlines() if line]
    assert all(line.endswith("_total no help text") for line in findings), findings
    om_counters = {f"{fam.name}_total" for fam in parse_openmetrics(om) if fam.type == "counter"}
    assert {line.split()[0] for line in findings} <= om_counters


async def test_a_set_that_never_succeeded_has_a_zero_last_success_and_says_why(tmp_path):
    dead = free_port()  # nothing listens here
    path = tmp_path / "config.yaml"
    path.write_text(
        CONFIG.format(url=f"http://127.0.0.1:{dead}/live/v4/json/", interval=60).replace(
            "jitter: 0", "jitter: 0\n    max_tries: 1"
        )
    )
    cfg = config_mod.load(path, PROVIDERS)
    runtime = Daemon(lambda: cfg, PROVIDERS)
    async with TestServer(make_app(runtime), host="127.0.0.1") as server, aiohttp.ClientSession() as client:
        base = str(server.make_url(""))
        async with client.get(base + "/metrics") as r:  # before the first poll
            first = samples(await r.text())
        await wait_ready(client, base)
        async with client.get(base + "/metrics") as r:
            after = samples(await r.text())
        async with client.get(base + "/api/v1/status") as r:
            doc = await r.json()
        async with client.get(base + "/") as r:
            page = await r.text()
    assert [v for _, v in first["upload_poll_last_success_timestamp_seconds"]] == [0.0]
    assert [v for _, v in after["upload_poll_last_success_timestamp_seconds"]] == [0.0]
    assert [v for _, v in after["upload_poll_up"]] == [0.0]
    (banners,) = doc["task_sets"]
    assert banners["health"] == "down" and banners["last_success_timestamp_seconds"] is None
    assert banners["last_success_age_seconds"] is None
    assert f"cannot reach 127.0.0.1:{dead}/live/v4/json/" in banners["last_error"]
    assert banners["last_error_timestamp_seconds"] > 0
    assert doc["config"]["last_reload_successful"] is True
    assert "cannot reach" in page and "never" in page and 'href="/api/v1/status"' in page
    assert TOKEN not in str(doc) and TOKEN not in page


def test_shown_errors_are_redacted_and_bounded():
    shown = safe_message("cannot reach http://user:pa55word@proxy.example:3128/x " + "y" * 1000)
    assert "pa55word" not in shown and "user" not in shown and "http://***@proxy.example:3128/x" in shown
    assert len(shown) == MAX_ERROR_CHARS


async def test_reload_metrics_follow_post_reload(sim, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(url=sim.url, interval=60))
    runtime = Daemon(lambda: config_mod.load(path, PROVIDERS), PROVIDERS)

    async def reload_metrics() -> tuple[float, float]:
        async with client.get(base + "/metrics") as r:
            got = samples(await r.text())
        return (
            got["upload_config_last_reload_successful"][0][1],
            got["upload_config_last_reload_success_timestamp_seconds"][0][1],
        )

    async with (
        TestServer(make_app(runtime, lifecycle_api=True), host="127.0.0.1") as server,
        aiohttp.ClientSession() as client,
    ):
        base = str(server.make_url(""))
        ok, started = await reload_metrics()
        assert ok == 1.0 and started > 0
        path.write_text("accounts: {}\n")
        async with client.post(base + "/-/reload") as r:
            assert r.status == 500
        assert await reload_metrics() == (0.0, started)
        async with client.get(base + "/api/v1/status") as r:
            assert (await r.json())["config"]["last_reload_successful"] is False
        path.write_text(CONFIG.format(url=sim.url, interval=30))
        async with client.post(base + "/-/reload") as r:
            assert r.status == 200
        ok, reloaded = await reload_metrics()
        assert ok == 1.0 and reloaded >= started


async def test_listen_addresses_and_telemetry_path_flags(sim, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(url=sim.url, interval=60))
    ports = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter",
            f"--config.file={path}",
            "--web.telemetry-path=/internal/metrics",
            *(f"--web.listen-address=127.0.0.1:{port}" for port in ports),
        ],
        cwd=REPO,
        env={**os.environ, "SERVER_TOKEN": TOKEN},
        stderr=subprocess.DEVNULL,
    )
    try:
        for port in ports:
            text = await wait_for(f"http://127.0.0.1:{port}/internal/metrics")
            assert "upload_build_info{" in text and "process_resident_memory_bytes" in text
            assert 'href="/internal/metrics"' in await wait_for(f"http://127.0.0.1:{port}/")
        async with aiohttp.ClientSession() as client, client.get(f"http://127.0.0.1:{ports[0]}/metrics") as r:
            assert r.status == 404
        # A failed SIGHUP reload shows in the reload metric; the running config goes on.
        path.write_text("task_sets: nope\n")
        proc.send_signal(signal.SIGHUP)
        for _ in range(100):  # bounded: the reload is handled within a few loop turns
            text = await wait_for(f"http://127.0.0.1:{ports[1]}/internal/metrics")
            if "upload_config_last_reload_successful 0.0" in text:
                break
            await asyncio.sleep(0.1)
        assert "upload_config_last_reload_successful 0.0" in text and 'task_set="banners"' in text
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 15)
    assert proc.returncode == 0


@pytest.mark.parametrize("path", ["metrics", "/-/healthy", "/"])
def test_a_bad_telemetry_path_is_a_flag_error(path):
    proc = subprocess.run(
        [sys.executable, "-m", "exporter", "--demo", f"--web.telemetry-path={path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and "--web.telemetry-path" in proc.stderr


def test_the_live_part_is_reused_for_a_second_and_redone_after_a_reload():
    cfg = config_mod.parse(
        {
            "accounts": {
                "direct": {
                    "provider": "yandex_direct",
                    "endpoint": "http://127.0.0.1:1/",
                    "token": {"env": "SERVER_TOKEN"},
                }
            },
            "task_sets": [{"name": "banners", "account": "direct", "tasks": {"ids": ["1"]}}],
        },
        PROVIDERS,
    )
    now = [100.0]
    reloads = ReloadStatus()
    expo = NegotiatedExposition(
        build_exposition(cfg, PROVIDERS, StateStore()), live_registry(reloads), reloads, clock=lambda: now[0]
    )
    first, _ = expo.render()
    ((rendered_at, _, live),) = expo._live.values()
    now[0] += 0.5
    assert expo.render()[0] == first and list(expo._live.values()) == [(rendered_at, 0, live)]  # reused
    now[0] += 0.6
    expo.render()
    assert next(iter(expo._live.values()))[0] == now[0]  # a second later: rendered again
    reloads.failed()
    after_reload, _ = expo.render()
    assert b"upload_config_last_reload_successful 0.0" in after_reload
    assert next(iter(expo._live.values()))[1] == reloads.version
