"""Every provider against its simulator, over real HTTP on loopback: what each must do alike.

The per-provider files keep what is specific (paging, signatures, ETAs, status maps...).
The table of providers is `tests/conformance_cases.py`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.core.errors import AuthFailed, ConfigError, ProviderError, Throttled, Unavailable
from exporter.core.provider import Discovering
from exporter.providers import PROVIDERS
from exporter.simulator.base import Simulator
from tests.conformance_cases import CASES, Case, api_codes, config, error_class, four_tasks, inject, leaks, lines
from tests.conftest import ManualClock

EVERY = pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
Serve = Callable[..., Awaitable[Simulator]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(time.time())  # Alibaba Cloud checks the request's Timestamp against the server's clock


@pytest.fixture
async def serve(clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Serve]:
    """Start a case's simulator (its secrets in the environment); `overrides` change its own credentials."""
    started: list[Simulator] = []

    async def start(case: Case, **overrides: str) -> Simulator:
        for name, value in case.env().items():
            monkeypatch.setenv(name, value)
        sim = case.simulator(**{**case.values(), **overrides}, **case.public, clock=clock)
        await sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        await sim.stop()


async def settle(h: Any, clock: ManualClock) -> None:
    """A good poll (3 done, 1 pending), then time for the last task to finish and be due."""
    clock.advance(10)
    await h.poll()
    assert h.value("upload_poll_up") == 1 and h.value("upload_tasks", state="done") == 3
    clock.advance(100)


async def kept_then_recovered(h: Any, caplog: pytest.LogCaptureFixture) -> None:
    assert h.value("upload_poll_up") == 0
    assert h.value("upload_tasks", state="done") == 3  # the last known state is kept
    assert h.value("upload_tasks", state="pending") == 1
    await h.poll()
    assert h.value("upload_poll_up") == 1
    assert h.value("upload_tasks", state="done") == 4
    assert len(lines(caplog, "recovered")) == 1


def test_every_provider_has_a_conformance_case():
    assert CASES.keys() == PROVIDERS.keys()  # a provider added without a row here fails
    for name, case in CASES.items():
        assert case.simulator.name == name
        assert case.refused_with in case.errors.auth
        assert case.special_codes <= case.errors.known and case.bad_ids


@EVERY
@pytest.mark.parametrize(
    ("fault", "result"),
    [
        ("http_500", "http_error"),
        ("http_502", "http_error"),
        ("http_503", "http_error"),
        ("hang", "timeout"),
        ("reset", "http_error"),
        ("truncated", "http_error"),
        ("malformed", "invalid_response"),
        ("wrong_content_type", "invalid_response"),
        ("oversized", "invalid_response"),
        ("oversized_chunked", "invalid_response"),
    ],
)
async def test_a_failed_poll_is_retried_keeps_the_state_and_recovers(
    case, fault, result, serve, harness, clock, caplog_all
):
    sim = await serve(case)
    h = harness(config(case, sim, four_tasks(sim), account={"timeout": 0.2}))
    await settle(h, clock)
    sim.set_fault(fault, **({"size": 2 * case.cls.max_body_bytes} if fault.startswith("oversized") else {}))
    before = sim.requests
    await h.poll()
    sim.clear_fault()
    assert sim.requests - before == 2  # retried once (max_tries: 2), then the set is down
    assert h.value("upload_provider_requests_total", result=result) == 2
    down = lines(caplog_all, "is down")
    assert len(down) == 1 and f"result={result}" in down[0]
    await kept_then_recovered(h, caplog_all)


@pytest.mark.parametrize(
    ("case", "discover"),
    [
        pytest.param(case, discover, id=f"{name}-{'discover' if discover else 'ids'}")
        for name, case in CASES.items()
        for discover in (False, True)
        if not discover or issubclass(case.cls, Discovering)
    ],
)
async def test_refused_credentials_are_not_retried_and_the_fix_is_logged_once(
    case, discover, serve, harness, clock, caplog_all
):
    code = case.refused_with
    sim = await serve(case, **{list(case.secrets)[-1]: "some-other-credential"})
    h = harness(config(case, sim, {"discover": True} if discover else four_tasks(sim)))
    for polls in (1, 2):
        clock.advance(10)
        await h.poll()
        assert sim.requests == polls and not sim.calls  # one request a poll, refused before it was recorded
        assert h.value("upload_provider_requests_total", result="api_error") == polls
        assert h.value("upload_provider_api_errors_total", code=code) == polls
        assert h.value("upload_poll_up") == 0
    down = lines(caplog_all, "is down")
    assert len(down) == 1  # when the set went down, not on every poll
    assert f"set set ({case.provider}) is down" in down[0]
    assert case.errors.auth[code] in down[0] and f"code={code}" in down[0]
    assert not [v for v in case.values().values() if v in caplog_all.text]


