#!/usr/bin/env python3
"""Writes the alert rules and the dashboards from one source (grafana_config.py), like a monitoring mixin.

    python3 scripts/grafana_mixin.py           # rewrite grafana/alerts/upload-status.rules.yml and grafana/dashboards/
    python3 scripts/grafana_mixin.py --check   # exit 1 when a shipped file is not what this writes
    python3 scripts/grafana_mixin.py --job-selector 'job="uploads"' \\
        --runbook-base-url https://wiki.example.com/runbooks/upload-status --out /tmp/mine

The job selector is PromQL label matchers (without braces) picking the exporter's targets:
every rule selects through it and the dashboards' `job` variable lists what it matches.
The runbook base URL gets `#<alert name in lower case>` appended for each alert's runbook_url.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import grafana_dashboards
import grafana_rules
from grafana_config import DEFAULT_JOB_SELECTOR, DEFAULT_RUNBOOK_BASE_URL, Mixin

GRAFANA = Path(__file__).resolve().parent.parent / "grafana"
RULES_FILE = Path("alerts") / "upload-status.rules.yml"


def files(m: Mixin) -> dict[Path, str]:
    """Every generated file, relative to the grafana/ directory, and its text."""
    out = {RULES_FILE: grafana_rules.render(m)}
    for name, build in grafana_dashboards.DASHBOARDS.items():
        out[Path("dashboards") / name] = json.dumps(build(m), indent=2, ensure_ascii=False) + "\n"
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--job-selector",
        default=DEFAULT_JOB_SELECTOR,
        help="PromQL matchers selecting the exporter's targets (default: %(default)s)",
    )
    parser.add_argument(
        "--runbook-base-url",
        default=DEFAULT_RUNBOOK_BASE_URL,
        help="absolute URL of the runbook; alerts link to its sections (default: %(default)s)",
    )
    parser.add_argument("--out", type=Path, default=GRAFANA, help="directory to write into (default: grafana/)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a file under --out is out of date")
    args = parser.parse_args(argv)
    if not args.runbook_base_url.startswith(("https://", "http://")):
        parser.error("--runbook-base-url must be an absolute http(s) URL")
    stale = []
    for rel, text in files(Mixin(args.job_selector, args.runbook_base_url.rstrip("#"))).items():
        path = args.out / rel
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(rel))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python3 scripts/grafana_mixin.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
