"""No provider lets a secret into its errors, their causes and tracebacks, the metrics or the logs."""

from __future__ import annotations

import time
import traceback
from typing import Any, NamedTuple

import pytest

from exporter.core.errors import AuthFailed, ProviderError
from exporter.simulator.aliyun_vod import AliyunVodSimulator
from exporter.simulator.base import Simulator
from exporter.simulator.encoding_com import EncodingComSimulator
from exporter.simulator.ipernity import IpernitySimulator
from exporter.simulator.yandex_direct import YandexDirectSimulator
from tests.conftest import ManualClock


def secret(provider: str, field: str) -> str:
    return f"s3cr3t-{provider}-{field}-value"


class Case(NamedTuple):
    provider: str
    simulator: type[Simulator]
    secrets: dict[str, str]  # simulator argument -> account field; the last one is wrong on the refusing simulator
    public: dict[str, str]  # non-secret account options, given to the simulator too
    api_errors: tuple[str, ...]  # codes the provider knows, and API texts that echo a secret


CASES = [
    Case("yandex_direct", YandexDirectSimulator, {"token": "token"}, {}, ("53", "152", "1000")),
    Case("ipernity", IpernitySimulator, {"api_key": "api_key", "auth_token": "auth_token", "api_secret": "api_secret"},
         {}, ("105", "107", "113", "500")),
    Case("encoding_com", EncodingComSimulator, {"userkey": "userkey"}, {"userid": "31337"},
         ("auth", "rate_limit", f"Request with key {secret('encoding_com', 'userkey')} refused")),
    Case("aliyun_vod", AliyunVodSimulator, {"key_id": "access_key_id", "key_secret": "access_key_secret"}, {},
         ("SignatureDoesNotMatch", "Forbidden.RAM", "Throttling.User", "InternalError")),
]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(time.time())  # Alibaba Cloud checks the request's Timestamp against the server's clock


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


@pytest.mark.parametrize("case", CASES, ids=[c.provider for c in CASES])
async def test_no_secret_in_errors_tracebacks_metrics_or_logs(case, harness, clock, caplog_all, monkeypatch):
    values = {arg: secret(case.provider, field) for arg, field in case.secrets.items()}
    for field in case.secrets.values():
        monkeypatch.setenv(f"TEST_SECRETS_{field.upper()}", secret(case.provider, field))
    wrong = list(values)[-1]
    good = case.simulator(**values, **case.public, clock=clock)
    bad = case.simulator(**{**values, wrong: "some-other-credential"}, **case.public, clock=clock)
    await good.start()
    await bad.start()
    try:
        ids = [good.add_task(duration=1).task_id, good.add_task(duration=500).task_id]
        clock.advance(2)

        def account(sim: Simulator) -> dict[str, Any]:
            return {"provider": case.provider, "endpoint": sim.url, "rate_limit": 1000, **case.public,
                    **{field: {"env": f"TEST_SECRETS_{field.upper()}"} for field in case.secrets.values()}}

        h = harness({
            "accounts": {"good": account(good), "bad": account(bad)},
            "task_sets": [{"name": name, "account": name, "interval": 60, "tasks": {"ids": ids}, "max_tries": 1}
                          for name in ("good", "bad")],
        })
        provider = h.runner("good").provider
        assert len((await provider.fetch(ids)).statuses) == 2  # the secrets are right: the simulator answers
        failures = ["http_500", "malformed", *(f"api:{code}" for code in case.api_errors)]
        errors: list[ProviderError] = []
        with pytest.raises(AuthFailed) as refused:
            await h.runner("bad").provider.fetch(ids)
        errors.append(refused.value)
        for failure in failures:
            good.fail_next(failure)
            with pytest.raises(ProviderError) as caught:
                await provider.fetch(ids)
            errors.append(caught.value)
        for err in errors:
            assert not leaks(err, list(values.values())), f"{err!r} leaks a secret"
        # The same failures through the core: what the metrics and the logs say.
        await h.poll("bad")
        for failure in failures:
            good.fail_next(failure)  # one try a poll: each poll meets its own failure
            await h.poll("good")
            assert h.value("upload_poll_up", task_set="good") == 0
        assert h.value("upload_poll_up", task_set="bad") == 0
        assert any("is down" in r.getMessage() for r in caplog_all.records)
        logged = [caplog_all.text, *(r.getMessage() for r in caplog_all.records)]
        for value in values.values():
            assert value not in h.metrics()
            assert not any(value in text for text in logged)
    finally:
        await good.stop()
        await bad.stop()
