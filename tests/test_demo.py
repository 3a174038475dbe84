"""The demo: live metrics from every simulator within seconds; the README lists every metric."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from exporter.core.metrics import METRICS
from exporter.simulator.demo import SIMULATORS
from tests.test_server import free_port, wait_for

REPO = Path(__file__).resolve().parent.parent


def series(text: str, name: str) -> dict[tuple[str, str], float]:
    """(provider, state) -> value of `name`."""
    return {(s.labels["provider"], s.labels.get("state", "")): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples if s.name == name}


async def test_demo_serves_every_provider_within_ten_seconds():
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "--demo", f"--web.listen-address=127.0.0.1:{port}"],
                            cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        await wait_for(f"http://127.0.0.1:{port}/-/ready", seconds=10)
        text = await wait_for(f"http://127.0.0.1:{port}/metrics", seconds=2)
        elapsed = time.monotonic() - started
    finally:
        proc.terminate()
        _, err = await asyncio.to_thread(proc.communicate, timeout=15)
    assert elapsed < 10
    tasks = series(text, "upload_tasks")
    for sim in SIMULATORS:
        for state in ("pending", "done"):
            assert tasks.get((sim.name, state), 0) > 0, (sim.name, state)
        # Failed uploads are errors, or unknown IDs where the API says no more (ipernity: invalid).
        assert tasks.get((sim.name, "error"), 0) + tasks.get((sim.name, "not_found"), 0) > 0, sim.name
        assert series(text, "upload_poll_up").get((sim.name, "")) == 1.0
    assert tasks[("yandex_direct", "error")] > 0
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_readme_lists_every_metric_of_the_contract():
    readme = (REPO / "README.md").read_text()
    listed = set(re.findall(r"^\| `(upload_[a-z_]+)` \|", readme, flags=re.M))
    for spec in METRICS:
        name = spec.name + ("_total" if spec.kind == "counter" else "")
        assert name in listed, name
        assert name.startswith("upload_")
        if spec.kind == "counter":
            assert not spec.name.endswith("_total")  # the client appends it
        if "seconds" in spec.name or "ratio" in spec.name:
            assert spec.kind != "counter" or spec.name.endswith("seconds")
