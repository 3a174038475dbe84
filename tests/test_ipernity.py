"""The ipernity provider against its simulator, over real HTTP on loopback."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from exporter.core.errors import ConfigError, Throttled
from exporter.core.model import TaskState
from exporter.core.state import StateStore
from exporter.providers.ipernity import ERRORS, Ipernity, sign
from exporter.simulator.ipernity import IpernitySimulator

AUTH_HINTS = ERRORS.auth
THROTTLE_CODES = ERRORS.throttling
THROTTLE_WAIT = ERRORS.throttling

API_KEY = "4f2c9e0a-ipernity-api-key"
API_SECRET = "e9a599f0cf6ce193-secret"
AUTH_TOKEN = "8812-ipernity-auth-token"
SECRETS = (API_KEY, API_SECRET, AUTH_TOKEN)


@pytest.fixture
async def sim(clock) -> AsyncIterator[IpernitySimulator]:
    s = IpernitySimulator(api_key=API_KEY, api_secret=API_SECRET, auth_token=AUTH_TOKEN, clock=clock)
    await s.start()
    yield s
    await s.stop()


def config(sim: IpernitySimulator, ids: list[str], **account: Any) -> dict[str, Any]:
    return {
        "accounts": {"iper": {"provider": "ipernity", "endpoint": sim.url, "rate_limit": 1000,
                              "api_key": {"env": "TEST_IPERNITY_KEY"}, "api_secret": {"env": "TEST_IPERNITY_SECRET"},
                              "auth_token": {"env": "TEST_IPERNITY_TOKEN"}, **account}},
        "task_sets": [{"name": "photos", "account": "iper", "interval": 60, "tasks": {"ids": ids},
                       "max_tries": 2, "max_retry_time": 0.2}],
    }


@pytest.fixture(autouse=True)
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_IPERNITY_KEY", API_KEY)
    monkeypatch.setenv("TEST_IPERNITY_SECRET", API_SECRET)
    monkeypatch.setenv("TEST_IPERNITY_TOKEN", AUTH_TOKEN)


def test_signature_matches_the_documented_example():
    # doc.tags.add with api_key, doc_id=1234, keywords=easy and secret e9a599f0cf6ce193.
    params = {"api_key": "KEY", "doc_id": "1234", "keywords": "easy"}
    text = "api_keyKEYdoc_id1234keywordseasydoc.tags.adde9a599f0cf6ce193"
    assert sign(params, "doc.tags.add", "e9a599f0cf6ce193") == hashlib.md5(text.encode()).hexdigest()


async def test_batches_of_50_then_only_due_tickets_are_asked(sim, harness, clock):
    quick = [sim.add_task(duration=5).task_id for _ in range(40)]
    failing = [sim.add_task(duration=5, fails=True).task_id for _ in range(5)]
    medium = [sim.add_task(duration=100).task_id for _ in range(35)]
    slow = [sim.add_task(duration=1000).task_id for _ in range(35)]
    unknown = [f"9{i}000-{i}" for i in range(5)]
    ids = quick + failing + medium + slow + unknown
    assert len(ids) == 120 and any("-" in t for t in quick + medium + slow)
    h = harness(config(sim, ids))
    clock.advance(10)
    await h.poll()
    assert [len(c.ids) for c in sim.calls] == [50, 50, 20]
    assert sorted(sum((c.ids for c in sim.calls), ())) == sorted(ids)
    assert h.value("upload_tasks", state="done") == 40
    assert h.value("upload_tasks", state="not_found") == 10  # invalid: failed or unknown
    assert h.value("upload_tasks", state="pending") == 70
    assert h.value("upload_tasks_provider_status", status="invalid") == 10
    assert h.value("upload_tasks_eta_seconds") == 990  # the API's global ETA of the slowest batch
    assert h.value("upload_poll_up") == 1
    # 95 seconds later the medium tickets' ETA (90 s) has passed; the slow ones' has not.
    clock.advance(95)
    await h.poll()
    assert len(sim.calls) == 4
    assert sorted(sim.calls[-1].ids) == sorted(medium)
    assert h.value("upload_tasks", state="done") == 75
    # The slow tickets, not asked, still count with what is left of their ETA.
    assert h.value("upload_tasks_eta_seconds") == pytest.approx(895, abs=1)  # poll durations are wall time
    # Nothing is due now: no request at all.
    clock.advance(10)
    await h.poll()
    assert len(sim.calls) == 4
    assert h.value("upload_tasks_eta_seconds") == pytest.approx(885, abs=1)
    clock.advance(1000)
    await h.poll()
    assert sorted(sum((c.ids for c in list(sim.calls)[4:]), ())) == sorted(slow)
    assert h.value("upload_tasks", state="done") == 110
    assert h.value("upload_tasks", state="pending") == 0
    # The 40 already done at the first poll are the baseline, not transitions seen.
    assert h.value("upload_tasks_completed_total") == 70


def test_not_before_is_honoured_by_the_core():
    store = StateStore()
    store.ensure_set("s", Ipernity.name, Ipernity.vocabulary)
    store.track("s", ["a", "b"], now=100.0)
    assert store.due("s", 100.0) == ["a", "b"]
    store.sets["s"].tasks["a"].not_before = 150.0
    assert store.due("s", 149.9) == ["b"]
    assert store.due("s", 150.0) == ["a", "b"]


async def test_a_lone_ticket_object_and_string_or_int_attributes(harness, clock):
    sim = IpernitySimulator(api_key=API_KEY, api_secret=API_SECRET, auth_token=AUTH_TOKEN, clock=clock,
                            single_as_object=True)
    await sim.start()
    try:
        ticket = sim.add_task(duration=30).task_id
        h = harness(config(sim, [ticket]))
        await h.poll()
        assert h.value("upload_tasks", state="pending") == 1
        assert h.store.sets["photos"].tasks[ticket].not_before == clock.now + 30
        clock.advance(30)
        await h.poll()
        assert h.value("upload_tasks", state="done") == 1
        assert len(sim.calls) == 2
    finally:
        await sim.stop()


async def test_error_1_halves_the_batch_until_the_unknown_ticket_is_alone(harness, clock):
    sim = IpernitySimulator(api_key=API_KEY, api_secret=API_SECRET, auth_token=AUTH_TOKEN, clock=clock,
                            unknown_is_error=True)
    await sim.start()
    try:
        known = [sim.add_task(duration=1).task_id for _ in range(7)]
        ids = [*known[:5], "404404", *known[5:]]
        h = harness(config(sim, ids))
        clock.advance(2)
        await h.poll()
        # 8 -> 4 ok + 4 -> 2 + 2 ok -> 1 ok + 1 refused: 7 requests, 4 answered with error 1.
        assert sim.requests == 7
        assert h.value("upload_provider_api_errors_total", code="1") == 4
        assert h.value("upload_provider_requests_total", result="ok") == 3
        assert h.store.sets["photos"].tasks["404404"].state is TaskState.NOT_FOUND
        assert h.value("upload_tasks", state="done") == 7
        assert h.value("upload_poll_up") == 1
    finally:
        await sim.stop()


@pytest.mark.parametrize(
    ("code", "requests"),
    [
        *[(c, 2) for c in ("112", "113")],  # throttled: retried, the account slowed
        *[(c, 2) for c in ("500", "501", "503")],  # unavailable: retried
        *[(c, 1) for c in AUTH_HINTS],  # auth
        *[(c, 1) for c in ("102", "103", "120", "121", "122")],  # rejected
    ],
)
async def test_api_error_codes_are_counted_set_down_and_retried_or_not(sim, harness, clock, code, requests):
    ids = [sim.add_task(duration=5).task_id for _ in range(3)] + [sim.add_task(duration=500).task_id]
    h = harness(config(sim, ids))
    clock.advance(10)
    await h.poll()
    assert h.value("upload_tasks", state="done") == 3
    sim.fail_next(f"api:{code}", times=requests)  # a retry beyond these would succeed and show
    before = sim.requests
    clock.advance(1000)
    await h.poll()
    assert sim.requests - before == requests
    assert h.value("upload_provider_api_errors_total", code=code) == requests
    assert h.value("upload_provider_requests_total", result="api_error") == requests
    assert h.value("upload_poll_up") == 0
    assert h.value("upload_tasks", state="done") == 3  # the last known state is kept
    assert h.value("upload_tasks", state="pending") == 1
    await h.poll()
    assert h.value("upload_poll_up") == 1
    assert h.value("upload_tasks", state="done") == 4


@pytest.mark.parametrize("code", sorted(THROTTLE_CODES))
async def test_throttling_slows_the_account(sim, harness, clock, code):
    assert set(THROTTLE_CODES) == {"112", "113"}  # app quota and client-IP rate
    ids = [sim.add_task(duration=500).task_id]
    h = harness(config(sim, ids))
    provider = h.runner().provider
    limiter = provider._http._limiter
    sim.fail_next(f"api:{code}")
    await h.poll()
    assert sim.requests == 2
    slowed = limiter.rate
    assert slowed < limiter.max_rate  # halved by the throttling answer, recovering a tenth on the retry's success
    assert h.value("upload_provider_api_errors_total", code=code) == 1
    assert h.value("upload_poll_up") == 1  # the retry got through
    # The error asks the retry to wait: an hourly/daily quota longer than a per-second rate.
    sim.fail_next(f"api:{code}")
    with pytest.raises(Throttled) as caught:
        await provider.fetch(ids)
    assert caught.value.api_code == code
    assert caught.value.pause == THROTTLE_WAIT[code] > 0
    assert caught.value.retry_after is None  # a documented pause, not the server's Retry-After
    assert limiter.rate == slowed / 2


@pytest.mark.parametrize(("code", "hint"), [pytest.param(c, h, id=c) for c, h in AUTH_HINTS.items()])
async def test_auth_codes_log_the_set_down_with_their_hint(sim, harness, clock, caplog_all, code, hint):
    h = harness(config(sim, [sim.add_task(duration=1).task_id]))
    sim.fail_next(f"api:{code}")
    await h.poll()
    assert sim.requests == 1  # not retried
    assert h.value("upload_provider_api_errors_total", code=code) == 1
    assert h.value("upload_poll_up") == 0
    down = [r.getMessage() for r in caplog_all.records if "is down" in r.getMessage()]
    assert len(down) == 1
    assert "set photos (ipernity) is down" in down[0]
    assert hint in down[0] and f"code={code}" in down[0]
    assert hint in (h.store.sets["photos"].down_reason or "")


async def test_bad_signature_is_refused_and_names_the_fix(sim, harness, clock, caplog_all, monkeypatch):
    monkeypatch.setenv("TEST_IPERNITY_SECRET", "not-the-right-secret")
    ids = [sim.add_task(duration=1).task_id]
    h = harness(config(sim, ids))
    await h.poll()
    await h.poll()
    assert sim.requests == 2 and not sim.calls  # one request a poll, refused before it was recorded
    assert h.value("upload_provider_api_errors_total", code="105") == 2
    assert h.value("upload_poll_up") == 0
    down = [r.getMessage() for r in caplog_all.records if "is down" in r.getMessage()]
    assert len(down) == 1  # logged once
    assert "set api_secret to the secret of this api_key" in down[0]


async def test_missing_auth_token_is_refused_at_load(sim, harness, clock):
    """upload.checkTickets is a signed call with a token holding doc write permission."""
    ids = [sim.add_task(duration=1).task_id]
    raw = config(sim, ids)
    del raw["accounts"]["iper"]["auth_token"]
    with pytest.raises(ConfigError, match=r"accounts\.iper\.auth_token: required: .*doc write"):
        harness(raw)
    assert sim.requests == 0


async def test_the_simulator_refuses_more_than_50_tickets(sim, session):
    params = {"api_key": API_KEY, "auth_token": AUTH_TOKEN, "tickets": ",".join(str(i) for i in range(51))}
    data = {**params, "api_sig": sign(params, "upload.checkTickets", API_SECRET)}
    async with session.post(f"{sim.url}upload.checkTickets/json", data=data) as resp:
        body = await resp.json()
    assert body["api"] == {"status": "error", "code": 102, "message": "no more than 50 tickets"}
    data["tickets"] = ",".join(str(i) for i in range(50))
    data["api_sig"] = sign({**params, "tickets": data["tickets"]}, "upload.checkTickets", API_SECRET)
    async with session.post(f"{sim.url}upload.checkTickets/json", data=data) as resp:
        body = await resp.json()
    assert body["api"] == {"status": "ok"} and body["tickets"]["invalid"] == 50


async def test_secrets_never_in_logs_or_metrics(sim, harness, clock, caplog_all):
    ids = [sim.add_task(duration=1, fails=True).task_id, sim.add_task(duration=1).task_id]
    h = harness(config(sim, ids, timeout=0.5))
    for failure, times in (("http_500", 2), ("timeout", 2), ("malformed", 2), ("api:105", 1), ("api:107", 1),
                           ("api:113", 2), ("api:500", 2)):
        sim.fail_next(failure, times=times)
        await h.poll()
    clock.advance(5)
    await h.poll()
    assert h.value("upload_tasks", state="done") == 1
    signatures = {c.params["api_sig"] for c in sim.calls}
    assert signatures
    text = h.metrics() + caplog_all.text + "".join(r.getMessage() for r in caplog_all.records)
    for secret in (*SECRETS, *signatures):
        assert secret not in text
