"""The Dockerfile (hadolint, OCI labels) and the monitoring mixin rendered by the jsonnet CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
HADOLINT = Path(sys.executable).parent / "hadolint"


def test_hadolint_reports_nothing_on_the_dockerfile() -> None:
    result = subprocess.run([str(HADOLINT), "Dockerfile"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_hadolint_does_report_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get install curl\n", encoding="utf-8")
    result = subprocess.run([str(HADOLINT), str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3" in result.stdout


def test_the_image_carries_oci_labels_and_a_health_check() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    labels = dict(re.findall(r"(org\.opencontainers\.image\.[a-z]+)=\"([^\"]*)\"", text))
    assert set(labels) == {
        f"org.opencontainers.image.{k}" for k in ("title", "description", "source", "licenses", "version")
    }
    assert labels["org.opencontainers.image.version"] == "${VERSION}" and "ARG VERSION=" in text
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert 'HEALTHCHECK --interval=30s --timeout=10s CMD ["upload-status-exporter", "--healthcheck"]' in text


def jsonnet(*args: str) -> str:
    result = subprocess.run(["jsonnet", "-J", "mixin", *args], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_jsonnet_renders_the_shipped_files() -> None:
    rendered = json.loads(jsonnet("mixin/render.jsonnet"))
    for directory, files in (("grafana", rendered["grafana"]), ("deploy/kubernetes", rendered["kubernetes"])):
        for rel, text in files.items():
            assert (ROOT / directory / rel).read_text(encoding="utf-8") == text, f"{directory}/{rel}"
    assert len(rendered["grafana"]) == 3 and len(rendered["kubernetes"]) == 2


def test_the_mixin_exposes_alerts_dashboards_and_config_as_shipped() -> None:
    mixin = json.loads(
        jsonnet(
            "-e", "local m = import 'mixin.libsonnet'; {a: m.prometheusAlerts, d: m.grafanaDashboards, c: m._config}"
        )
    )
    rules = yaml.safe_load((ROOT / "grafana" / "alerts" / "upload-status.rules.yml").read_text(encoding="utf-8"))
    assert mixin["a"] == rules
    boards = {
        p.name: json.loads(p.read_text(encoding="utf-8")) for p in (ROOT / "grafana" / "dashboards").glob("*.json")
    }
    assert mixin["d"] == boards
    assert mixin["c"]["jobSelector"] == 'job="upload-status-exporter"' and mixin["c"]["runbookBaseUrl"].startswith(
        "https://"
    )
    mine = json.loads(
        jsonnet("-e", "(import 'mixin.libsonnet') { _config+:: { jobSelector: 'job=\"uploads\"' } }.prometheusAlerts")
    )
    assert all('job="uploads"' in r["expr"] for g in mine["groups"] for r in g["rules"])
