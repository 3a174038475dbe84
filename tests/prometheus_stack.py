"""A real monitoring stack on 127.0.0.1 for the end-to-end test of the shipped Grafana/alerting files.

Every simulator of the demo, two exporters polling them every second (replicas: each its own
HTTP server, client session and scheduler, over one shared state store, as replicas that share
state are) and a webhook receiver run on an event loop in a background thread, so they answer
while the test blocks; the
Debian `prometheus` and `prometheus-alertmanager` run as subprocesses with temp storage.
`Stack.close` stops everything, also after a failed start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import yaml
from aiohttp import web

from exporter.core import config as config_mod
from exporter.core.daemon import Daemon
from exporter.core.server import make_app
from exporter.core.state import StateStore
from exporter.providers import PROVIDERS
from exporter.simulator.base import Simulator, runner_port
from exporter.simulator.demo import SIMULATORS

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "grafana" / "alerts" / "upload-status.rules.yml"
ALERTMANAGER_EXAMPLE = ROOT / "grafana" / "alertmanager.example.yml"
JOB = "upload-status-exporter"
STEP_SECONDS = 0.15  # how often a wait looks again at a real process
BUDGET_SECONDS = 80.0  # every wait of one stack together, start included
# API error codes a simulator can be told to answer with, so the API error panels have data;
# 1002 is Yandex Direct's retryable "operation error".
API_ERRORS = {"yandex_direct": "1002"}
REPLICAS = 2  # exporters scraped side by side: no dashboard panel may double


def free_port() -> int:
    """A loopback port free right now, for the programs that cannot report the one they bound."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], T | None], timeout: float, what: str, step: float = STEP_SECONDS) -> T:
    """Poll `check` (a real process, so real time) until it returns a truthy value or `timeout` passes."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        pause.wait(step)


def http_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # only 127.0.0.1 URLs reach here
        return json.load(resp)


def shortened_rules(target: Path) -> Path:
    """The shipped rules with every `for:` cut to 1s; expressions and thresholds unchanged."""
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    for group in doc["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "1s"
    target.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return target


def alertmanager_test_config(webhook: str) -> dict[str, Any]:
    """The shipped Alertmanager example, its receivers pointed at the test webhook, waits cut to 1s."""
    doc: dict[str, Any] = yaml.safe_load(ALERTMANAGER_EXAMPLE.read_text(encoding="utf-8"))
    doc["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1m")
    for receiver in doc["receivers"]:
        receiver["webhook_configs"] = [{"url": f"{webhook}/{receiver['name']}", "send_resolved": False}]
    return doc


class LoopThread:
    """An asyncio loop in a daemon thread; `run` executes a coroutine there and waits for it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="stack-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


