"""The Yandex Direct provider against its simulator, over real HTTP on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from exporter.core.http import HttpResponse
from exporter.core.model import TaskState
from exporter.providers import yandex_direct
from exporter.simulator.yandex_direct import YandexDirectSimulator

TOKEN = "y0_AgAAAAB-secret-token-value"


@pytest.fixture
async def sim(clock) -> AsyncIterator[YandexDirectSimulator]:
    s = YandexDirectSimulator(token=TOKEN, clock=clock)
    await s.start()
    yield s
    await s.stop()


def config(sim: YandexDirectSimulator, tasks: dict[str, Any], **account: Any) -> dict[str, Any]:
    return {
        "accounts": {
            "direct": {
                "provider": "yandex_direct",
                "endpoint": sim.url,
                "token": {"env": "TEST_YANDEX_TOKEN"},
                **account,
            }
        },
        "task_sets": [
            {
                "name": "banners",
                "account": "direct",
                "interval": 60,
                "tasks": tasks,
                "max_tries": 2,
                "max_retry_time": 1,
            }
        ],
    }


@pytest.fixture(autouse=True)
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_YANDEX_TOKEN", TOKEN)


async def test_discovery_pages_beyond_10000_exactly(sim, harness, clock):
    for _ in range(25_003):
        sim.add_task(duration=10, fails=False)
    for _ in range(7):
        sim.add_task(duration=10, fails=True)
    clock.advance(11)
    h = harness(config(sim, {"discover": True}))
    await h.poll()
    offsets = [c.params["offset"] for c in sim.calls]
    assert offsets == [0, 10_000, 20_000]
    assert all(c.params["limit"] == 10_000 for c in sim.calls)
    assert h.value("upload_tasks", state="done") == 25_003
    assert h.value("upload_tasks", state="error") == 7
    assert h.value("upload_tasks", state="pending") == 0
    assert len(h.store.sets["banners"].tasks) == 25_010


async def test_explicit_ids_states_and_faults(sim, harness, clock):
    done = sim.add_task(duration=5)
    failing = sim.add_task(duration=5, fails=True)
    slow = sim.add_task(duration=500)
    h = harness(config(sim, {"ids": [done.task_id, failing.task_id, slow.task_id, "999999"]}))
    await h.poll()  # all pending: the baseline; 999999 is left out of the answer once
    assert h.value("upload_tasks", state="pending") == 4
    clock.advance(10)
    await h.poll()
    assert h.value("upload_tasks", state="done") == 1
    assert h.value("upload_tasks", state="error") == 1
    assert h.value("upload_tasks", state="pending") == 2
    clock.advance(1)
    await h.poll()  # left out of three answers in a row: the API no longer knows it
    assert h.value("upload_tasks", state="pending") == 1
    assert h.value("upload_tasks", state="not_found") == 1
    assert h.value("upload_tasks_provider_status", status="missing") == 1
    assert h.value("upload_task_faults", fault_code=failing.fault[0]) == 1
    assert h.value("upload_tasks_failed_total", fault_code=failing.fault[0]) == 1
    assert h.value("upload_tasks_completed_total") == 1
    # Final and not-found tasks are not asked again; only the pending one is.
    clock.advance(1000)
    await h.poll()
    assert sim.calls[-1].ids == (slow.task_id,)
    assert h.value("upload_tasks", state="done") == 2
    assert h.value("upload_tasks_completed_total") == 2
    assert h.value("upload_poll_up") == 1


async def test_tasks_finished_before_the_first_poll_are_not_counted_as_new(sim, harness, clock):
    # After a restart, history is not news: no burst of completions or failures.
    for i in range(6):
        sim.add_task(duration=1, fails=i % 2 == 0)
    clock.advance(5)
    h = harness(config(sim, {"discover": True}))
    await h.poll()
    assert h.value("upload_tasks", state="done") == 3
    assert h.value("upload_tasks_completed_total") == 0
    assert h.value("upload_tasks_failed_total") is None
    sim.add_task(duration=1, fails=True)
    clock.advance(5)
    await h.poll()  # a task that appeared and failed between polls is news
    assert h.value("upload_tasks_failed_total") == 1


async def test_logins_beyond_ten_are_split(sim, harness, clock):
    logins = [f"client{i}" for i in range(23)]
    for login in logins:
        sim.add_task(duration=1, owner=login)
    clock.advance(2)
    h = harness(config(sim, {"discover": True}, logins=logins))
    await h.poll()
    groups = [c.params["logins"] for c in sim.calls]
    assert [len(g) for g in groups] == [10, 10, 3]
    assert sorted(sum(groups, ())) == sorted(logins)
    assert h.value("upload_tasks", state="done") == 23


@pytest.mark.parametrize(
    "item",
    [
        {"AdImageUploadTaskID": 7, "Status": "Error", "Error": "not an object"},
        {"AdImageUploadTaskID": 7, "Status": "Error", "Error": [1, 2]},
        {"AdImageUploadTaskID": 7, "Status": "Error", "Error": {"FaultCode": None, "FaultString": {"a": 1}}},
        {"AdImageUploadTaskID": 7, "Status": ["Done"]},
        {"AdImageUploadTaskID": 7},
    ],
)
def test_an_item_that_parses_always_decodes(item):
    # Statuses are decoded when the poll is applied, after the provider's error handling.
    (parsed,) = yandex_direct._parse_page(response({"data": {"AdImageUploads": [item]}}))[0]
    status = yandex_direct._status(*parsed)
    assert status.task_id == "7" and status.state in (TaskState.ERROR, TaskState.PENDING)


@pytest.mark.parametrize("item", ["7", 7, None, [7], {"Status": "Done"}, {"AdImageUploadTaskID": None}])
def test_an_item_that_would_not_decode_fails_the_parse(item):
    from exporter.core.errors import BadResponse

    with pytest.raises(BadResponse, match="unexpected response shape"):
        yandex_direct._parse_page(response({"data": {"AdImageUploads": [item]}}))


def response(body: Any) -> HttpResponse:
    return HttpResponse(200, {}, json.dumps(body).encode(), "api.direct.yandex.ru/live/v4/json/")


async def test_ids_in_the_apis_own_listing_that_are_not_task_ids_are_skipped(sim, harness, clock, caplog_all):
    """AdImageUploadTaskIDS is an int64 array: an ID past it could never be asked about (config, file and
    pushed IDs: tests/test_conformance.py)."""
    good = sim.add_task(duration=5).task_id
    sim.add_task(duration=5, task_id="9" * 22)
    h = harness(config(sim, {"discover": True}))
    clock.advance(10)
    await h.poll()
    assert h.value("upload_poll_up") == 1
    assert list(h.store.sets["banners"].tasks) == [good]
    skipped = [r.getMessage() for r in caplog_all.records if r.getMessage().startswith("skipped")]
    assert len(skipped) == 1 and "listing" in skipped[0]


def test_a_null_total_is_read_as_unknown():
    """TotalObjectsCount is nillable in the API's schema."""
    items, total = yandex_direct._parse_page(response({"data": {"AdImageUploads": [], "TotalObjectsCount": None}}))
    assert items == [] and total is None


