#!/usr/bin/env python3
"""Writes the alert rules, the dashboards and their Kubernetes manifests from the monitoring mixin (mixin/).

    python3 scripts/grafana_mixin.py           # rewrite grafana/alerts, grafana/dashboards and deploy/kubernetes/
    python3 scripts/grafana_mixin.py --check   # exit 1 when a shipped file is not what this writes
    python3 scripts/grafana_mixin.py --job-selector 'job="uploads"' \\
        --runbook-base-url https://wiki.example.com/runbooks/upload-status --out /tmp/mine

The mixin (jsonnet) is the one source of the rules and dashboards; this driver only feeds it
what the providers declare (exporter/providers: throttling codes, provider counters), written
to mixin/lib/providers.json, runs `jsonnet` on mixin/render.jsonnet and writes what it renders.
The job selector is PromQL label matchers (without braces) picking the exporter's targets:
every rule selects through it and the dashboards' `job` variable lists what it matches.
The runbook base URL gets `#<alert name in lower case>` appended for each alert's runbook_url.
With --out, the grafana/ files go to that directory and the manifests to its kubernetes/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.providers import PROVIDERS  # noqa: E402  (the repository root goes on the path first)

MIXIN = ROOT / "mixin"
PROVIDER_DATA = MIXIN / "lib" / "providers.json"
GRAFANA = ROOT / "grafana"
KUBERNETES = ROOT / "deploy" / "kubernetes"
# The base's ConfigMap is made from config.example.yaml; kustomize reads files only below the
# kustomization, so the base holds a copy.
CONFIG_COPY = (ROOT / "config.example.yaml", KUBERNETES / "base" / "config.example.yaml")


def provider_data() -> str:
    """What the providers declare that the rules and dashboards use, as the mixin reads it."""
    data: dict[str, Any] = {
        name: {
            "throttling_codes": sorted(provider.errors.throttling),
            "counters": [
                {"name": s.name, "help": s.help, "label": s.label, "title": s.title, "unit": s.unit}
                for s in provider.counters
            ],
        }
        for name, provider in sorted(PROVIDERS.items())
    }
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render(job_selector: str | None, runbook_base_url: str | None, providers: str) -> dict[str, dict[str, str]]:
    """{"grafana": {path: text}, "kubernetes": {path: text}} as mixin/render.jsonnet renders them."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8") as data:
        data.write(providers)
        data.flush()
        cmd = ["jsonnet", "-J", str(MIXIN), "--tla-code-file", f"providers={data.name}"]
        if job_selector is not None:
            cmd += ["--tla-str", f"jobSelector={job_selector}"]
        if runbook_base_url is not None:
            cmd += ["--tla-str", f"runbookBaseUrl={runbook_base_url}"]
        done = subprocess.run([*cmd, str(MIXIN / "render.jsonnet")], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"jsonnet failed:\n{done.stderr}")
    out: dict[str, dict[str, str]] = json.loads(done.stdout)
    return out


def files(args: argparse.Namespace) -> dict[Path, str]:
    """Every generated file, by the path it is written to, and its text."""
    providers = provider_data()
    rendered = render(args.job_selector, args.runbook_base_url, providers)
    grafana = args.out or GRAFANA
    kubernetes = args.out / "kubernetes" if args.out else KUBERNETES
    out = {grafana / rel: text for rel, text in rendered["grafana"].items()}
    out |= {kubernetes / rel: text for rel, text in rendered["kubernetes"].items()}
    if not args.out:
        out[PROVIDER_DATA] = providers
        out[CONFIG_COPY[1]] = CONFIG_COPY[0].read_text(encoding="utf-8")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--job-selector", help="PromQL matchers selecting the exporter's targets (default: the mixin's _config)"
    )
    parser.add_argument(
        "--runbook-base-url", help="absolute URL of the runbook; alerts link to its sections (default: the mixin's)"
    )
    parser.add_argument("--out", type=Path, help="directory to write into (default: grafana/ and deploy/kubernetes/)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a generated file is out of date")
    args = parser.parse_args(argv)
    if args.runbook_base_url is not None:
        if not args.runbook_base_url.startswith(("https://", "http://")):
            parser.error("--runbook-base-url must be an absolute http(s) URL")
        args.runbook_base_url = args.runbook_base_url.rstrip("#")
    stale = []
    for path, text in files(args).items():
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python3 scripts/grafana_mixin.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
