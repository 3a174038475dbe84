"""Every provider in PROVIDERS is everywhere a provider must be: a forgotten list fails here."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from exporter.core.config import AccountConfig
from exporter.core.provider import Provider
from exporter.providers import PROVIDERS
from exporter.simulator.demo import SIMULATORS

REPO = Path(__file__).resolve().parent.parent
NAMES = sorted(PROVIDERS)


def test_the_registry_holds_each_provider_under_its_own_name():
    assert NAMES and all(name == cls.name and isinstance(cls, type) for name, cls in PROVIDERS.items())
    members = [n for n in (*Provider.__annotations__, *vars(Provider)) if not n.startswith("_")]
    assert {"name", "errors", "fetch", "task_id_syntax"} <= set(members)
    for cls in PROVIDERS.values():
        for attr in members:
            assert hasattr(cls, attr), f"{cls.name} lacks {attr}"


@pytest.mark.parametrize("name", NAMES)
def test_a_provider_is_documented_simulated_configured_and_kept_apart(name):
    cls = PROVIDERS[name]
    assert (REPO / "docs" / "providers" / f"{name}.md").is_file()
    assert f"[docs/providers/{name}.md](docs/providers/{name}.md)" in (REPO / "README.md").read_text()
    assert name in {sim.name for sim in SIMULATORS}  # the demo and the golden scenario run it
    example = yaml.safe_load((REPO / "config.example.yaml").read_text())
    assert name in {acc["provider"] for acc in example["accounts"].values()}
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    independent = next(c for c in contracts if c["type"] == "independence")["modules"]
    assert f"exporter.providers.{name}" in independent
    # What the core reads of a provider is declared once, as data, and agrees with itself.
    assert cls.vocabulary.api_error_codes == cls.errors.known
    assert cls.max_body_bytes > 0 and cls.batch_size > 0
    assert all(spec.title and re.fullmatch(r"[a-z_]+", spec.name) for spec in cls.counters)
    defaults = AccountConfig(
        "a",
        name,
        cls.default_endpoint,
        30,
        4,
        cls.default_rate_limit,
        options={f.name: f.default for f in cls.account_fields},
    )
    assert cls.task_id_syntax(defaults).description


def test_the_shipped_rules_and_dashboards_are_what_the_providers_declare():
    """Throttling codes and provider counters are generated from PROVIDERS: re-render after a change."""
    check = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "grafana_mixin.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert check.returncode == 0, check.stdout + check.stderr