def test_an_api_error_keeps_what_its_detail_says():
    body = {"error_code": 53, "error_str": "Authorization error", "error_detail": "Invalid OAuth token"}
    with pytest.raises(Exception) as caught:
        yandex_direct._parse_page(response(body))
    assert "Authorization error; Invalid OAuth token" in str(caught.value)


def compact_poll(ids: list[str], statuses: dict[str, Any]) -> tuple[Any, Any]:
    """One answer naming `ids` as asked, read the usual way (compact) and task by task."""
    from exporter.core.model import FetchResult, LazyStatuses
    from exporter.core.pages import status_page

    items = [{"AdImageUploadTaskID": int(t), "Status": statuses.get(t, "Pending"), "Name": "x"} for t in ids]
    for item in items:
        if item["Status"] == "Error":
            item["Error"] = {"FaultCode": 5004, "FaultString": "bad", "FaultDetail": "image"}
    body = {"data": {"AdImageUploads": items, "TotalObjectsCount": len(items)}}
    page, total = yandex_direct._parse_compact(response(body), ",".join(ids), 0)
    assert total == len(ids) and yandex_direct.names_as_asked([page], ",".join(ids))
    compact = FetchResult(status_page([page], ids, yandex_direct.KINDS, yandex_direct._status))
    one_by_one = FetchResult(LazyStatuses(page.items(yandex_direct.KINDS), yandex_direct._status))
    return compact, one_by_one


