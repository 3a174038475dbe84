"""What the conformance suite needs to know of each provider and its simulator, as a table.

`tests/test_conformance.py` runs the same tests over every row; a provider added to
PROVIDERS without a row here fails `test_every_provider_has_a_conformance_case`.
"""

from __future__ import annotations

import traceback
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from exporter.core.errors import AuthFailed, ProviderError, Rejected, Throttled, Unavailable
from exporter.core.provider import ErrorCodes, Provider
from exporter.providers import PROVIDERS
from exporter.providers.aliyun_vod import percent_encode
from exporter.simulator.aliyun_vod import AliyunVodSimulator
from exporter.simulator.base import Simulator
from exporter.simulator.encoding_com import FTP_PASSWORD, EncodingComSimulator
from exporter.simulator.ipernity import IpernitySimulator
from exporter.simulator.yandex_direct import YandexDirectSimulator


def secret(provider: str, field: str) -> str:
    return f"s3cr3t-{provider}-{field}-value"


@dataclass(frozen=True)
class Case:
    provider: str
    simulator: type[Simulator]
    secrets: Mapping[str, str]  # simulator argument -> account field; the last one is made wrong to be refused
    refused_with: str  # the API code the simulator refuses that wrong credential with: one of errors.auth
    bad_ids: tuple[str, ...]  # IDs the provider's task_id_syntax refuses
    public: Mapping[str, str] = field(default_factory=dict)  # non-secret account options, given to the simulator too
    echoes: tuple[str, ...] = ()  # API error texts that quote a secret back
    special_codes: frozenset[str] = frozenset()  # codes with a meaning of their own (tested per provider)
    derived: Callable[[Any], list[str]] | None = None  # secrets made per request (signatures), read off the sim
    task_secrets: tuple[str, ...] = ()  # credentials the simulator puts in task data (destination URLs)

    @property
    def cls(self) -> type[Provider]:
        return PROVIDERS[self.provider]

    @property
    def errors(self) -> ErrorCodes:
        return self.cls.errors

    def values(self) -> dict[str, str]:
        """Simulator argument -> the right secret value."""
        return {arg: secret(self.provider, fld) for arg, fld in self.secrets.items()}

    def env(self) -> dict[str, str]:
        return {env_name(fld): secret(self.provider, fld) for fld in self.secrets.values()}

    def account(self, sim: Simulator, **options: Any) -> dict[str, Any]:
        """An account on this simulator, secrets from the environment (`env()`), not slowed by its rate limit
        (a throttling answer halves it)."""
        return {
            "provider": self.provider,
            "endpoint": sim.url,
            "rate_limit": 1000,
            **self.public,
            **{fld: {"env": env_name(fld)} for fld in self.secrets.values()},
            **options,
        }


def env_name(account_field: str) -> str:
    return f"TEST_CONFORMANCE_{account_field.upper()}"


def signatures(sim: AliyunVodSimulator) -> list[str]:
    sent = [dict(urllib.parse.parse_qsl(c.params["query"]))["Signature"] for c in sim.calls]
    return sent + [percent_encode(s) for s in sent]


CASES: dict[str, Case] = {
    case.provider: case
    for case in (
        Case(
            "yandex_direct",
            YandexDirectSimulator,
            {"token": "token"},
            "53",
            bad_ids=("12x45", "-7", "0x10", "0", "9" * 19),
        ),
        Case(
            "ipernity",
            IpernitySimulator,
            {"api_key": "api_key", "auth_token": "auth_token", "api_secret": "api_secret"},
            "105",
            bad_ids=("a,b", "t 1", "x/y", "é1", "x" * 65),
            special_codes=frozenset({"1"}),  # "some ticket unknown": the batch is halved (test_ipernity)
            derived=lambda sim: [c.params["api_sig"] for c in sim.calls],
        ),
        Case(
            "encoding_com",
            EncodingComSimulator,
            {"userkey": "userkey"},
            "auth",
            bad_ids=("12x45", "1,2", "-7", "9" * 21),
            public={"userid": "31337"},
            echoes=(f"Request with key {secret('encoding_com', 'userkey')} refused",),
            special_codes=frozenset({"wrong_mediaid"}),  # names unknown media, not a failed call (test_encoding_com)
            task_secrets=(FTP_PASSWORD,),
        ),
        Case(
            "aliyun_vod",
            AliyunVodSimulator,
            {"key_id": "access_key_id", "key_secret": "access_key_secret"},
            "SignatureDoesNotMatch",
            bad_ids=("job*1", "job~2", "job 3", "job/4", "задание-5", "任务6", "a+b=c&d%e"),
            derived=signatures,
        ),
    )
}


def config(
    case: Case,
    sim: Simulator,
    tasks: list[str] | dict[str, Any],
    account: dict[str, Any] | None = None,
    **task_set: Any,
) -> dict[str, Any]:
    """One account on this simulator and one task set, `set`, polling it."""
    return {
        "accounts": {"acc": case.account(sim, **(account or {}))},
        "task_sets": [
            {
                "name": "set",
                "account": "acc",
                "interval": 60,
                "max_tries": 2,
                "max_retry_time": 1,
                "tasks": {"ids": tasks} if isinstance(tasks, list) else tasks,
                **task_set,
            }
        ],
    }


def four_tasks(sim: Simulator) -> list[str]:
    """Three done 10 s from now, one 100 s later (within Alibaba Cloud's 15 minutes of clock skew)."""
    return [sim.add_task(duration=5).task_id for _ in range(3)] + [sim.add_task(duration=100).task_id]


def lines(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    """The logged messages holding these words."""
    return [r.getMessage() for r in caplog.records if words in r.getMessage()]


def inject(sim: Simulator, failure: str, case: Case) -> None:
    """An API code once (`fail_next`), or a sustained fault until `clear_fault`."""
    if failure.startswith("api:"):
        sim.fail_next(failure)
    else:
        sim.set_fault(failure, **({"size": 2 * case.cls.max_body_bytes} if failure == "oversized" else {}))


def error_class(errors: ErrorCodes, code: str) -> type[ProviderError]:
    """What `core.classify.api_error` makes of a code, read from the table alone."""
    if code in errors.auth:
        return AuthFailed
    if code in errors.throttling:
        return Throttled
    return Unavailable if code in errors.retryable else Rejected


def api_codes() -> list[tuple[str, str]]:
    """Every (provider, code) its ErrorCodes table names, but codes with a meaning of their own."""
    return [
        (name, code)
        for name, case in CASES.items()
        for code in sorted(case.errors.known)
        if code not in case.special_codes
    ]


def leaks(err: BaseException, secrets: list[str]) -> list[str]:
    """Every secret found in the error, its args, its cause/context chain and its formatted traceback."""
    texts = ["".join(traceback.format_exception(err))]
    seen: set[int] = set()
    chain: list[BaseException | None] = [err]
    while chain:
        e = chain.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        texts += [str(e), repr(e), *map(repr, e.args), *map(str, e.args)]
        chain += [e.__cause__, e.__context__]
    return [s for s in secrets if any(s in t for t in texts)]