@pytest.mark.parametrize(("name", "code"), api_codes())
async def test_every_api_error_code_is_classed_counted_and_retried_or_not(
    name, code, serve, harness, clock, caplog_all
):
    case = CASES[name]
    kind = error_class(case.errors, code)
    tries = 2 if kind in (Throttled, Unavailable) else 1
    sim = await serve(case)
    ids = four_tasks(sim)
    h = harness(config(case, sim, ids, max_retry_time=0.05))  # a throttling pause waits no longer
    await settle(h, clock)
    sim.fail_next(f"api:{code}", times=tries)  # a retry beyond these would succeed and show
    before = sim.requests
    await h.poll()
    assert sim.requests - before == tries
    assert h.value("upload_provider_api_errors_total", code=code) == tries
    assert h.value("upload_provider_requests_total", result="api_error") == tries
    (down,) = lines(caplog_all, "is down")
    hint = case.errors.auth.get(code) or case.errors.rejected.get(code)
    assert f"code={code}" in down and (not hint or hint in down)
    assert not hint or hint in (h.store.sets["set"].down_reason or "")
    await kept_then_recovered(h, caplog_all)
    # Asked directly: the class the table says, the code read from the body whatever the HTTP status.
    sim.fail_next(f"api:{code}")
    with pytest.raises(kind) as caught:
        await h.runner().provider.fetch(ids)
    assert caught.value.api_code == code and (not hint or hint in caught.value.message)


@pytest.mark.parametrize(("name", "code"), [(n, c) for n, c in api_codes() if c in CASES[n].errors.throttling])
async def test_throttling_slows_the_account(name, code, serve, harness, clock):
    case = CASES[name]
    sim = await serve(case)
    ids = four_tasks(sim)
    h = harness(config(case, sim, ids, max_retry_time=0.05))
    provider = h.runner().provider
    limiter = provider._http._limiter
    clock.advance(10)
    sim.fail_next(f"api:{code}")
    await h.poll()
    assert sim.requests == 2 and h.value("upload_poll_up") == 1  # the retry got through
    assert h.value("upload_provider_api_errors_total", code=code) == 1
    slowed = limiter.rate
    assert slowed < limiter.max_rate  # halved by the answer, recovering a little on the retry's success
    sim.fail_next(f"api:{code}")
    with pytest.raises(Throttled) as caught:
        await provider.fetch(ids)
    assert caught.value.api_code == code
    assert caught.value.pause == case.errors.throttling[code]  # the least wait the provider documents
    assert caught.value.retry_after is None  # the simulators send no Retry-After: the pause is the table's
    assert limiter.rate == slowed / 2


@EVERY
async def test_no_request_carries_more_ids_than_the_caps(case, serve, harness, clock):
    sim = await serve(case)
    first = sim.add_task(duration=5).task_id
    small = [sim.add_task(duration=5).task_id for _ in range(7)]
    raw = config(case, sim, [first])
    raw["task_sets"].append({**raw["task_sets"][0], "name": "small", "batch_size": 3, "tasks": {"ids": small}})
    h = harness(raw)
    account = h.config.accounts["acc"]  # an account's own cap, below the API's, where it has one:
    cap = min([case.cls.batch_size, *(account.integer(f.name) for f in case.cls.account_fields if f.batch_cap)])
    assert h.runner("set").batch_size == cap and h.runner("small").batch_size == 3
    more = [sim.add_task(duration=5).task_id for _ in range(cap)]
    h.store.track("set", more, clock(), "a push")
    clock.advance(10)
    await h.poll("set")
    assert sorted(len(c.ids) for c in sim.calls) == [1, cap]
    assert sorted(i for c in sim.calls for i in c.ids) == sorted([first, *more])
    assert h.value("upload_tasks", task_set="set", state="done") == cap + 1
    assert h.value("upload_provider_requests_total", task_set="set", result="ok") == 2
    sim.calls.clear()
    await h.poll("small")
    assert sorted(len(c.ids) for c in sim.calls) == [1, 3, 3]
    assert h.value("upload_tasks", task_set="small", state="done") == 7


@EVERY
async def test_ids_an_answer_leaves_out_are_asked_again_and_counted_once(case, serve, harness, clock):
    sim = await serve(case)
    a, b, c = (sim.add_task(duration=5).task_id for _ in range(3))
    h = harness(config(case, sim, [a, b, c]))
    clock.advance(10)
    sim.set_fault("partial", ids=[b], times=1)  # the API's own answer, without b, once
    await h.poll()
    assert [call.ids for call in sim.calls] == [(a, b, c)]
    assert h.value("upload_poll_up") == 1
    assert h.value("upload_tasks", state="done") == 2 and h.value("upload_tasks", state="pending") == 1
    await h.poll()
    assert [call.ids for call in sim.calls][1:] == [(b,)]
    assert h.value("upload_tasks", state="done") == 3 and not h.value("upload_tasks", state="not_found")
    assert h.value("upload_tasks_completed_total") == 1  # b finished after the baseline
    await h.poll()  # final: not asked, nor counted, again
    assert len(sim.calls) == 2 and h.value("upload_tasks_completed_total") == 1