class Stack:
    """Simulators, exporter, webhook, Alertmanager and Prometheus; `start` then `close`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.loop = LoopThread()
        self.simulators: list[Simulator] = []
        self.runners: list[web.AppRunner] = []
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.webhook_calls: list[tuple[str, dict[str, Any]]] = []
        self.webhook_event = threading.Event()
        self.exporter_urls: list[str] = []
        self.exporter_url = self.prometheus_url = self.alertmanager_url = ""
        self.deadline = time.monotonic() + BUDGET_SECONDS

    def wait(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        """`wait_for` within both `timeout` and what is left of the stack's time budget."""
        return wait_for(check, max(0.0, min(timeout, self.deadline - time.monotonic())), what)

    # -- in-process parts -------------------------------------------------------------
    async def _serve(self, app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        self.runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{runner_port(runner)}"

    async def _start_exporter(self) -> None:
        raw: dict[str, Any] = {"accounts": {}, "task_sets": []}
        for i, cls in enumerate(SIMULATORS):
            sim = cls(seed=11 + i)
            self.simulators.append(sim)
            await sim.start()
            # Short uploads, half of them failing, finishing while Prometheus watches.
            ids = sim.add_random_tasks(60, min_s=1, max_s=20, fail_ratio=0.5)
            ids_file = self.workdir / f"{sim.name}.ids"
            ids_file.write_text("".join(f"{t}\n" for t in ids), encoding="utf-8")
            sim.fail_next(f"api:{API_ERRORS[sim.name]}" if sim.name in API_ERRORS else "http_500", times=2)
            raw["accounts"][f"e2e-{sim.name}"] = sim.demo_account()
            raw["task_sets"].append(
                {
                    "name": f"e2e-{sim.name}",
                    "account": f"e2e-{sim.name}",
                    "interval": 1,
                    "jitter": 0,
                    "tasks": sim.demo_tasks(str(ids_file)),
                    "labels": {"scenario": "e2e"},
                    "per_task_series": 20,
                    "max_tries": 3,
                    "max_retry_time": 2,
                }
            )
        cfg = config_mod.parse(raw, PROVIDERS, "<e2e>")
        store = StateStore()
        for _ in range(REPLICAS):
            self.exporter_urls.append(await self._serve(make_app(Daemon(lambda: cfg, PROVIDERS, store))))
        self.exporter_url = self.exporter_urls[0]

    async def _webhook(self, request: web.Request) -> web.Response:
        self.webhook_calls.append((request.path, await request.json()))
        self.webhook_event.set()
        return web.Response(text="ok")

    async def _start_webhook(self) -> str:
        app = web.Application()
        app.router.add_post("/{receiver}", self._webhook)
        return await self._serve(app)

    async def _stop_servers(self) -> None:
        for runner in reversed(self.runners):
            await runner.cleanup()
        for sim in self.simulators:
            await sim.stop()

    # -- subprocesses -----------------------------------------------------------------
    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        log.close()

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _ready(self, name: str, url: str) -> bool:
        proc = self.processes[name]
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def _start_alertmanager(self, webhook: str) -> None:
        config = self.workdir / "alertmanager.yml"
        config.write_text(yaml.safe_dump(alertmanager_test_config(webhook), sort_keys=False), encoding="utf-8")
        port = free_port()
        self.alertmanager_url = f"http://127.0.0.1:{port}"
        self._spawn(
            "alertmanager",
            [
                "prometheus-alertmanager",
                f"--config.file={config}",
                f"--storage.path={self.workdir / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
        )

    def _start_prometheus(self) -> None:
        exporters = [urllib.parse.urlsplit(url).netloc for url in self.exporter_urls]
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(shortened_rules(self.workdir / "rules.yml"))],
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": [urllib.parse.urlsplit(self.alertmanager_url).netloc]}]}
                ]
            },
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": exporters}]}],
        }
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        port = free_port()
        self.prometheus_url = f"http://127.0.0.1:{port}"
        self._spawn(
            "prometheus",
            [
                "prometheus",
                f"--config.file={path}",
                f"--storage.tsdb.path={self.workdir / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
        )

    # -- whole stack ------------------------------------------------------------------
    def start(self) -> None:
        self.loop.run(self._start_exporter())
        webhook = self.loop.run(self._start_webhook())
        self._start_alertmanager(webhook)
        self._start_prometheus()
        self.wait(lambda: self._ready("alertmanager", self.alertmanager_url), 20, "Alertmanager to be ready")
        self.wait(lambda: self._ready("prometheus", self.prometheus_url), 20, "Prometheus to be ready")

    def close(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        with contextlib.suppress(Exception):
            self.loop.run(self._stop_servers())
        self.loop.close()

    # -- Prometheus API ---------------------------------------------------------------
    def query(self, expr: str, at: float | None = None) -> dict[str, Any]:
        """An instant query (now, or at unix time `at`); returns Prometheus's whole answer (status, data or error)."""
        params = {"query": expr, **({"time": f"{at:.3f}"} if at is not None else {})}
        url = f"{self.prometheus_url}/api/v1/query?{urllib.parse.urlencode(params)}"
        try:
            return dict(http_json(url))
        except urllib.error.HTTPError as err:  # 400 with a JSON body for parse errors
            return dict(json.load(err))

    def query_api(self, path: str) -> dict[str, Any]:
        """GET /api/v1/<path> (rules, alerts, targets ...)."""
        return dict(http_json(f"{self.prometheus_url}/api/v1/{path}"))

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"{self.exporter_url}/metrics", timeout=5) as resp:
            return str(resp.read().decode("utf-8"))

    def alerts_received(self, alertname: str) -> list[tuple[str, dict[str, Any]]]:
        """(receiver path, alert) of every alert with this name the webhook got so far."""
        return [
            (path, alert)
            for path, body in list(self.webhook_calls)
            for alert in body.get("alerts", [])
            if alert.get("labels", {}).get("alertname") == alertname
        ]


def grafana_to_promql(expr: str, instance: str = ".*") -> str:
    """A dashboard query as Grafana would send it: template variables replaced (All, or one instance)."""
    replaced = expr.replace("$__rate_interval", "1m").replace("$__interval", "15s").replace("$__range", "5m")
    replaced = re.sub(r"\$\{?instance\}?", lambda _: instance, replaced)
    return re.sub(r"\$\{?(provider|task_set|job)\}?", ".*", replaced)
