"""Config validation: every problem named with file, key path and what was expected."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.core import config as config_mod
from exporter.core.errors import ConfigError
from exporter.providers import PROVIDERS

REPO = Path(__file__).resolve().parent.parent

GOOD = """
accounts:
  direct:
    provider: yandex_direct
    token: {env: CFG_TEST_TOKEN}
task_sets:
  - name: banners
    account: direct
    interval: 5m
    tasks: {ids: [1, 2], discover: true}
    labels: {team: ads}
"""


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CFG_TEST_TOKEN", "cfg-secret-token-123")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        config_mod.load(write(tmp_path, text), PROVIDERS)
    return err.value.problems


def test_good_config_is_frozen_and_typed(tmp_path):
    cfg = config_mod.load(write(tmp_path, GOOD), PROVIDERS)
    ts = cfg.task_sets[0]
    assert ts.interval == 300.0 and ts.provider == "yandex_direct"
    assert ts.tasks.ids == ("1", "2") and ts.tasks.discover
    assert cfg.accounts["direct"].secret("token") == "cfg-secret-token-123"
    assert "cfg-secret-token-123" not in repr(cfg)
    with pytest.raises(AttributeError):
        ts.interval = 1  # type: ignore[misc]


def test_every_problem_reported_with_path_and_expectation(tmp_path):
    text = GOOD.replace("interval: 5m", "interval: soon\n    intervl: 3").replace(
        "provider: yandex_direct", "provider: yandex"
    )
    found = problems(tmp_path, text)
    path = str(tmp_path / "config.yaml")
    assert all(p.startswith(path + ": ") for p in found)
    joined = "\n".join(found)
    assert "accounts.direct.provider: expected one of" in joined
    assert "task_sets[0].interval: expected a duration" in joined
    assert "task_sets[0].intervl: unknown key; did you mean 'interval'" in joined


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (("token: {env: CFG_TEST_TOKEN}", "token: cfg-inline-secret"), "accounts.direct.token"),
        (("token: {env: CFG_TEST_TOKEN}", "token: {env: CFG_UNSET_VAR}"), "accounts.direct.token.env"),
        (("account: direct", "account: nobody"), "task_sets[0].account"),
        (("labels: {team: ads}", "labels: {state: x}"), "task_sets[0].labels.state"),
        (("tasks: {ids: [1, 2], discover: true}", "tasks: {}"), "task_sets[0].tasks"),
        (("interval: 5m", "interval: 0.5"), "task_sets[0].interval"),
        (("    tasks:", "    per_task_series: -1\n    tasks:"), "task_sets[0].per_task_series"),
    ],
)
def test_each_mistake_names_its_key(tmp_path, change, where):
    found = problems(tmp_path, GOOD.replace(*change))
    assert any(f": {where}: " in p for p in found), found


def test_inline_secret_is_not_echoed(tmp_path):
    found = problems(tmp_path, GOOD.replace("token: {env: CFG_TEST_TOKEN}", "token: cfg-inline-secret"))
    assert "cfg-inline-secret" not in "\n".join(found)


def test_duplicate_set_names_and_yaml_errors(tmp_path):
    dup = GOOD + "  - {name: banners, account: direct, tasks: {discover: true}}\n"
    assert any("duplicate task set name" in p for p in problems(tmp_path, dup))
    assert any("not valid YAML" in p and "line" in p for p in problems(tmp_path, "accounts: [\n"))
    assert any("file is empty" in p for p in problems(tmp_path, ""))


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args], capture_output=True, text=True, timeout=60, cwd=REPO, env=env
    )


def test_check_config_exit_codes_and_no_traceback(tmp_path):
    import os

    env = {**os.environ, "CFG_TEST_TOKEN": "cfg-secret-token-123"}
    ok = run_cli("--check-config", f"--config.file={write(tmp_path, GOOD)}", env=env)
    assert ok.returncode == 0, ok.stderr
    bad = run_cli(
        "--check-config", f"--config.file={write(tmp_path, GOOD.replace('interval: 5m', 'interval: x'))}", env=env
    )
    assert bad.returncode == 2
    assert "task_sets[0].interval" in bad.stderr and "config.yaml" in bad.stderr
    assert "Traceback" not in bad.stderr
    # A bad config stops a normal start the same way, before anything listens.
    start = run_cli(f"--config.file={tmp_path / 'config.yaml'}", "--web.listen-address=127.0.0.1:0", env=env)
    assert start.returncode == 2 and "Traceback" not in start.stderr
    missing = run_cli("--check-config", f"--config.file={tmp_path / 'nope.yaml'}", env=env)
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr and "Traceback" not in missing.stderr


def test_example_config_is_valid(monkeypatch):
    for var in re.findall(r"\{env: (\w+)\}", (REPO / "config.example.yaml").read_text()):
        monkeypatch.setenv(var, "example-secret")
    cfg = config_mod.load(REPO / "config.example.yaml", PROVIDERS)
    assert {ts.provider for ts in cfg.task_sets} <= set(PROVIDERS)


def test_url_credentials_are_never_quoted_back(tmp_path):
    """An endpoint with user:password in it, wrong in some other way: the error masks the credentials."""
    import os

    endpoint = "ftp://deploy:PASSWORD-in-url@api.example.com/"
    text = GOOD.replace(
        "    token: {env: CFG_TEST_TOKEN}", f"    token: {{env: CFG_TEST_TOKEN}}\n    endpoint: {endpoint}"
    )
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        config_mod.load(path, PROVIDERS)
    assert "PASSWORD" not in str(caught.value) and "accounts.direct.endpoint" in str(caught.value)
    assert "ftp://***@api.example.com/" in str(caught.value)
    cli = run_cli("--check-config", f"--config.file={path}", env={**os.environ, "CFG_TEST_TOKEN": "t0ken-xyz"})
    assert cli.returncode == 2 and "PASSWORD" not in cli.stderr + cli.stdout


@pytest.mark.parametrize("damage", ["not a database", "aggregates", "task row"])
def test_a_damaged_state_file_stops_the_start_with_one_line(tmp_path, damage):
    """Found when the file is opened, or while a set is restored after the start: one error
    line naming the file and what to do, exit 1, and the file left as it was."""
    import os
    import sqlite3

    from tests.test_server import free_port

    state = tmp_path / "state.db"
    if damage == "not a database":
        state.write_bytes(b"not a database, whatever its name says\n" * 200)
    else:
        with sqlite3.connect(state) as db:
            from exporter.core.persist import SCHEMA

            db.executescript(SCHEMA)
            db.execute(
                "INSERT INTO sets VALUES ('banners', 'yandex_direct', ?)",
                ('{"completed_total": 1, "failed_t' if damage == "aggregates" else "{}",),
            )
            if damage == "task row":
                db.execute("UPDATE sets SET aggregates = ?", (json_aggregates(),))
                db.execute(
                    "INSERT INTO tasks (task_set, task_id, state, status, fault, message, first_seen) "
                    "VALUES ('banners', '1', 'bogus', '', '', '', 0)"
                )
    before = state.read_bytes()
    config = write(
        tmp_path,
        GOOD.replace("tasks: {ids: [1, 2], discover: true}", "tasks: {ids: [1, 2]}").replace(
            "provider: yandex_direct", "provider: yandex_direct\n    endpoint: http://127.0.0.1:9/"
        ),
    )
    run = run_cli(
        f"--config.file={config}",
        f"--state.file={state}",
        f"--web.listen-address=127.0.0.1:{free_port()}",
        env={**os.environ, "CFG_TEST_TOKEN": "t0ken-xyz"},
    )
    errors = [line for line in run.stderr.splitlines() if "level=error" in line]
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert len(errors) == 1 and str(state) in errors[0] and "move it aside" in errors[0]
    if damage == "not a database":
        assert state.read_bytes() == before
    else:
        with sqlite3.connect(state) as db:  # nothing was saved over what could not be read
            assert db.execute("SELECT count(*) FROM tasks").fetchone()[0] == (damage == "task row")


def json_aggregates() -> str:
    import json

    from exporter.core.dump import aggregates
    from exporter.core.provider import Vocabulary
    from exporter.core.tasks import SetState

    return json.dumps(
        aggregates(SetState("banners", "yandex_direct", Vocabulary(frozenset(), frozenset(), frozenset())))
    )


@pytest.mark.parametrize("provider", sorted(set(PROVIDERS) - {"yandex_direct"}))
def test_discovery_is_refused_for_a_provider_that_cannot_list(provider, monkeypatch):
    monkeypatch.setenv("ANY_SECRET", "secret-value-123")
    cls = PROVIDERS[provider]
    account = {
        "provider": provider,
        **{
            f.name: ({"env": "ANY_SECRET"} if f.kind == "secret" else "12345") for f in cls.account_fields if f.required
        },
    }
    raw = {"accounts": {"a": account}, "task_sets": [{"name": "s", "account": "a", "tasks": {"discover": True}}]}
    with pytest.raises(ConfigError, match=rf"task_sets\[0\]\.tasks\.discover: {provider} cannot list its tasks"):
        config_mod.parse(raw, PROVIDERS)
