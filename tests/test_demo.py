"""The demo: live metrics from every simulator within seconds; the README lists every metric."""

from __future__ import annotations

import asyncio
import gzip
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from exporter.core.metrics import METRICS
from exporter.core.selfmetrics import SELF_METRICS
from exporter.simulator.demo import SIMULATORS
from tests.test_server import free_port, wait_for

REPO = Path(__file__).resolve().parent.parent
LIVE_WAIT_SECONDS = 60.0  # between the two scrapes that must differ


def series(text: str, name: str) -> dict[tuple[str, str], float]:
    """(provider, state) -> value of `name`."""
    return {
        (s.labels["provider"], s.labels.get("state", "")): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == name
    }


async def test_demo_serves_every_provider_within_ten_seconds(tmp_path):
    """Ready within seconds, valid exposition, and live: the counts move over a minute."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    # stderr to a file: a pipe nobody reads during the minute below could fill and block the demo.
    err_path = tmp_path / "demo.stderr"
    with err_path.open("w") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", "--demo", f"--web.listen-address=127.0.0.1:{port}"],
            cwd=REPO,
            stderr=err_file,
            text=True,
        )
    try:
        await wait_for(f"{base}/-/ready", seconds=10)
        text = await wait_for(f"{base}/metrics", seconds=2)
        elapsed = time.monotonic() - started
        first_scrape = time.monotonic()
        check = await asyncio.to_thread(
            subprocess.run, ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
        )
        openmetrics, zipped = await negotiated_scrapes(f"{base}/metrics")
        om_check = await asyncio.to_thread(
            subprocess.run,
            ["promtool", "check", "metrics"],
            input=openmetrics,
            capture_output=True,
            text=True,
            timeout=30,
        )
        # A real sleep on purpose: this proves the live demo (tasks keep arriving and finishing
        # against real simulators), which no fake clock can show. Polls run every 10 s.
        await asyncio.sleep(max(0.0, first_scrape + LIVE_WAIT_SECONDS - time.monotonic()))
        later = await wait_for(f"{base}/metrics", seconds=5)
        still_running = proc.poll() is None
    finally:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait, timeout=5)
    err = err_path.read_text()
    assert elapsed < 10
    tasks = series(text, "upload_tasks")
    for sim in SIMULATORS:
        for state in ("pending", "done"):
            assert tasks.get((sim.name, state), 0) > 0, (sim.name, state)
        # Failed uploads are errors, or unknown IDs where the API says no more (ipernity: invalid).
        assert tasks.get((sim.name, "error"), 0) + tasks.get((sim.name, "not_found"), 0) > 0, sim.name
        assert series(text, "upload_poll_up").get((sim.name, "")) == 1.0
    assert tasks[("yandex_direct", "error")] > 0
    for name, provider in (("upload_tasks_eta_seconds", "ipernity"), ("upload_tasks_progress_ratio", "encoding_com")):
        value = series(text, name).get((provider, ""))
        assert value is not None and math.isfinite(value), (name, provider, value)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout + check.stderr == ""
    # The operator's essentials: process memory, reload state, a last-success series for every set.
    scraped = {s.name: s for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert scraped["process_resident_memory_bytes"].value > 10e6
    assert scraped["upload_config_last_reload_successful"].value == 1.0
    assert scraped["upload_config_last_reload_success_timestamp_seconds"].value > 1e9
    assert sorted(series(text, "upload_poll_last_success_timestamp_seconds")) == sorted(
        (sim.name, "") for sim in SIMULATORS
    )
    assert 'scenario="demo"' in text and "env=" not in text  # no clash with a target's `env` label
    # OpenMetrics when asked, from the strict parser's point of view too; promtool (text format
    # only) reports nothing but the `_total` samples of OpenMetrics counter families.
    assert {fam.name for fam in parse_openmetrics(openmetrics)} >= {"upload_tasks", "process_resident_memory_bytes"}
    findings = [line for line in (om_check.stdout + om_check.stderr).splitlines() if line]
    assert all(line.endswith("_total no help text") for line in findings), findings
    assert zipped.startswith(b"\x1f\x8b") and b"upload_tasks{" in gzip.decompress(zipped)
    assert still_running, err
    before = {state: v for (provider, state), v in tasks.items() if provider == "yandex_direct"}
    after = {state: v for (provider, state), v in series(later, "upload_tasks").items() if provider == "yandex_direct"}
    assert before and after
    assert before != after, (before, after)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


async def negotiated_scrapes(url: str) -> tuple[str, bytes]:
    """The OpenMetrics body, and the raw gzip body of the text format."""
    async with aiohttp.ClientSession(auto_decompress=False) as client:
        async with client.get(
            url,
            headers={"Accept": "application/openmetrics-text; version=1.0.0"},
            skip_auto_headers=["Accept-Encoding"],
        ) as r:
            assert r.headers["Content-Type"].startswith("application/openmetrics-text")
            openmetrics = await r.text()
        async with client.get(url, headers={"Accept-Encoding": "gzip"}) as r:
            assert r.headers["Content-Encoding"] == "gzip"
            zipped = await r.read()
    return openmetrics, zipped


def test_readme_lists_every_metric_of_the_contract():
    readme = (REPO / "README.md").read_text()
    listed = set(re.findall(r"^\| `(upload_[a-z_]+)` \|", readme, flags=re.M))
    for own in SELF_METRICS:
        assert own.name in listed, own.name
    for spec in METRICS:
        name = spec.name + ("_total" if spec.kind == "counter" else "")
        assert name in listed, name
        assert name.startswith("upload_")
        if spec.kind == "counter":
            assert not spec.name.endswith("_total")  # the client appends it
        if "seconds" in spec.name or "ratio" in spec.name:
            assert spec.kind != "counter" or spec.name.endswith("seconds")