@EVERY
async def test_ids_not_in_the_providers_syntax_are_refused_and_never_sent(
    case, serve, harness, clock, tmp_path, caplog_all
):
    sim = await serve(case)
    good = sim.add_task(duration=5).task_id
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join([good, *case.bad_ids]) + "\n")
    h = harness(config(case, sim, {"files": [str(ids_file)]}))
    syntax = case.cls.task_id_syntax(h.config.accounts["acc"])
    with pytest.raises(ConfigError) as caught:
        harness(config(case, sim, [good, *case.bad_ids]))
    for i in range(1, len(case.bad_ids) + 1):
        assert f"tasks.ids[{i}]: expected {syntax.description}" in str(caught.value)
    assert "tasks.ids[0]" not in str(caught.value)
    assert h.store.track("set", list(case.bad_ids), clock(), "a push") == 0
    clock.advance(10)
    await h.poll()
    assert h.value("upload_poll_up") == 1 and list(h.store.sets["set"].tasks) == [good]
    assert sim.requests == 1 and [c.ids for c in sim.calls] == [(good,)]
    skipped = lines(caplog_all, "skipped")
    assert len(skipped) == 2  # one line per read and per push, however many IDs it held
    assert any("from a push" in m for m in skipped)
    assert any("from file" in m and f"{len(case.bad_ids)} task IDs" in m for m in skipped)


@EVERY
async def test_no_secret_in_errors_tracebacks_metrics_or_logs(case, serve, harness, clock, caplog_all):
    values = case.values()
    good = await serve(case)
    bad = await serve(case, **{list(values)[-1]: "some-other-credential"})
    ids = [
        good.add_task(duration=1).task_id,
        good.add_task(duration=500).task_id,
        good.add_task(duration=1, fails=True).task_id,
    ]
    clock.advance(2)
    lists = issubclass(case.cls, Discovering)  # then the listing meets the failures first
    h = harness(
        {  # the direct calls on an account of their own: each throttling answer halves its rate
            "accounts": {
                "good": case.account(good, timeout=0.2, rate_limit=10_000),
                "direct": case.account(good, timeout=0.2, rate_limit=10_000),
                "bad": case.account(bad),
            },
            "task_sets": [
                {
                    "name": name,
                    "account": name,
                    "interval": 60,
                    "max_tries": 1,
                    "tasks": {"ids": ids, "discover": lists and name == "good"},
                }
                for name in ("good", "direct", "bad")
            ],
        }
    )
    provider = h.runner("direct").provider
    assert len((await provider.fetch(ids)).statuses) == 3  # the secrets are right: the simulator answers
    # Sustained faults (the simulator's own auth and throttling answers among them), then every API code.
    failures = [
        "http_500",
        "hang",
        "reset",
        "truncated",
        "malformed",
        "wrong_content_type",
        "oversized",
        "auth",
        "throttle",
        *(f"api:{code}" for n, code in api_codes() if n == case.provider),
        *(f"api:{text}" for text in case.echoes),
    ]
    errors: list[ProviderError] = []
    with pytest.raises(AuthFailed) as refused:
        await h.runner("bad").provider.fetch(ids)
    errors.append(refused.value)
    for failure in failures:
        inject(good, failure, case)
        with pytest.raises(ProviderError) as caught:
            await provider.fetch(ids)
        good.clear_fault()
        errors.append(caught.value)
    # The same failures through the core: what the metrics, the logs and the set's down reason say.
    await h.poll("bad")
    reasons = []
    for failure in failures:
        inject(good, failure, case)  # one try a poll: each poll meets its own failure
        await h.poll("good")
        good.clear_fault()
        assert h.value("upload_poll_up", task_set="good") == 0
        reasons.append(h.store.sets["good"].down_reason or "")
    await h.poll("good")
    assert h.value("upload_poll_up", task_set="good") == 1 and h.value("upload_poll_up", task_set="bad") == 0
    derived = case.derived(good) if case.derived else []
    assert derived or not case.derived  # signatures were sent, and are looked for
    secrets = [*values.values(), *derived, *case.task_secrets]
    for err in errors:
        assert not leaks(err, secrets), f"{err!r} leaks a secret"
    logged = [caplog_all.text, *(r.getMessage() for r in caplog_all.records), *reasons]
    for value in secrets:
        assert value not in h.metrics()
        assert not any(value in text for text in logged)
    labels = {v for f in text_string_to_metric_families(h.metrics()) for s in f.samples for v in s.labels.values()}
    assert not {v for v in labels for public in case.public.values() if public in v}  # not secret, but no label
