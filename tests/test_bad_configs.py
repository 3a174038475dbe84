"""A corpus of bad configs (main and web): each is one stderr line naming the file, the key path
and what was expected, exit status 2, no traceback; plus a property test over any YAML document.

Run through the real command line (`exporter.cli.main`) in this process for speed; a few are
also started as processes, to show the same holds at start.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter import cli, logs
from tests.certs import self_signed

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bad-cfg-token-0123456789"
GOOD = """\
accounts:
  direct:
    provider: yandex_direct
    token: {env: BAD_CFG_TOKEN}
  enc:
    provider: encoding_com
    userid: "123"
    userkey: {env: BAD_CFG_TOKEN}
task_sets:
  - name: banners
    account: direct
    interval: 5m
    tasks: {ids: [1, 2]}
"""
BOMB = (
    "x: &a ["
    + ",".join(["1"] * 9)
    + "]\n"
    + "".join(f"{c}: &{c} [" + ",".join([f"*{p}"] * 9) + "]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
)


def swap(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


def add_to_set(line: str) -> str:
    return swap("    interval: 5m\n", f"    interval: 5m\n    {line}\n")


def add_to_account(line: str, account: str = "direct") -> str:
    anchor = "    token: {env: BAD_CFG_TOKEN}\n" if account == "direct" else '    userid: "123"\n'
    return swap(anchor, f"{anchor}    {line}\n")


# (id, config text or bytes, what the one line must contain)
MAIN: list[tuple[str, str | bytes, str]] = [
    ("interval-nan", swap("interval: 5m", "interval: .nan"), "task_sets[0].interval: expected a duration"),
    ("interval-inf", swap("interval: 5m", "interval: .inf"), "task_sets[0].interval: expected a duration"),
    ("interval-neg-inf", swap("interval: 5m", "interval: -.inf"), "task_sets[0].interval"),
    ("interval-zero", swap("interval: 5m", "interval: 0"), "task_sets[0].interval"),
    ("interval-half", swap("interval: 5m", "interval: 0.5"), "task_sets[0].interval"),
    ("interval-words", swap("interval: 5m", "interval: 5 parsecs"), "task_sets[0].interval"),
    ("interval-list", swap("interval: 5m", "interval: [1]"), "task_sets[0].interval"),
    ("interval-map", swap("interval: 5m", "interval: {a: 1}"), "task_sets[0].interval"),
    ("interval-bool", swap("interval: 5m", "interval: true"), "task_sets[0].interval"),
    ("interval-400d", swap("interval: 5m", "interval: 400d"), "task_sets[0].interval"),
    ("timeout-zero", add_to_account("timeout: 0"), "accounts.direct.timeout: expected a duration of more than 0"),
    ("timeout-nan", add_to_account("timeout: .nan"), "accounts.direct.timeout"),
    ("timeout-negative", add_to_account("timeout: -1"), "accounts.direct.timeout"),
    ("timeout-2h", add_to_account("timeout: 2h"), "accounts.direct.timeout"),
    ("concurrency-zero", add_to_account("max_concurrency: 0"), "accounts.direct.max_concurrency: expected an integer"),
    ("concurrency-65", add_to_account("max_concurrency: 65"), "accounts.direct.max_concurrency"),
    ("concurrency-float", add_to_account("max_concurrency: 1.5"), "accounts.direct.max_concurrency"),
    ("rate-inf", add_to_account("rate_limit: .inf"), "accounts.direct.rate_limit: expected a number"),
    ("rate-nan", add_to_account("rate_limit: .nan"), "accounts.direct.rate_limit"),
    ("rate-zero", add_to_account("rate_limit: 0"), "accounts.direct.rate_limit"),
    ("rate-word", add_to_account("rate_limit: fast"), "accounts.direct.rate_limit"),
    ("jitter-nan", add_to_set("jitter: .nan"), "task_sets[0].jitter"),
    ("jitter-big", add_to_set("jitter: 0.9"), "task_sets[0].jitter"),
    ("batch-over-cap", add_to_set("batch_size: 10001"), "task_sets[0].batch_size: expected an integer from 1 to 10000"),
    ("batch-zero", add_to_set("batch_size: 0"), "task_sets[0].batch_size"),
    ("batch-bool", add_to_set("batch_size: true"), "task_sets[0].batch_size"),
    ("tries-zero", add_to_set("max_tries: 0"), "task_sets[0].max_tries"),
    ("tries-21", add_to_set("max_tries: 21"), "task_sets[0].max_tries"),
    ("retry-inf", add_to_set("max_retry_time: .inf"), "task_sets[0].max_retry_time"),
    ("forget-nan", add_to_set("forget_final_after: .nan"), "task_sets[0].forget_final_after"),
    ("per-task-over", add_to_set("per_task_series: 10001"), "task_sets[0].per_task_series"),
    ("max-tasks-zero", add_to_set("max_tasks: 0"), "task_sets[0].max_tasks"),
    ("max-tasks-huge", add_to_set("max_tasks: 20000000"), "task_sets[0].max_tasks"),
    (
        "media-zero",
        add_to_account("max_media_per_request: 0", "enc"),
        "accounts.enc.max_media_per_request: expected an integer from 1 to 100",
    ),
    ("media-101", add_to_account("max_media_per_request: 101", "enc"), "accounts.enc.max_media_per_request"),
    ("media-500", add_to_account("max_media_per_request: 500", "enc"), "accounts.enc.max_media_per_request"),
    ("unknown-top", GOOD + "acounts: {}\n", "acounts: unknown key; did you mean 'accounts'"),
    ("unknown-account-key", add_to_account("tokne: x"), "accounts.direct.tokne: unknown key; did you mean 'token'"),
    ("unknown-set-key", add_to_set("intervl: 3"), "task_sets[0].intervl: unknown key; did you mean 'interval'"),
    ("unknown-tasks-key", swap("tasks: {ids: [1, 2]}", "tasks: {ids: [1], idz: [2]}"), "task_sets[0].tasks.idz"),
    ("dup-top", GOOD + "accounts: {}\n", "duplicate key 'accounts'"),
    ("dup-account-key", add_to_account("provider: ipernity"), "duplicate key 'provider'"),
    ("dup-set-key", add_to_set("interval: 6m"), "duplicate key 'interval'"),
    ("dup-account", swap("  enc:\n", "  direct:\n"), "duplicate key 'direct'"),
    ("alias-bomb", GOOD + BOMB, "alias bomb"),
    ("alias-recursive", GOOD + "x: &r [1, *r]\n", "recursive"),
    ("deep-nesting", GOOD + "x: " + "[" * 100 + "]" * 100 + "\n", "nested deeper than"),
    ("very-deep-nesting", GOOD + "x: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than"),
    ("non-utf8-comment", GOOD.encode() + b"# \xff\xfe\n", "not UTF-8"),
    ("latin1-value", swap("name: banners", "name: caf\u00e9").encode("latin-1"), "not UTF-8"),
    ("control-char", GOOD + "x: \x01\n", "not valid YAML"),
    (
        "accounts-int",
        swap("accounts:\n  direct:", "accounts: 5\nx_accounts:\n  direct:").split("x_accounts")[0]
        + "task_sets:\n  - {name: a, account: direct, tasks: {ids: [1]}}\n",
        "accounts: expected a mapping, got int",
    ),
    (
        "accounts-list",
        "accounts: [a, b]\ntask_sets:\n  - {name: a, account: direct, tasks: {ids: [1]}}\n",
        "accounts: expected a mapping, got list",
    ),
    ("accounts-str", "accounts: x\ntask_sets:\n  - {name: a, account: direct, tasks: {ids: [1]}}\n", "accounts"),
    (
        "accounts-empty",
        "accounts: {}\ntask_sets:\n  - {name: a, account: direct, tasks: {ids: [1]}}\n",
        "accounts: expected a mapping of at least one account",
    ),
    ("task-sets-int", GOOD.split("task_sets:")[0] + "task_sets: 5\n", "task_sets: expected a non-empty list"),
    ("task-sets-empty", GOOD.split("task_sets:")[0] + "task_sets: []\n", "task_sets: expected a non-empty list"),
    ("task-sets-map", GOOD.split("task_sets:")[0] + "task_sets: {a: 1}\n", "task_sets: expected a non-empty list"),
    ("task-set-int", GOOD.split("task_sets:")[0] + "task_sets: [5]\n", "task_sets[0]: expected a mapping"),
    ("top-list", "- a\n- b\n", "expected a mapping, got list"),
    ("top-scalar", "hello\n", "expected a mapping, got str"),
    ("empty", "", "the file is empty"),
    ("provider-unknown", swap("provider: yandex_direct", "provider: yandex"), "accounts.direct.provider: expected"),
    ("provider-list", swap("provider: yandex_direct", "provider: [a]"), "accounts.direct.provider"),
    (
        "account-int",
        swap("  direct:\n    provider: yandex_direct\n    token: {env: BAD_CFG_TOKEN}\n", "  direct: 5\n"),
        "accounts.direct: expected a mapping, got int",
    ),
    ("token-inline", swap("token: {env: BAD_CFG_TOKEN}", "token: abcdef"), "accounts.direct.token: expected {env"),
    ("token-env-unset", swap("{env: BAD_CFG_TOKEN}", "{env: BAD_CFG_UNSET}"), "accounts.direct.token.env: environment"),
    ("token-env-list", swap("{env: BAD_CFG_TOKEN}", "{env: [a]}"), "accounts.direct.token.env: expected"),
    ("token-file-missing", swap("{env: BAD_CFG_TOKEN}", "{file: nope.txt}"), "accounts.direct.token.file: cannot read"),
    ("token-file-non-utf8", swap("{env: BAD_CFG_TOKEN}", "{file: latin1.txt}"), "accounts.direct.token.file:"),
    ("token-file-empty", swap("{env: BAD_CFG_TOKEN}", "{file: empty.txt}"), "accounts.direct.token.file:"),
    ("token-env-and-file", swap("{env: BAD_CFG_TOKEN}", "{env: BAD_CFG_TOKEN, file: x}"), "accounts.direct.token:"),
    ("endpoint-ftp", add_to_account("endpoint: ftp://x"), "accounts.direct.endpoint: expected an http(s) URL"),
    ("endpoint-int", add_to_account("endpoint: 5"), "accounts.direct.endpoint"),
    ("logins-str", add_to_account("logins: abc"), "accounts.direct.logins: expected a list of strings"),
    ("logins-ints", add_to_account("logins: [1, 2]"), "accounts.direct.logins"),
    ("locale-list", add_to_account("locale: [en]"), "accounts.direct.locale: expected a string"),
    ("name-space", swap("name: banners", "name: two words"), "task_sets[0].name: expected a name"),
    ("name-missing", swap("  - name: banners\n    account", "  - account"), "task_sets[0].name"),
    ("name-dup", GOOD + "  - {name: banners, account: direct, tasks: {ids: [3]}}\n", "task_sets[1].name: duplicate"),
    ("account-nobody", swap("account: direct", "account: nobody"), "task_sets[0].account: expected one of"),
    ("tasks-missing", swap("    tasks: {ids: [1, 2]}\n", ""), "task_sets[0].tasks: expected a mapping"),
    ("tasks-empty", swap("tasks: {ids: [1, 2]}", "tasks: {}"), "task_sets[0].tasks: expected at least one"),
    ("ids-string", swap("tasks: {ids: [1, 2]}", "tasks: {ids: '12345'}"), "task_sets[0].tasks.ids: expected a list"),
    ("ids-maps", swap("tasks: {ids: [1, 2]}", "tasks: {ids: [{a: 1}]}"), "task_sets[0].tasks.ids"),
    ("files-string", swap("tasks: {ids: [1, 2]}", "tasks: {files: x}"), "task_sets[0].tasks.files"),
    ("discover-int", swap("tasks: {ids: [1, 2]}", "tasks: {discover: 5}"), "task_sets[0].tasks.discover"),
    ("push-inline", swap("tasks: {ids: [1, 2]}", "tasks: {push_token: abc}"), "task_sets[0].tasks.push_token"),
    ("label-reserved", add_to_set("labels: {state: x}"), "task_sets[0].labels.state"),
    ("label-list-value", add_to_set("labels: {team: [a]}"), "task_sets[0].labels.team: expected a string"),
    ("label-bad-name", add_to_set("labels: {bad-name: x}"), "task_sets[0].labels.bad-name"),
    ("labels-int", add_to_set("labels: 5"), "task_sets[0].labels: expected a mapping"),
    ("unhashable-key", GOOD + "? [a]\n: b\n", "not valid YAML"),
    ("syntax", "accounts: [\n", "not valid YAML"),
    ("tab-indent", GOOD.replace("    interval", "\tinterval"), "not valid YAML"),
    ("long-unknown-key", GOOD + "k" * 1_000 + ": 1\n", "unknown key"),
    ("python-tag", GOOD + "x: !!python/object/apply:os.system [ls]\n", "not valid YAML"),
]

WEB_GOOD_HASH = "$2b$04$" + "a" * 53
# (id, web config text or bytes, what the one line must contain); {crt} {key} are a real certificate and key
WEB: list[tuple[str, str | bytes, str]] = [
    ("top-typo", f"basic_auth_user:\n  a: '{WEB_GOOD_HASH}'\n", "basic_auth_user: unknown key; did you mean"),
    (
        "min-version-typo",
        "tls_server_config: {cert_file: {crt}, key_file: {key}, min_vresion: TLS12}\n",
        "tls_server_config.min_vresion: unknown key; did you mean 'min_version'",
    ),
    (
        "cipher-suites",
        "tls_server_config: {cert_file: {crt}, key_file: {key}, cipher_suites: [x]}\n",
        "tls_server_config.cipher_suites: not supported",
    ),
    (
        "max-version",
        "tls_server_config: {cert_file: {crt}, key_file: {key}, max_version: TLS13}\n",
        "tls_server_config.max_version: not supported",
    ),
    (
        "allowed-sans",
        "tls_server_config: {cert_file: {crt}, key_file: {key}, client_allowed_sans: [a]}\n",
        "tls_server_config.client_allowed_sans: not supported",
    ),
    ("http-server-config", "http_server_config: {http2: false}\n", "http_server_config: not supported"),
    ("users-list", f"basic_auth_users: ['{WEB_GOOD_HASH}']\n", "basic_auth_users: expected a mapping"),
    ("users-int", "basic_auth_users: 5\n", "basic_auth_users: expected a mapping"),
    ("hash-bogus", "basic_auth_users: {prometheus: $2y$10$bogus}\n", "basic_auth_users.prometheus: expected a bcrypt"),
    ("hash-plain", "basic_auth_users: {prometheus: hunter2}\n", "basic_auth_users.prometheus: expected a bcrypt"),
    ("hash-cost-99", "basic_auth_users: {prometheus: '$2b$99$" + "a" * 53 + "'}\n", "basic_auth_users.prometheus"),
    (
        "hash-cost-20",
        "basic_auth_users: {prometheus: '$2b$20$" + "a" * 53 + "'}\n",
        "basic_auth_users.prometheus: expected a bcrypt cost of at most 16",
    ),
    ("user-colon", f"basic_auth_users: {{'a:b': '{WEB_GOOD_HASH}'}}\n", "basic_auth_users.a:b: expected a user"),
    ("user-dup", f"basic_auth_users:\n  a: '{WEB_GOOD_HASH}'\n  a: '{WEB_GOOD_HASH}'\n", "duplicate key 'a'"),
    ("non-utf8", b"basic_auth_users:\n  \xff: x\n", "not UTF-8"),
    ("alias-bomb", BOMB, "alias bomb"),
    ("tls-int", "tls_server_config: 5\n", "tls_server_config: expected a mapping with cert_file and key_file"),
    ("tls-no-key", "tls_server_config: {cert_file: {crt}}\n", "tls_server_config: expected a mapping"),
    (
        "cert-missing",
        "tls_server_config: {cert_file: nope.crt, key_file: {key}}\n",
        "tls_server_config.cert_file: cannot load",
    ),
    (
        "auth-type-bogus",
        "tls_server_config: {cert_file: {crt}, key_file: {key}, client_auth_type: Bogus}\n",
        "tls_server_config.client_auth_type: expected one of",
    ),
    (
        "verify-without-ca",
        "tls_server_config: {cert_file: {crt}, key_file: {key}, client_auth_type: RequireAndVerifyClientCert}\n",
        "tls_server_config.client_ca_file: required",
    ),
    (
        "verify-if-given-without-ca",
        "tls_server_config: {cert_file: {crt}, key_file: {key}, client_auth_type: VerifyClientCertIfGiven}\n",
        "tls_server_config.client_ca_file: required",
    ),
    (
        "ca-without-verify",
        "tls_server_config: {cert_file: {crt}, key_file: {key}, client_ca_file: {crt}}\n",
        "tls_server_config.client_ca_file: set, but",
    ),
    (
        "min-version-tls11",
        "tls_server_config: {cert_file: {crt}, key_file: {key}, min_version: TLS11}\n",
        "tls_server_config.min_version: expected TLS12 or TLS13",
    ),
    ("top-list", "- a\n", "(top level): expected a mapping"),
]

BAD_ADDRESSES = [
    "[::1:18201",
    "::1:18201",
    "[::1]",
    ":99999",
    ":0",
    "host name:80",
    "[zz]:80",
    "127.0.0.1:",
    "127.0.0.1",
    "[::1]:80:80",
    "a:b:80",
    "",
    ":port",
]


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BAD_CFG_TOKEN", TOKEN)
    monkeypatch.delenv("BAD_CFG_UNSET", raising=False)
    monkeypatch.setattr(logs, "setup", lambda *a: None)  # the CLI's logging set-up would replace pytest's
    (tmp_path / "latin1.txt").write_bytes(b"secr\xe9t\n")
    (tmp_path / "empty.txt").write_text("\n")
    return tmp_path


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


def check_config(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = cli.main(["--check-config", *args])
    err = capsys.readouterr().err
    return code, err.splitlines()


def assert_one_line(code: int, lines: list[str], path: Path, expected: str) -> None:
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: "), lines
    assert expected in lines[0], lines
    assert len(lines[0]) < 600
    assert TOKEN not in lines[0]


def test_corpus_is_large_enough() -> None:
    assert len(MAIN) + len(WEB) + len(BAD_ADDRESSES) >= 80


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in MAIN], ids=[c[0] for c in MAIN])
def test_bad_main_config_is_one_line_exit_2(
    folder: Path, capsys: pytest.CaptureFixture[str], text: str | bytes, expected: str
) -> None:
    path = folder / "config.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert_one_line(*check_config(capsys, f"--config.file={path}"), path, expected)


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in WEB], ids=[c[0] for c in WEB])
def test_bad_web_config_is_one_line_exit_2(
    folder: Path, tls_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str], text: str | bytes, expected: str
) -> None:
    main = folder / "config.yaml"
    main.write_text(GOOD)
    path = folder / "web.yml"
    if isinstance(text, str):
        text = text.replace("{crt}", str(tls_files[0])).replace("{key}", str(tls_files[1])).encode()
    path.write_bytes(text)
    assert_one_line(*check_config(capsys, f"--config.file={main}", f"--web.config.file={path}"), path, expected)


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_bad_listen_address_is_one_line_exit_2(folder: Path, capsys: pytest.CaptureFixture[str], address: str) -> None:
    main = folder / "config.yaml"
    main.write_text(GOOD)
    code, lines = check_config(capsys, f"--config.file={main}", f"--web.listen-address={address}")
    assert code == 2 and len(lines) == 1 and lines[0].startswith("--web.listen-address: expected"), lines


@pytest.mark.parametrize("address", [":9877", "127.0.0.1:9877", "[::1]:9877", "localhost:80", "[::]:1"])
def test_good_listen_addresses(address: str) -> None:
    cli.split_address(address)


def test_secret_file_is_read_from_the_config_folder(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (folder / "token.txt").write_text("from-the-config-folder\n")
    path = folder / "config.yaml"
    path.write_text(swap("{env: BAD_CFG_TOKEN}", "{file: token.txt}"))
    monkeypatch.chdir(REPO)  # not the config's folder
    code, lines = check_config(capsys, f"--config.file={path}")
    assert code == 0, lines


@pytest.mark.parametrize(
    ("name", "config", "web"),
    [
        ("accounts-int", "accounts: 5\ntask_sets: [{name: a, account: x, tasks: {ids: [1]}}]\n", None),
        ("secret-non-utf8", swap("{env: BAD_CFG_TOKEN}", "{file: latin1.txt}"), None),
        ("alias-bomb", GOOD + BOMB, None),
        ("users-list", GOOD, "basic_auth_users: [a]\n"),
        ("web-non-utf8", GOOD, b"basic_auth_users:\n  \xff: x\n"),
    ],
)
def test_bad_config_at_start_is_one_line_exit_2(folder: Path, name: str, config: str, web: str | bytes | None) -> None:
    path = folder / "config.yaml"
    path.write_text(config)
    args = [sys.executable, "-m", "exporter", f"--config.file={path}", "--web.listen-address=127.0.0.1:1"]
    if web is not None:
        (folder / "web.yml").write_bytes(web if isinstance(web, bytes) else web.encode())
        args.append(f"--web.config.file={folder / 'web.yml'}")
    proc = subprocess.run(
        args, capture_output=True, text=True, timeout=60, cwd=REPO, env={**os.environ, "BAD_CFG_TOKEN": TOKEN}
    )
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr


KEYS = [
    "accounts",
    "task_sets",
    "provider",
    "token",
    "env",
    "file",
    "name",
    "account",
    "interval",
    "tasks",
    "ids",
    "batch_size",
    "timeout",
    "labels",
    "yandex_direct",
    "encoding_com",
    "BAD_CFG_TOKEN",
    "push_token",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True),
    st.sampled_from(KEYS),
    st.text(max_size=20),
)
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=4),
    ),
    max_leaves=25,
)


@settings(
    max_examples=int(os.environ.get("BAD_CONFIG_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    doc=st.one_of(
        DOCS.map(lambda d: yaml.safe_dump(d)),
        st.text(max_size=200),
        st.binary(max_size=100).map(lambda b: b.decode("latin-1")),
    )
)
def test_any_yaml_loads_or_is_refused_in_single_lines(
    folder: Path, capsys: pytest.CaptureFixture[str], doc: str
) -> None:
    path = folder / "config.yaml"
    path.write_text(doc, encoding="utf-8", errors="surrogateescape")
    code, lines = check_config(capsys, f"--config.file={path}")
    assert code in (0, 2), lines
    if code == 2:
        assert lines and all(line.startswith(f"{path}: ") for line in lines), lines
    assert not any("Traceback" in line for line in lines)


WEB_KEYS = [
    "tls_server_config",
    "basic_auth_users",
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "RequireAnyClientCert",
    "TLS13",
    "prometheus",
    WEB_GOOD_HASH,
    "$2y$10$bogus",
]
WEB_DOCS = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.sampled_from(WEB_KEYS), st.text(max_size=20)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(WEB_KEYS), st.text(max_size=8)), inner, max_size=4),
    ),
    max_leaves=20,
)


@settings(
    max_examples=int(os.environ.get("BAD_CONFIG_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(doc=st.one_of(WEB_DOCS.map(lambda d: yaml.safe_dump(d)), st.text(max_size=200)))
def test_any_yaml_as_web_config_loads_or_is_refused_in_single_lines(
    folder: Path, capsys: pytest.CaptureFixture[str], doc: str
) -> None:
    main = folder / "config.yaml"
    main.write_text(GOOD)
    path = folder / "web.yml"
    path.write_text(doc, encoding="utf-8", errors="surrogateescape")
    code, lines = check_config(capsys, f"--config.file={main}", f"--web.config.file={path}")
    assert code in (0, 2), lines
    if code == 2:
        assert lines and all(line.startswith(f"{path}: ") for line in lines), lines
