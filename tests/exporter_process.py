"""The exporter as a real process (`python -m exporter`) for the fault and crash tests.

It listens on 127.0.0.1 only, logs JSON to a file the tests read, and is scraped with
blocking HTTP while the simulators answer from a loop thread. Every wait here is bounded
in time and polls its condition every STEP_SECONDS (tests.prometheus_stack).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.prometheus_stack import free_port, wait_for

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
START_SECONDS = 30.0  # python start-up and the first bind, on a busy 2-core machine
STOP_SECONDS = 15.0
PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "all_proxy", "ws_proxy", "wss_proxy"})
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy: loopback only


class Metrics:
    """One scrape, parsed; `value` sums the samples of a name that carry the given labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [s for fam in text_string_to_metric_families(text) for s in fam.samples]

    def value(self, name: str, **labels: str) -> float:
        return sum(
            s.value for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def get(self, name: str, **labels: str) -> float | None:
        found = [
            s.value for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]
        return sum(found) if found else None

    def by_label(self, name: str, label: str, **labels: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for s in self.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                out[s.labels.get(label, "")] = out.get(s.labels.get(label, ""), 0.0) + s.value
        return out


class ExporterProcess:
    """One exporter process at a time over one config and state file; `start` again after `kill9`."""

    def __init__(
        self,
        workdir: Path,
        config: Mapping[str, Any],
        env: Mapping[str, str],
        *,
        state_file: Path | None = None,
        args: Sequence[str] = (),
        name: str = "exporter",
    ) -> None:
        self.workdir = workdir
        self.config_path = workdir / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
        # Loopback only: no proxy from the environment stands between the exporter and the simulators.
        inherited = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES}
        self.env = {**inherited, "NO_PROXY": "127.0.0.1,localhost", **env}
        self.state_file = state_file
        self.args = list(args)
        self.log_path = workdir / f"{name}.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the process and wait until it serves /-/healthy."""
        self.port = free_port()
        args = [
            sys.executable,
            "-m",
            "exporter",
            f"--config.file={self.config_path}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.format=json",
            "--log.level=info",
        ]
        if self.state_file is not None:
            args.append(f"--state.file={self.state_file}")
        args += self.args
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._healthy, START_SECONDS, "the exporter to serve /-/healthy")

    def _healthy(self) -> bool:
        if not self.running():
            raise AssertionError(f"the exporter exited with {self.proc and self.proc.returncode}:\n{self.log_tail()}")
        try:
            return self.get("/-/healthy", timeout=1.0)[0] == 200
        except OSError:
            return False

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(STOP_SECONDS)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not stop in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STOP_SECONDS)

    # -- HTTP -----------------------------------------------------------------------------
    def get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        try:
            with DIRECT.open(self.base + path, timeout=timeout) as resp:  # 127.0.0.1 only
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def scrape(self, timeout: float = 5.0) -> Metrics | None:
        """/metrics parsed, or None when it does not answer 200 within `timeout`."""
        try:
            status, text = self.get("/metrics", timeout)
        except OSError:
            return None
        return Metrics(text) if status == 200 else None

    def push(self, task_set: str, ids: list[str], token: str) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"{self.base}/api/v1/task_sets/{task_set}/tasks",
            data=json.dumps({"ids": ids}).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with DIRECT.open(request, timeout=10) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    # -- the process's own view -----------------------------------------------------------
    def rss_bytes(self) -> int:
        """VmRSS from /proc/<pid>/status; 0 once the process is gone."""
        assert self.proc is not None
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0
        line = next((x for x in status.splitlines() if x.startswith("VmRSS:")), "VmRSS: 0 kB")
        return int(line.split()[1]) * 1024

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_text(self, since: int = 0) -> str:
        with self.log_path.open("rb") as f:
            f.seek(since)
            return f.read().decode(errors="replace")

    def log_records(self, since: int = 0) -> list[dict[str, Any]]:
        """JSON log records written after byte offset `since`; other lines as {"raw": line}."""
        records = []
        for line in self.log_text(since).splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                record = {"raw": line}
            records.append(record if isinstance(record, dict) else {"raw": line})
        return records

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:]) if self.log_path.exists() else ""
