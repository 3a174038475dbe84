"""The shipped grafana/ files: rules checked and unit-tested by promtool, examples by promtool and
amtool, dashboards importable by Grafana 10+ and written only against the metric contract."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.core.metrics import METRICS
from exporter.core.selfmetrics import SELF_METRICS
from exporter.providers import PROVIDERS

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "grafana"
RULES = GRAFANA / "alerts" / "upload-status.rules.yml"
RULE_TESTS = GRAFANA / "alerts" / "upload-status.rules.test.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
RUNBOOK_URL = "https://github.com/upload-status-exporter/upload-status-exporter/blob/main/docs/runbook.md"
JOB_SELECTOR = 'job="upload-status-exporter"'
DASHBOARD_UIDS = {
    "upload-status-overview.json": "upload-status-overview",
    "upload-status-provider.json": "upload-status-provider",
}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
BUILTIN_DATASOURCE = {"type": "grafana", "uid": "-- Grafana --"}
# Unit ids of Grafana's value formats used or usable here.
KNOWN_UNITS = {
    "short",
    "none",
    "percent",
    "percentunit",
    "s",
    "ms",
    "dtdurations",
    "dateTimeFromNow",
    "dateTimeAsIso",
    "reqps",
    "ops",
    "opm",
    "cps",
    "cpm",
    "Bps",
    "binBps",
    "bytes",
    "decbytes",
    "bool",
}
# The self-metrics of replicas sharing state on Redis (--state.redis-url): each replica's own view
# of the cluster. Absent without Redis.
CLUSTER_SERIES = {
    "upload_store_up",
    "upload_cluster_members",
    "upload_cluster_units",
    "upload_cluster_units_unowned",
    "upload_config_hash",
    "upload_lease_held",
    "upload_lease_lost_total",
}
# Series outside METRICS: provider-specific counters (CounterSpec), opt-in per-task series, build
# info, the cluster's self-metrics.
EXTRA_SERIES = (
    CLUSTER_SERIES
    | {f"upload_{spec.name}_total" for provider in PROVIDERS.values() for spec in provider.counters}
    | {
        "upload_task_state",
        "upload_task_progress_ratio",
        "upload_build_info",
    }
)


def contract_series() -> set[str]:
    names = set(EXTRA_SERIES) | {spec.name for spec in SELF_METRICS}
    for spec in METRICS:
        if spec.kind == "counter":
            names.add(f"{spec.name}_total")
        elif spec.kind == "histogram":
            names.update(f"{spec.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        else:
            names.add(spec.name)
    return names


def series_in(expr: str) -> set[str]:
    return set(re.findall(r"\bupload_[a-z_]+", expr))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, cwd=ROOT)


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboards() -> dict[str, dict[str, Any]]:
    return {name: json.loads((GRAFANA / "dashboards" / name).read_text(encoding="utf-8")) for name in DASHBOARD_UIDS}


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


# -- alert rules --------------------------------------------------------------------------


def test_promtool_checks_the_rules() -> None:
    result = run("promtool", "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_rule_unit_tests_pass() -> None:
    result = run("promtool", "test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_firing_and_quiet_unit_tests() -> None:
    doc = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    cases = [case for test in doc["tests"] for case in test["alert_rule_test"]]
    for rule in rules():
        mine = [c for c in cases if c["alertname"] == rule["alert"]]
        assert any(c["exp_alerts"] for c in mine), f"{rule['alert']}: no firing case"
        assert any(not c["exp_alerts"] for c in mine), f"{rule['alert']}: no quiet case"


def test_alerts_carry_severity_texts_and_runbook_links() -> None:
    headings = re.findall(r"^## (\w+)$", RUNBOOK.read_text(encoding="utf-8"), re.MULTILINE)
    for rule in rules():
        name, notes = rule["alert"], rule["annotations"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert notes["runbook_url"] == f"{RUNBOOK_URL}#{name.lower()}", name
        assert name in headings, f"docs/runbook.md has no section '## {name}'"
        text = notes["summary"] + notes["description"]
        if name in ("UploadExporterDown", "UploadConfigReloadFailed", "UploadStoreDown"):
            assert "$labels.instance" in text
            continue
        if name in ("UploadClusterUnitsUnowned", "UploadClusterConfigMismatch"):  # one alert per job
            assert "$labels.job" in text and "by (job)" in rule["expr"], name
            continue
        assert "$labels.provider" in text and "$labels.task_set" in text, name
    by_name = {r["alert"]: r for r in rules()}
    assert "fault_code" not in by_name["UploadTasksFailed"]["annotations"]["summary"]  # one alert per set
    assert by_name["UploadTasksFailed"]["for"] and "sum without (fault_code)" in by_name["UploadTasksFailed"]["expr"]
    assert "$labels.code" in by_name["UploadProviderRequestsRefused"]["annotations"]["summary"]
    assert set(headings) == set(by_name), "the runbook has a section per alert and no other"


def test_rules_read_only_the_metric_contract() -> None:
    for rule in rules():
        assert series_in(rule["expr"]) <= contract_series(), rule["alert"]


def test_every_rule_selects_through_the_job_selector() -> None:
    for rule in rules():
        for metric, matchers in re.findall(r"\b(upload_[a-z_]+|up|process_[a-z_]+)\{([^}]*)\}", rule["expr"]):
            assert JOB_SELECTOR in matchers, (rule["alert"], metric)
        bare = re.findall(r"\b(upload_[a-z_]+|process_[a-z_]+)\b(?!\{)", rule["expr"])
        assert not bare, (rule["alert"], bare)


def test_the_generator_takes_a_job_selector_and_a_runbook_base_url(tmp_path: Path) -> None:
    selector, base = 'job=~"uploads|uploads-eu"', "https://wiki.example.com/runbooks/uploads"
    result = run(
        sys.executable,
        "scripts/grafana_mixin.py",
        f"--job-selector={selector}",
        f"--runbook-base-url={base}",
        f"--out={tmp_path}",
    )
    assert result.returncode == 0, result.stderr
    mine = tmp_path / "alerts" / "upload-status.rules.yml"
    check = run("promtool", "check", "rules", str(mine))
    assert check.returncode == 0, check.stdout + check.stderr
    doc = yaml.safe_load(mine.read_text(encoding="utf-8"))
    for rule in (r for g in doc["groups"] for r in g["rules"]):
        assert rule["annotations"]["runbook_url"] == f"{base}#{rule['alert'].lower()}"
        assert selector in rule["expr"] and JOB_SELECTOR not in rule["expr"]
    board = json.loads((tmp_path / "dashboards" / "upload-status-overview.json").read_text(encoding="utf-8"))
    job = next(v for v in board["templating"]["list"] if v["name"] == "job")
    assert job["definition"] == f"label_values(upload_build_info{{{selector}}}, job)"
    bad = run(sys.executable, "scripts/grafana_mixin.py", "--runbook-base-url=docs/runbook.md", f"--out={tmp_path}")
    assert bad.returncode == 2 and "absolute" in bad.stderr


def test_prometheus_example_config_is_valid() -> None:
    path = GRAFANA / "prometheus.example.yml"
    result = run("promtool", "check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    job = next(j for j in doc["scrape_configs"] if j["job_name"] == "upload-status-exporter")
    assert job["static_configs"][0]["targets"] == ["localhost:9877"]
    assert (path.parent / doc["rule_files"][0]).resolve() == RULES


@pytest.mark.parametrize(("severity", "receiver"), [("critical", "upload-pager"), ("warning", "upload-tickets")])
def test_alertmanager_example_routes_by_severity(severity: str, receiver: str) -> None:
    path = str(GRAFANA / "alertmanager.example.yml")
    check = run("amtool", "check-config", path)
    assert check.returncode == 0, check.stdout + check.stderr
    route = run(
        "amtool",
        "config",
        "routes",
        "test",
        f"--config.file={path}",
        f"severity={severity}",
        "alertname=UploadTasksFailed",
        "provider=yandex_direct",
        "task_set=banners",
    )
    assert route.returncode == 0, route.stdout + route.stderr
    assert route.stdout.strip() == receiver
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    assert {"provider", "task_set"} <= set(doc["route"]["group_by"])


# -- dashboards ---------------------------------------------------------------------------


def test_dashboards_are_what_the_generator_writes() -> None:
    result = run(sys.executable, "scripts/grafana_mixin.py", "--check")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", sorted(DASHBOARD_UIDS))
def test_dashboard_is_importable_by_grafana_10(name: str) -> None:
    board = dashboards()[name]
    assert board["uid"] == DASHBOARD_UIDS[name]
    assert 36 <= board["schemaVersion"] <= 41
    assert board["id"] is None and board["title"] and board["description"]
    assert "__inputs" not in board  # no import-time datasource prompt: the variable picks one
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["job"]["definition"] == f"label_values(upload_build_info{{{JOB_SELECTOR}}}, job)"
    assert variables["instance"]["definition"] == 'label_values(upload_build_info{job=~"$job"}, instance)'
    assert variables["job"]["multi"] and variables["instance"]["multi"]
    for var in variables.values():
        if var["type"] == "query":
            assert var["datasource"] == DATASOURCE, var["name"]
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids are unique"


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")


@pytest.mark.parametrize("name", sorted(DASHBOARD_UIDS))
def test_dashboard_names_no_datasource_uid(name: str) -> None:
    for where, value in walk(dashboards()[name]):
        if where.endswith(".datasource"):
            assert value in (DATASOURCE, BUILTIN_DATASOURCE), f"{where}: {value}"


@pytest.mark.parametrize("name", sorted(DASHBOARD_UIDS))
def test_every_panel_has_title_description_unit_thresholds_and_queries(name: str) -> None:
    board = dashboards()[name]
    taken: set[tuple[int, int]] = set()
    for panel in panels(board):
        title = panel.get("title")
        assert title, f"panel {panel['id']} has no title"
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, title
        cells = {(grid["x"] + dx, grid["y"] + dy) for dx in range(grid["w"]) for dy in range(grid["h"])}
        assert not cells & taken, f"{title} overlaps another panel"
        taken |= cells
        if panel["type"] == "row":
            continue
        assert len(panel.get("description", "")) >= 30, f"{title}: describe what it shows"
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults["unit"] in KNOWN_UNITS, f"{title}: unit {defaults['unit']!r}"
        for override in panel["fieldConfig"]["overrides"]:
            for prop in override["properties"]:
                assert prop["id"] != "unit" or prop["value"] in KNOWN_UNITS, title
        steps = defaults["thresholds"]["steps"]
        assert defaults["thresholds"]["mode"] == "absolute" and steps[0]["value"] is None, title
        values = [s["value"] for s in steps[1:]]
        assert values == sorted(values), f"{title}: thresholds in ascending order"
        assert panel["datasource"] == DATASOURCE, title
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), title
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE and target["expr"].strip(), title


def test_dashboards_read_only_the_metric_contract_and_cover_it() -> None:
    boards = dashboards()
    used: dict[str, set[str]] = {}
    for name, board in boards.items():
        used[name] = set()
        for panel in panels(board):
            for target in panel.get("targets", []):
                found = series_in(target["expr"])
                assert found <= contract_series(), f"{name} / {panel['title']}: {found - contract_series()}"
                used[name] |= found
    # Every metric of the contract is on the drill-down; the overview leaves out provider statuses.
    contract = {spec.name for spec in METRICS}
    for name, missing in (
        ("upload-status-provider.json", set()),
        ("upload-status-overview.json", {"upload_tasks_provider_status"}),
    ):
        base = {re.sub(r"_(total|bucket|sum|count)$", "", s) for s in used[name]}
        assert contract - base == missing, name


@pytest.mark.parametrize("name", sorted(DASHBOARD_UIDS))
def test_every_query_filters_by_job_and_instance_and_never_sums_replicas(name: str) -> None:
    for panel in panels(dashboards()[name]):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for selector in re.findall(r"(?:upload|process)_[a-z_]+\{([^}]*)\}", expr):
                assert 'job=~"$job"' in selector and 'instance=~"$instance"' in selector, panel["title"]
            assert not re.search(r"\b(?:upload|process)_[a-z_]+\b(?!\{)", expr), (panel["title"], expr)
            if series_in(expr) <= CLUSTER_SERIES:
                continue  # each replica's own series: leases held are disjoint, views are max-ed
            # A sum or count over task sets first takes the max (or min) over replicas of each set.
            for outer in re.finditer(r"\b(sum|count)(?: by \([^)]*\))? \(", expr):
                inner = expr[outer.end() : outer.end() + 40]
                assert inner.startswith(("max by (job, provider, task_set", "min by (job, provider, task_set")), (
                    panel["title"],
                    expr,
                )


def test_provider_dashboard_filters_every_query_by_provider_and_task_set() -> None:
    board = dashboards()["upload-status-provider.json"]
    for panel in panels(board):
        for target in panel.get("targets", []):
            for selector in re.findall(r"upload_[a-z_]+\{([^}]*)\}", target["expr"]):
                assert 'provider=~"$provider"' in selector and 'task_set=~"$task_set"' in selector, panel["title"]


def test_provisioning_examples_point_at_prometheus_and_the_dashboards() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text(encoding="utf-8"))
    assert ds["apiVersion"] == 1 and ds["datasources"][0]["type"] == "prometheus"
    # A second default data source breaks provisioning on a Grafana that already has one.
    assert ds["datasources"][0].get("isDefault") is not True
    dash = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "upload-status.yml").read_text(encoding="utf-8"))
    provider = dash["providers"][0]
    assert dash["apiVersion"] == 1 and provider["type"] == "file" and provider["options"]["path"]