def test_a_compact_answer_leaves_the_state_as_one_read_task_by_task():
    from exporter.core.state import PollOutcome, StateStore

    ids = [str(100 + i) for i in range(2500)]
    first = {t: "Done" for t in ids[::7]}
    later = {**first, **{t: "Error" for t in ids[1::11]}, **{t: "Uploading" for t in ids[2::13]}}
    stores = []
    for way in (0, 1):
        store = StateStore()
        store.ensure_set("s", "yandex_direct", yandex_direct.YandexDirect.vocabulary)
        st = store.sets["s"]
        st.keep_changes, st.counted = True, {}  # as a state file or a shared store would have them kept
        store.track("s", ids[:-5], 10.0)  # the last five are not tracked: the answer names them anyway
        st.tombstones.bury(ids[-1], TaskState.DONE, 10.0)  # but one of them was forgotten: left alone
        for at, statuses in ((20.0, first), (30.0, {}), (40.0, later)):
            result = compact_poll(ids, statuses)[way]
            store.apply_poll("s", PollOutcome(started=at, duration=0.5, results=[result]))
        stores.append(store.sets["s"])
    compact, one_by_one = stores
    assert {t: r.row(t) for t, r in compact.tasks.items()} == {t: r.row(t) for t, r in one_by_one.tasks.items()}
    assert list(compact.index.pending) == list(one_by_one.index.pending)
    assert (compact.by_state, compact.by_status, compact.faults) == (
        one_by_one.by_state,
        one_by_one.by_status,
        one_by_one.faults,
    )
    assert (compact.completed_total, compact.failed_total) == (one_by_one.completed_total, one_by_one.failed_total)
    assert {s: h.dump() for s, h in compact.durations.items()} == {s: h.dump() for s, h in one_by_one.durations.items()}
    assert compact.dirty == one_by_one.dirty and compact.counted == one_by_one.counted and compact.counted
    assert ids[-2] in compact.tasks and ids[-1] not in compact.tasks
    assert compact.by_state[TaskState.ERROR] and compact.by_status["other"] and compact.durations[TaskState.DONE].count


def test_an_answer_out_of_the_asked_order_is_read_task_by_task():
    body = {"data": {"AdImageUploads": [{"AdImageUploadTaskID": 8, "Status": "Done"}, {"AdImageUploadTaskID": 7}]}}
    page, _ = yandex_direct._parse_compact(response(body), "7,8", 0)
    assert not yandex_direct.names_as_asked([page], "7,8")
    assert page.items(yandex_direct.KINDS) == [("8", "Done", None), ("7", "", None)]
    string_ids = {"data": {"AdImageUploads": [{"AdImageUploadTaskID": "7", "Status": "Done"}]}}
    page, _ = yandex_direct._parse_compact(response(string_ids), "7", 0)
    assert page.items() == [("7", "Done", None)]  # read by the full parse: not kept compact


@pytest.mark.parametrize(
    "ids, text",
    [
        (["1", "23", "456"], "1,23,456"),
        (["9" * 18], "9" * 18),
        (["1" * 19], None),  # past the API's 64-bit integers
        (["0"], None),
        (["1", "01"], None),  # a leading zero is not a JSON integer
        (["1", ""], None),  # an empty ID
        ([""], None),
        ([], None),  # an empty list would ask for every task
        (["1,2"], None),  # an ID hiding a comma
        (["1", "2,"], None),
        (["1 "], None),
        (["١"], None),  # a digit, but not an ASCII one
        (["1]"], None),
        (['1", "x'], None),
    ],
)
def test_a_request_names_only_ids_in_the_apis_syntax(ids, text):
    assert yandex_direct._id_text(ids) == text
    assert (text is not None) == (bool(ids) and all(yandex_direct.ID_SYNTAX.accepts(t) for t in ids))
