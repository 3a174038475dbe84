"""Load and validate the YAML config into a frozen Config.

Everything is checked before anything starts; every problem is reported at once, each
naming the file, the key path (`task_sets[2].interval`) and what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from yarl import URL

from exporter.core import yamlfile
from exporter.core.configcheck import LABEL_NAME, RESERVED_LABELS, Checks, brief, closest, keyname, kind
from exporter.core.errors import ConfigError
from exporter.core.provider import AccountField, ProviderRegistry
from exporter.core.secrets import redact_userinfo
from exporter.core.settings import (
    MAX_PARTITIONS,
    MAX_TASKS,
    AccountConfig,
    Config,
    ProxyConfig,
    TaskSetConfig,
    TaskSource,
)

__all__ = ["AccountConfig", "Config", "ProxyConfig", "TaskSetConfig", "TaskSource", "load", "parse"]


def load(path: str | Path, providers: ProviderRegistry) -> Config:
    """Read and validate `path`; raises ConfigError listing every problem."""
    return parse(yamlfile.load(path), providers, str(path))


def parse(raw: Any, providers: ProviderRegistry, path: str = "<config>") -> Config:
    """Validate an already-loaded document; raises ConfigError listing every problem."""
    reader = _Reader(path, providers)
    config = reader.config(raw)
    if reader.problems:
        raise ConfigError(reader.problems)
    return config


class _Reader(Checks):
    """Walks the document, collecting problems instead of stopping at the first."""

    def __init__(self, path: str, providers: ProviderRegistry) -> None:
        self.path = path
        self.providers = providers
        self.problems: list[str] = []

    def mapping(self, value: Any, key: str, allowed: Sequence[str]) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.bad(key, f"expected a mapping, got {kind(value)}")
            return {}
        for k in value:
            if k not in allowed:
                hint = closest(str(k), allowed)
                self.bad(
                    f"{key}.{keyname(k)}" if key else keyname(k),
                    f"unknown key{f'; did you mean {hint!r}' if hint else ''} (allowed: {', '.join(allowed)})",
                )
        return value

    def config(self, raw: Any) -> Config:
        if raw is None:
            self.bad("(top level)", "the file is empty; expected keys accounts and task_sets")
            return Config(self.path, {}, ())
        top = self.mapping(raw, "", ["accounts", "task_sets"])
        if not isinstance(raw, dict):
            return Config(self.path, {}, ())
        given = top.get("accounts")
        accounts_raw = self.mapping(given, "accounts", list(given) if isinstance(given, dict) else [])
        if not accounts_raw and (given is None or isinstance(given, dict)):
            self.bad("accounts", "expected a mapping of at least one account")
        accounts = {}
        for name, acc in accounts_raw.items():
            parsed = self.account(str(name), acc)
            if parsed:
                accounts[str(name)] = parsed
        sets_raw = top.get("task_sets")
        task_sets: list[TaskSetConfig] = []
        if not isinstance(sets_raw, list) or not sets_raw:
            self.bad("task_sets", f"expected a non-empty list of task sets, got {kind(sets_raw)}")
            sets_raw = []
        seen: set[str] = set()
        for i, ts in enumerate(sets_raw):
            parsed_set = self.task_set(f"task_sets[{i}]", ts, accounts, accounts_raw)
            if parsed_set is None:
                continue
            if parsed_set.name in seen:
                self.bad(f"task_sets[{i}].name", f"duplicate task set name {parsed_set.name!r}")
            seen.add(parsed_set.name)
            task_sets.append(parsed_set)
        return Config(self.path, accounts, tuple(task_sets))

    def account(self, name: str, raw: Any) -> AccountConfig | None:
        key = f"accounts.{keyname(name)}"
        if not isinstance(raw, dict):
            self.bad(key, f"expected a mapping, got {kind(raw)}")
            return None
        provider_name = raw.get("provider")
        provider = self.providers.get(str(provider_name)) if provider_name is not None else None
        if provider is None:
            known = ", ".join(sorted(self.providers))
            self.bad(f"{key}.provider", f"expected one of {known}, got {brief(provider_name)}")
            return None
        fields = {f.name: f for f in provider.account_fields}
        common = ["provider", "endpoint", "timeout", "max_concurrency", "rate_limit", "proxy"]
        self.mapping(raw, key, common + list(fields))
        options = {f.name: self.field(f"{key}.{f.name}", f, raw.get(f.name)) for f in fields.values()}
        endpoint = raw.get("endpoint", provider.default_endpoint)
        if not isinstance(endpoint, str) or not re.match(r"^https?://[^/\s]+", endpoint):
            self.bad(f"{key}.endpoint", f"expected an http(s) URL, got {brief(endpoint)}")
        return AccountConfig(
            name=name,
            provider=provider.name,
            endpoint=str(endpoint),
            timeout=self.duration(f"{key}.timeout", raw.get("timeout", 30), maximum=3600, positive=True),
            max_concurrency=self.integer(f"{key}.max_concurrency", raw.get("max_concurrency", 4), 1, 64),
            rate_limit=self.number(f"{key}.rate_limit", raw.get("rate_limit", provider.default_rate_limit), 0.1, 10000),
            options=options,
            proxy=self.proxy(f"{key}.proxy", raw["proxy"]) if raw.get("proxy") is not None else None,
        )

    def proxy(self, key: str, raw: Any) -> ProxyConfig | None:
        """`proxy: http://host:3128` or `{url: ..., username: {env: ...}, password: {file: ...}}`."""
        value = self.mapping(raw, key, ["url", "username", "password"]) if isinstance(raw, dict) else {"url": raw}
        url = value.get("url")
        if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
            shown = redact_userinfo(url) if isinstance(url, str) else kind(url)
            self.bad(f"{key}.url" if isinstance(raw, dict) else key, f"expected an http(s) proxy URL, got {shown!r}")
            return None
        if "@" in URL(url).raw_authority:
            self.bad(
                f"{key}.url" if isinstance(raw, dict) else key,
                f"{redact_userinfo(url)!r} carries credentials; give them as proxy.username and "
                "proxy.password, each {env: VARIABLE} or {file: PATH}",
            )
            return None
        username = value.get("username")
        user_secret = self.secret(f"{key}.username", username) if isinstance(username, dict) else None
        user = user_secret.reveal() if user_secret else (username if isinstance(username, str) and username else None)
        if user is not None and ":" in user:
            self.bad(f"{key}.username", "a proxy user name cannot contain ':'")
        if username is not None and not isinstance(username, (dict, str)):
            self.bad(f"{key}.username", "expected a user name or {env: VARIABLE} or {file: PATH}")
        password = self.secret(f"{key}.password", value["password"]) if "password" in value else None
        if password is not None and user is None:
            self.bad(f"{key}.password", "a proxy password needs proxy.username")
        return ProxyConfig(url.rstrip("/"), user, password)

    def field(self, key: str, spec: AccountField, value: Any) -> Any:
        if value is None:
            if spec.required:
                self.bad(key, f"required: {spec.help}")
            return spec.default
        if spec.kind == "secret":
            return self.secret(key, value)
        if spec.kind == "str_list":
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                self.bad(key, f"expected a list of strings ({spec.help}), got {kind(value)}")
                return ()
            return tuple(value)
        if spec.kind == "bool":
            if not isinstance(value, bool):
                self.bad(key, f"expected true or false, got {brief(value)}")
            return bool(value)
        if spec.kind == "int":
            return self.integer(key, value, int(spec.minimum), int(spec.maximum))
        if spec.kind == "float":
            return self.number(key, value, spec.minimum, spec.maximum)
        if not isinstance(value, str):
            self.bad(key, f"expected a string ({spec.help}), got {kind(value)}")
        elif spec.choices and value not in spec.choices:
            self.bad(key, f"expected one of {', '.join(spec.choices)} ({spec.help}), got {brief(value)}")
        return str(value)

    def task_set(
        self, key: str, raw: Any, accounts: Mapping[str, AccountConfig], accounts_raw: Mapping[str, Any]
    ) -> TaskSetConfig | None:
        allowed = [
            "name",
            "account",
            "interval",
            "jitter",
            "tasks",
            "labels",
            "batch_size",
            "max_tries",
            "max_retry_time",
            "poll_timeout",
            "forget_final_after",
            "tombstone_retention",
            "not_found_after",
            "per_task_series",
            "max_tasks",
            "partitions",
        ]
        if not isinstance(raw, dict):
            self.bad(key, f"expected a mapping, got {kind(raw)}")
            return None
        self.mapping(raw, key, allowed)
        name = raw.get("name")
        if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_.:-]{1,64}$", name):
            self.bad(f"{key}.name", f"expected a name of letters, digits, '_', '.', ':' or '-', got {brief(name)}")
            name = f"#{key}"
        account_name = raw.get("account")
        account = accounts.get(str(account_name))
        if account is None and accounts_raw and str(account_name) not in accounts_raw:  # none: reported once
            known = ", ".join(accounts_raw) or "none defined"
            self.bad(f"{key}.account", f"expected one of the accounts ({known}), got {brief(account_name)}")
        interval = self.duration(f"{key}.interval", raw.get("interval", 60), minimum=1.0)
        tasks = self.tasks(f"{key}.tasks", raw.get("tasks"))
        if account is not None:
            provider_cls = self.providers[account.provider]
            if tasks.discover and not callable(getattr(provider_cls, "discover", None)):
                self.bad(
                    f"{key}.tasks.discover",
                    f"{account.provider} cannot list its tasks; give ids, files or push_token instead",
                )
            syntax = provider_cls.task_id_syntax(account)
            for i, task_id in enumerate(tasks.ids):
                if not syntax.accepts(task_id):
                    self.bad(f"{key}.tasks.ids[{i}]", f"expected {syntax.description}, got {task_id[:100]!r}")
        labels = self.labels(f"{key}.labels", raw.get("labels"))
        partitions = self.integer(f"{key}.partitions", raw.get("partitions", 1), 1, MAX_PARTITIONS)
        if partitions > 1 and tasks.discover:
            self.bad(
                f"{key}.partitions", "expected 1 with tasks.discover: true (every partition would list every task)"
            )
        batch = raw.get("batch_size")
        batch_cap = self.providers[account.provider].batch_size if account else 100_000
        return TaskSetConfig(
            name=name,
            account=str(account_name),
            provider=account.provider if account else "",
            interval=interval,
            jitter=self.number(f"{key}.jitter", raw.get("jitter", 0.1), 0.0, 0.5),
            tasks=tasks,
            labels=labels,
            batch_size=None if batch is None else self.integer(f"{key}.batch_size", batch, 1, batch_cap),
            max_tries=self.integer(f"{key}.max_tries", raw.get("max_tries", 4), 1, 20),
            max_retry_time=self.duration(f"{key}.max_retry_time", raw.get("max_retry_time", min(30.0, interval / 2))),
            poll_timeout=self.duration(f"{key}.poll_timeout", raw.get("poll_timeout", interval), minimum=1.0),
            forget_final_after=self.duration(f"{key}.forget_final_after", raw.get("forget_final_after", "24h")),
            tombstone_retention=self.duration(f"{key}.tombstone_retention", raw.get("tombstone_retention", "14d")),
            not_found_after=self.integer(f"{key}.not_found_after", raw.get("not_found_after", 3), 1, 1000),
            per_task_series=self.integer(f"{key}.per_task_series", raw.get("per_task_series", 0), 0, 10000),
            max_tasks=self.integer(f"{key}.max_tasks", raw.get("max_tasks", MAX_TASKS), 1, 10 * MAX_TASKS),
            partitions=partitions,
        )

    def tasks(self, key: str, raw: Any) -> TaskSource:
        if raw is None:
            self.bad(key, "expected a mapping with ids, files, discover: true and/or push_token")
            return TaskSource()
        value = self.mapping(raw, key, ["ids", "files", "discover", "push_token"])
        reported = len(self.problems)
        ids = value.get("ids") or []
        if not isinstance(ids, list) or not all(isinstance(i, (str, int)) and str(i) for i in ids):
            self.bad(f"{key}.ids", f"expected a list of task IDs, got {kind(ids)}")
            ids = []
        files = value.get("files") or []
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            self.bad(f"{key}.files", f"expected a list of file paths, got {kind(files)}")
            files = []
        discover = value.get("discover", False)
        if not isinstance(discover, bool):
            self.bad(f"{key}.discover", f"expected true or false, got {brief(discover)}")
        push = self.secret(f"{key}.push_token", value["push_token"]) if "push_token" in value else None
        if not (ids or files or discover or "push_token" in value) and len(self.problems) == reported:
            self.bad(key, "expected at least one of ids, files, discover: true, push_token")
        base = Path(self.path).parent
        return TaskSource(tuple(str(i) for i in ids), tuple(base / f for f in files), bool(discover), push)

    def labels(self, key: str, raw: Any) -> Mapping[str, str]:
        value = self.mapping(raw, key, list(raw) if isinstance(raw, dict) else [])
        out: dict[str, str] = {}
        for k, v in value.items():
            if not LABEL_NAME.match(str(k)) or str(k).startswith("__") or k in RESERVED_LABELS:
                self.bad(f"{key}.{keyname(k)}", "expected a Prometheus label name that is not reserved")
            elif not isinstance(v, (str, int, float)) or isinstance(v, bool):
                self.bad(f"{key}.{keyname(k)}", f"expected a string value, got {kind(v)}")
            else:
                out[str(k)] = str(v)
        return out
