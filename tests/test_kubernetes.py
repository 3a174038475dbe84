"""deploy/kubernetes/: every manifest valid against the Kubernetes schemas (kubernetes-validate)
and the Prometheus Operator's CRDs, the base and overlays resolved (tests/kustomize.py), the
PrometheusRule and dashboard ConfigMaps what the mixin renders, the restricted pod profile."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import redis
import yaml

from tests.kustomize import build, load_docs
from tests.prometheus_stack import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.33.0"
KUSTOMIZATIONS = {"base": K8S / "base", "monitoring": K8S / "overlays" / "monitoring", "ha": K8S / "overlays" / "ha"}
CRDS = {
    "ServiceMonitor": K8S / "schemas" / "monitoring.coreos.com_servicemonitors.yaml",
    "PrometheusRule": K8S / "schemas" / "monitoring.coreos.com_prometheusrules.yaml",
}
EXPORTER = "upload-status-exporter"


def crd_schema(kind: str) -> dict[str, Any]:
    crd = yaml.safe_load(CRDS[kind].read_text(encoding="utf-8"))
    assert crd["spec"]["names"]["kind"] == kind
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema: dict[str, Any] = go_patterns_to_python(version["schema"]["openAPIV3Schema"])
    return schema


def go_patterns_to_python(node: Any) -> Any:
    """Go's regexp takes flags such as `^(?i)...` anywhere; Python's re wants them first."""
    if isinstance(node, dict):
        out = {k: go_patterns_to_python(v) for k, v in node.items()}
        pattern = node.get("pattern")
        if isinstance(pattern, str) and "(?i)" in pattern[1:]:
            out["pattern"] = "(?i)" + pattern.replace("(?i)", "")
        return out
    if isinstance(node, list):
        return [go_patterns_to_python(v) for v in node]
    return node


def validate(doc: dict[str, Any]) -> None:
    if doc["kind"] in CRDS:
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        jsonschema.validate(doc, crd_schema(doc["kind"]))
    else:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def by_kind(docs: list[dict[str, Any]], kind: str, name: str = EXPORTER) -> dict[str, Any]:
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(hits) == 1, (kind, name, len(hits))
    return hits[0]


MANIFESTS = sorted(p for p in K8S.rglob("*.yaml") if p.name != "config.example.yaml")  # that one is the exporter's


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(K8S)))
def test_every_manifest_is_valid(path: Path) -> None:
    docs = load_docs(path)
    assert docs, path
    for doc in docs:
        if doc["kind"] == "Kustomization":
            continue
        if doc["kind"] == "CustomResourceDefinition":  # the vendored schemas themselves
            assert path.parent.name == "schemas"
            continue
        validate(doc)


def test_a_wrong_manifest_is_refused() -> None:
    deployment = by_kind(build(KUSTOMIZATIONS["base"]), "Deployment")
    deployment["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    rule = by_kind(build(KUSTOMIZATIONS["monitoring"]), "PrometheusRule")
    rule["spec"]["groups"][0]["rules"][0]["for"] = "ten minutes"
    with pytest.raises(jsonschema.ValidationError):
        validate(rule)


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_kustomization_builds_to_valid_resources(name: str) -> None:
    docs = build(KUSTOMIZATIONS[name])
    keys = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(keys) == len(set(keys)), keys
    for doc in docs:
        validate(doc)
    kinds = {k for k, _ in keys}
    assert {"Deployment", "Service", "ServiceAccount", "ConfigMap", "NetworkPolicy"} <= kinds
    assert ("ServiceMonitor" in kinds) == (name != "base")


def exporter_pod(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = by_kind(docs, "Deployment")["spec"]["template"]["spec"]
    return spec, next(c for c in spec["containers"] if c["name"] == "exporter")


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_pods_follow_the_restricted_profile(name: str) -> None:
    docs = build(KUSTOMIZATIONS[name])
    for workload in (d for d in docs if d["kind"] in ("Deployment", "StatefulSet")):
        pod = workload["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]["memory"]
            assert container["livenessProbe"] and container["readinessProbe"]
    pod, exporter = exporter_pod(docs)
    assert exporter["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert exporter["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    config = next(v for v in pod["volumes"] if v["name"] == "config")["configMap"]["name"]
    assert by_kind(docs, "ConfigMap", config)["data"]["config.yaml"] == (ROOT / "config.example.yaml").read_text()


def test_the_base_keeps_state_in_a_file_on_its_claim() -> None:
    docs = build(KUSTOMIZATIONS["base"])
    deployment = by_kind(docs, "Deployment")
    pod, exporter = exporter_pod(docs)
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    assert "--state.file=/var/lib/upload-status-exporter/state.db" in exporter["args"]
    claim = next(v for v in pod["volumes"] if v["name"] == "state")["persistentVolumeClaim"]["claimName"]
    by_kind(docs, "PersistentVolumeClaim", claim)
    assert any(m["mountPath"] == "/var/lib/upload-status-exporter" for m in exporter["volumeMounts"])


def test_the_ha_overlay_shares_state_on_redis() -> None:
    docs = build(KUSTOMIZATIONS["ha"])
    deployment = by_kind(docs, "Deployment")
    pod, exporter = exporter_pod(docs)
    assert deployment["spec"]["replicas"] == 3
    assert not any(a.startswith("--state.file") for a in exporter["args"])
    assert "--state.redis-url=redis://upload-status-redis:6379/0" in exporter["args"]
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    assert not [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    password = next(e for e in exporter["env"] if e["name"] == "UPLOAD_EXPORTER_REDIS_PASSWORD")
    secret = password["valueFrom"]["secretKeyRef"]
    redis = by_kind(docs, "StatefulSet", "upload-status-redis")["spec"]["template"]["spec"]["containers"][0]
    assert "REDIS_PASSWORD" in redis["command"][-1] and "requirepass" in redis["command"][-1]
    redis_password = next(e for e in redis["env"] if e["name"] == "REDIS_PASSWORD")
    assert redis_password["valueFrom"]["secretKeyRef"] == secret  # the same Secret and key
    example = load_docs(K8S / "overlays" / "ha" / "redis-secret.example.yaml")[0]
    assert example["metadata"]["name"] == secret["name"] and secret["key"] in example["stringData"]
    by_kind(docs, "Service", "upload-status-redis")
    pdb = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    policy = by_kind(docs, "NetworkPolicy", "upload-status-redis")["spec"]
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "upload-status-redis"}
    assert [f["podSelector"]["matchLabels"] for r in policy["ingress"] for f in r["from"]] == [
        deployment["spec"]["selector"]["matchLabels"]
    ]
    egress = by_kind(docs, "NetworkPolicy")["spec"]["egress"]
    assert any(p["port"] == 6379 for rule in egress for p in rule["ports"])


def test_the_monitoring_overlay_scrapes_the_job_the_rules_select() -> None:
    docs = build(KUSTOMIZATIONS["monitoring"])
    monitor = by_kind(docs, "ServiceMonitor")
    service = by_kind(docs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert service["metadata"]["name"] == EXPORTER  # the job label, as the rules' selector expects
    boards = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    shipped = {
        p.name: json.loads(p.read_text(encoding="utf-8")) for p in (ROOT / "grafana" / "dashboards").glob("*.json")
    }
    assert {k: json.loads(v) for b in boards for k, v in b["data"].items()} == shipped


def test_the_prometheusrule_is_the_rules_file_and_promtool_checks_it(tmp_path: Path) -> None:
    rule = by_kind(build(KUSTOMIZATIONS["monitoring"]), "PrometheusRule")
    rules_file = yaml.safe_load((ROOT / "grafana" / "alerts" / "upload-status.rules.yml").read_text(encoding="utf-8"))
    assert rule["spec"] == rules_file
    spec = tmp_path / "spec.yml"
    spec.write_text(yaml.safe_dump(rule["spec"]), encoding="utf-8")
    check = subprocess.run(["promtool", "check", "rules", str(spec)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in rules_file['groups'])} rules found" in check.stdout


def test_the_secret_example_gives_every_variable_the_config_reads() -> None:
    config = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    wanted = set(re.findall(r"\{env: ([A-Z0-9_]+)\}", config)) - {"VARIABLE"}  # VARIABLE: in a comment
    secret = load_docs(K8S / "base" / "secret.example.yaml")[0]
    assert set(secret["stringData"]) == wanted
    _, exporter = exporter_pod(build(KUSTOMIZATIONS["base"]))
    assert exporter["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]


def test_the_ha_redis_command_takes_its_password_without_showing_it(tmp_path: Path) -> None:
    """The Redis container's own command line, run for real (port and dir moved to the test's)."""
    docs = build(KUSTOMIZATIONS["ha"])
    redis_spec = by_kind(docs, "StatefulSet", "upload-status-redis")["spec"]["template"]["spec"]["containers"][0]
    port, password = free_port(), secrets.token_hex(12)
    script = redis_spec["command"][-1].replace("--dir /data", f"--dir {tmp_path} --port {port} --bind 127.0.0.1")
    proc = subprocess.Popen(
        [*redis_spec["command"][:-1], script],
        env={"PATH": os.environ["PATH"], "REDIS_PASSWORD": password},
        stdout=subprocess.DEVNULL,
    )
    try:
        with_password = redis.Redis(port=port, password=password, socket_timeout=2)
        wait_for(lambda: _pings(with_password), 15.0, "the Redis of the HA overlay to answer")
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=port, socket_timeout=2).ping()
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert b"redis-server" in cmdline and password.encode() not in cmdline
    finally:
        proc.terminate()
        proc.wait(10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False
