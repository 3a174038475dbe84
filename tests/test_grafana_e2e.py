"""The shipped dashboards and alert rules against a real Prometheus and Alertmanager on 127.0.0.1.

One stack for the module (tests/prometheus_stack.py): every demo simulator with short,
often failing uploads, two exporters polling them every second, Prometheus scraping both every
second with the shipped rules (`for:` cut to 1s), Alertmanager with the shipped routing
sending to a webhook in the test. Waits poll the real processes, each with a deadline, and
all of them within the stack's budget of 80 seconds.
"""

from __future__ import annotations

import json
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

from tests.prometheus_stack import REPLICAS, RULES, Stack, grafana_to_promql
from tests.test_grafana import CLUSTER_SERIES, RUNBOOK_URL, series_in

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("stack"))
    try:
        s.start()
        yield s
    finally:
        s.close()


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, query as in the JSON) of every panel target."""
    return [
        (path.name, panel["title"], target["expr"])
        for path in DASHBOARDS
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]
        for target in panel.get("targets", [])
    ]


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL) of every panel target and query variable."""
    out = [(board, title, grafana_to_promql(expr)) for board, title, expr in panel_queries()]
    for path in DASHBOARDS:
        board = json.loads(path.read_text(encoding="utf-8"))
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                m = re.fullmatch(r"label_values\((.+), *(\w+)\)", var["definition"])
                assert m, f"{path.name}: variable {var['name']}: unexpected query {var['definition']!r}"
                out.append((path.name, f"variable {var['name']}", grafana_to_promql(m.group(1))))
    return out


def rule_expressions() -> list[tuple[str, str]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [(r["alert"], r["expr"]) for g in doc["groups"] for r in g["rules"]]


def test_exporter_scrape_passes_promtool_check_metrics(stack: Stack) -> None:
    def with_failures() -> str | None:
        text = stack.metrics_text()
        return text if "upload_tasks_failed_total{" in text else None

    body = stack.wait(with_failures, 20, "failed tasks in the exporter's /metrics")
    check = subprocess.run(["promtool", "check", "metrics"], input=body.encode(), capture_output=True, timeout=20)
    assert check.returncode == 0 and check.stdout == b"" and check.stderr == b"", (
        check.stdout.decode() + check.stderr.decode()
    )


def test_every_alert_rule_parses_and_evaluates_in_prometheus(stack: Stack) -> None:
    for alert, expr in rule_expressions():
        answer = stack.query(expr)
        assert answer["status"] == "success", f"{alert}: {answer}"

    def evaluated() -> list[dict[str, Any]] | None:
        groups = stack.query_api("rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        done = all(not r["lastEvaluation"].startswith("0001") for r in rules)
        return rules if done and rules else None

    rules = stack.wait(evaluated, 20, "Prometheus to evaluate every rule")
    assert sorted(r["name"] for r in rules) == sorted(a for a, _ in rule_expressions())
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []


def test_every_dashboard_query_parses_and_returns_data(stack: Stack) -> None:
    queries = dashboard_queries()
    assert len(queries) > 40
    for board, title, expr in queries:
        answer = stack.query(expr)
        assert answer["status"] == "success", f"{board} / {title}: {expr}: {answer}"
    # The stack runs no Redis, so the replicas' cluster series are absent: those queries must
    # parse and run, and are not waited on for data.
    waiting = [(b, t, e) for b, t, e in queries if not series_in(e) <= CLUSTER_SERIES]
    assert len(waiting) > 40

    def all_have_data() -> bool:
        waiting[:] = [(b, t, e) for b, t, e in waiting if not stack.query(e)["data"]["result"]]
        return not waiting

    try:
        stack.wait(all_have_data, 40, "every dashboard query to return data")
    except AssertionError as err:
        raise AssertionError(f"{err}; still empty: {waiting}") from None


def test_failure_alerts_reach_the_webhook_through_the_shipped_routes(stack: Stack) -> None:
    failed = stack.wait(lambda: stack.alerts_received("UploadTasksFailed"), 45, "UploadTasksFailed at the webhook")
    providers = {sim.name for sim in stack.simulators}
    for receiver, alert in failed:
        labels = alert["labels"]
        assert receiver == "/upload-tickets"  # warnings go to tickets
        assert labels["severity"] == "warning"
        assert labels["provider"] in providers
        assert labels["task_set"] == f"e2e-{labels['provider']}"
        assert "fault_code" not in labels  # one alert per set, whatever the codes
        assert labels["task_set"] in alert["annotations"]["description"]
        assert alert["annotations"]["runbook_url"] == f"{RUNBOOK_URL}#uploadtasksfailed"
        assert alert["status"] == "firing"
    # Half the uploads fail: the ratio alert pages.
    ratio = stack.wait(
        lambda: stack.alerts_received("UploadFailureRatioHigh"), 30, "UploadFailureRatioHigh at the webhook"
    )
    assert {receiver for receiver, _ in ratio} == {"/upload-pager"}
    assert {a["labels"]["provider"] for _, a in ratio} <= providers
    # The exporter is scraped fine: its own alert stays quiet.
    firing = {a["labels"]["alertname"] for a in stack.query_api("alerts")["data"]["alerts"]}
    assert "UploadExporterDown" not in firing
    assert "UploadTasksFailed" in firing


def vector(answer: dict[str, Any]) -> dict[frozenset[tuple[str, str]], float]:
    assert answer["status"] == "success", answer
    data = answer["data"]
    if data["resultType"] == "scalar":
        return {frozenset(): float(data["result"][1])}
    return {frozenset(r["metric"].items()): float(r["value"][1]) for r in data["result"]}


def test_no_dashboard_panel_doubles_with_two_exporters_scraped(stack: Stack) -> None:
    """Every panel query over both exporters (instance = All) against the same query on each one alone,
    at one evaluation time: a sum over replicas would come out near twice a single exporter's value."""
    instances = [urllib.parse.urlsplit(url).netloc for url in stack.exporter_urls]
    assert len(instances) == REPLICAS

    def both_scraped() -> bool:
        up = vector(stack.query('count(up{job="upload-status-exporter"} == 1) >= 2'))
        failed = vector(stack.query("count by (instance) (increase(upload_tasks_failed_total[1m]) > 0)"))
        return bool(up) and len(failed) == REPLICAS

    stack.wait(both_scraped, 30, "both exporters scraped, with failures at both")
    at = time.time() - 1
    compared = 0
    for board, title, expr in panel_queries():
        both = vector(stack.query(grafana_to_promql(expr), at))
        alone = [vector(stack.query(grafana_to_promql(expr, i), at)) for i in instances]
        for labels, value in both.items():
            assert "instance" not in dict(labels), f"{board} / {title}: split by instance: {expr}"
            singles = [a[labels] for a in alone if labels in a]
            assert singles, f"{board} / {title}: {dict(labels)} only with both exporters"
            if value == 0 or math.isnan(value):
                continue
            compared += 1
            assert abs(value) <= 1.25 * max(abs(v) for v in singles), (
                f"{board} / {title} doubles: {value} with both, {singles} alone, for {dict(labels)}: {expr}"
            )
    assert compared > 40
