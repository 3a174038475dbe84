"""Three replicas on one Redis against one process, through a real Prometheus on 127.0.0.1.

Both poll the same simulators with the same config: the three replicas as job `replicas`,
the single process as job `alone`. Once every upload has finished, each set is polled by
exactly one replica, and every shipped dashboard query and alert expression that does not
look back in time gives the same answer for either job.
"""

from __future__ import annotations

import math
import re
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.exporter_process import ExporterProcess
from tests.prometheus_stack import free_port, grafana_to_promql, http_json, wait_for
from tests.redis_server import RedisServer
from tests.replica_world import Replicas
from tests.test_grafana import CLUSTER_SERIES
from tests.test_grafana_e2e import panel_queries, rule_expressions, vector
from tests.test_replicas import PUSH_TOKEN, SETS, make_config, replicas

SHIPPED_JOB = 'job="upload-status-exporter"'
LOOKS_BACK = ("rate(", "increase(", "_over_time(", "offset", "changes(", "resets(", "time()")


def job_only(labels: frozenset[tuple[str, str]]) -> frozenset[tuple[str, str]]:
    return frozenset((k, v) for k, v in labels if k not in ("job", "instance"))


class Prometheus:
    def __init__(self, workdir: Path, jobs: dict[str, list[ExporterProcess]]) -> None:
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{e.port}" for e in exporters]}]}
                for job, exporters in jobs.items()
            ],
        }
        path = workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = (workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={path}",
                f"--storage.tsdb.path={workdir / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: self.query("vector(1)")["status"] == "success", 20.0, "Prometheus to answer")

    def query(self, expr: str, at: float | None = None) -> dict[str, Any]:
        params = {"query": expr, **({"time": f"{at:.3f}"} if at is not None else {})}
        try:
            return dict(http_json(f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}"))
        except OSError:
            return {"status": "error"}

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Replicas, ExporterProcess, Prometheus]]:
    from tests.fault_world import World

    (tmp_path / "redis").mkdir()
    redis = RedisServer(tmp_path / "redis")
    world = World(SETS)
    group: Replicas | None = None
    alone: ExporterProcess | None = None
    prometheus: Prometheus | None = None
    try:
        redis.start()
        config, _ = make_config(world, finish_in=4.0)
        alone = ExporterProcess(tmp_path, config, {**world.env, "FT_PUSH_TOKEN": PUSH_TOKEN}, name="alone")
        group = replicas(tmp_path, world, config, redis)
        alone.start()
        group.start()
        prometheus = Prometheus(tmp_path, {"replicas": group.exporters, "alone": [alone]})
        yield group, alone, prometheus
    finally:
        for part in (prometheus, group, alone):
            if part is not None:
                part.close() if isinstance(part, Prometheus) else part.stop()
        world.close()
        redis.stop()


def test_three_replicas_answer_every_query_as_one_process(stack: tuple[Replicas, ExporterProcess, Prometheus]) -> None:
    group, _, prometheus = stack

    def settled() -> bool:
        # Every upload finished and seen by both jobs: the same pending count (none) and totals.
        for job in ("replicas", "alone"):
            pending = vector(prometheus.query(f'sum(upload_tasks{{job="{job}", state="pending"}})'))
            done = vector(prometheus.query(f'sum(upload_tasks{{job="{job}", state!="pending"}})'))
            if pending != {frozenset(): 0.0} or done != {frozenset(): float(60 * len(SETS))}:
                return False
        return True

    wait_for(settled, 40.0, f"both jobs to see every upload finished\n{group.log_tails()}")
    time.sleep(2.0)  # a few more scrapes of the settled state
    at = time.time() - 1
    once = vector(prometheus.query('count by (task_set) (upload_poll_up{job="replicas"})', at))
    assert once == {frozenset({("task_set", f"set-{p}")}): 1.0 for p in SETS}, once
    compared = 0
    queries = [(f"{board} / {title}", expr) for board, title, expr in panel_queries()]
    queries += [(f"alert {name}", expr) for name, expr in rule_expressions()]
    for what, expr in queries:
        if any(word in expr for word in LOOKS_BACK) or any(name in expr for name in CLUSTER_SERIES):
            continue  # windows over a changing past, or metrics only replicas have
        answers = []
        for job in ("replicas", "alone"):
            promql = grafana_to_promql(re.sub(r"\$\{?job\}?", job, expr.replace(SHIPPED_JOB, 'job=~"$job"')))
            assert f'job=~"{job}"' in promql, promql
            answers.append({job_only(k): v for k, v in vector(prometheus.query(promql, at)).items()})
        same = answers[0].keys() == answers[1].keys() and all(
            math.isclose(v, answers[1][k], rel_tol=1e-9, abs_tol=1e-9) for k, v in answers[0].items()
        )
        assert same, f"{what}: {answers[0]} with replicas, {answers[1]} alone: {expr}"
        compared += 1
    assert compared >= 20, compared
