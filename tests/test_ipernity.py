"""The ipernity provider against its simulator, over real HTTP on loopback."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from exporter.core.errors import ConfigError
from exporter.core.model import FetchResult, PollOutcome, TaskState, TaskStatus
from exporter.core.state import StateStore
from exporter.providers.ipernity import Ipernity, sign
from exporter.simulator.ipernity import IpernitySimulator

API_KEY = "4f2c9e0a-ipernity-api-key"
API_SECRET = "e9a599f0cf6ce193-secret"
AUTH_TOKEN = "8812-ipernity-auth-token"


@pytest.fixture
async def sim(clock) -> AsyncIterator[IpernitySimulator]:
    s = IpernitySimulator(api_key=API_KEY, api_secret=API_SECRET, auth_token=AUTH_TOKEN, clock=clock)
    await s.start()
    yield s
    await s.stop()


def config(sim: IpernitySimulator, ids: list[str], **account: Any) -> dict[str, Any]:
    return {
        "accounts": {
            "iper": {
                "provider": "ipernity",
                "endpoint": sim.url,
                "rate_limit": 1000,
                "api_key": {"env": "TEST_IPERNITY_KEY"},
                "api_secret": {"env": "TEST_IPERNITY_SECRET"},
                "auth_token": {"env": "TEST_IPERNITY_TOKEN"},
                **account,
            }
        },
        "task_sets": [
            {
                "name": "photos",
                "account": "iper",
                "interval": 60,
                "tasks": {"ids": ids},
                "max_tries": 2,
                "max_retry_time": 0.2,
            }
        ],
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
    waiting = TaskStatus("a", TaskState.PENDING, "pending", eta_seconds=50.0, not_before=150.0)
    store.apply_poll("s", PollOutcome(started=100.0, duration=0.0, results=[FetchResult([waiting])]))
    assert store.sets["s"].tasks["a"].not_before == 150.0
    assert store.due("s", 149.9) == ["b"]
    assert store.due("s", 150.0) == ["a", "b"]


async def test_a_lone_ticket_object_and_string_or_int_attributes(harness, clock):
    sim = IpernitySimulator(
        api_key=API_KEY, api_secret=API_SECRET, auth_token=AUTH_TOKEN, clock=clock, single_as_object=True
    )
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
    sim = IpernitySimulator(
        api_key=API_KEY, api_secret=API_SECRET, auth_token=AUTH_TOKEN, clock=clock, unknown_is_error=True
    )
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
