"""The encoding.com provider against its simulator, over real HTTP on loopback."""

from __future__ import annotations

import resource
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from exporter.simulator.encoding_com import FTP_PASSWORD, EncodingComSimulator

USERID = "31337"
USERKEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0-secret-userkey"
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<response><job><id>1001</id><status>&lol9;</status></job></response>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE response [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<response><job><id>1001</id><status>&xxe;</status></job></response>"""


@pytest.fixture
async def sim(clock) -> AsyncIterator[EncodingComSimulator]:
    s = EncodingComSimulator(userid=USERID, userkey=USERKEY, clock=clock)
    await s.start()
    yield s
    await s.stop()


def config(
    sim: EncodingComSimulator, ids: list[str], task_set: dict[str, Any] | None = None, **account: Any
) -> dict[str, Any]:
    return {
        "accounts": {
            "encoding": {
                "provider": "encoding_com",
                "endpoint": sim.url,
                "userid": USERID,
                "userkey": {"env": "TEST_ENCODING_USERKEY"},
                "rate_limit": 1000,
                **account,
            }
        },
        "task_sets": [
            {
                "name": "videos",
                "account": "encoding",
                "interval": 60,
                "tasks": {"ids": ids},
                "max_tries": 2,
                "max_retry_time": 1,
                **(task_set or {}),
            }
        ],
    }


@pytest.fixture(autouse=True)
def userkey_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_ENCODING_USERKEY", USERKEY)


def failing(sim: EncodingComSimulator, kind: str, text: str, duration: float = 5) -> str:
    task = sim.add_task(duration=duration, fails=True)
    task.fault = (kind, text)
    return task.task_id


async def test_single_media_status_progress_eta_and_duration(sim, harness, clock):
    media = sim.add_task(duration=200)
    h = harness(config(sim, [media.task_id]))
    clock.advance(100)
    await h.poll()
    assert [c.ids for c in sim.calls] == [(media.task_id,)]
    assert sim.calls[0].params["extended"] is True
    assert h.value("upload_tasks", state="pending") == 1
    assert h.value("upload_tasks_provider_status", status="Processing") == 1
    assert h.value("upload_tasks_progress_ratio") == pytest.approx(0.5)
    assert h.value("upload_tasks_eta_seconds") == 100
    clock.advance(150)
    await h.poll()
    assert h.value("upload_tasks", state="done") == 1
    assert h.value("upload_tasks_completed_total") == 1
    assert h.value("upload_tasks_progress_ratio") == 1
    assert h.value("upload_tasks_eta_seconds") == 0
    # Created-to-finished from the API's own times, not from when the exporter looked.
    assert h.value("upload_task_duration_seconds_count", state="done") == 1
    assert h.value("upload_task_duration_seconds_sum", state="done") == 200


async def test_batch_statuses_progress_eta_and_durations(sim, harness, clock):
    short = [sim.add_task(duration=d).task_id for d in (10, 20, 30)]
    long = [sim.add_task(duration=d).task_id for d in (400, 1000)]
    broken = failing(sim, "processing", "Unsupported video codec", duration=40)
    h = harness(config(sim, [*short, *long, broken]))
    await h.poll()  # all pending: the baseline, so the finishes below are transitions seen
    clock.advance(100)
    await h.poll()
    assert len(sim.calls) == 2 and len(sim.calls[1].ids) == 6
    assert h.value("upload_tasks", state="done") == 3
    assert h.value("upload_tasks", state="error") == 1
    assert h.value("upload_tasks", state="pending") == 2
    assert h.value("upload_task_faults", fault_code="processing_error") == 1
    assert h.value("upload_tasks_failed_total", fault_code="processing_error") == 1
    # Finished count as 1, the pending ones at 25% and 10%.
    assert h.value("upload_tasks_progress_ratio") == pytest.approx((4 + 0.25 + 0.1) / 6)
    assert h.value("upload_tasks_eta_seconds") == 900  # the longest time_left
    assert h.value("upload_task_duration_seconds_sum", state="done") == 60
    assert h.value("upload_task_duration_seconds_sum", state="error") == 40


@pytest.mark.parametrize(
    ("account", "task_set", "batch", "sizes"),
    [
        ({}, {}, 25, [25, 25, 10]),  # the account's default cap
        ({"max_media_per_request": 40}, {}, 40, [40, 20]),
        ({"max_media_per_request": 40}, {"batch_size": 15}, 15, [15, 15, 15, 15]),  # the set's cap is lower
        ({"max_media_per_request": 100}, {}, 100, [60]),  # the class cap (above it the config is refused)
    ],
)
async def test_one_request_per_batch_within_every_cap(sim, harness, clock, account, task_set, batch, sizes):
    ids = [sim.add_task(duration=500).task_id for _ in range(60)]
    h = harness(config(sim, ids, task_set, **account))
    clock.advance(10)
    assert h.runner().batch_size == batch  # the scheduler's batches, one request each
    await h.poll()
    assert sorted(len(c.ids) for c in sim.calls) == sorted(sizes)
    assert sorted(i for c in sim.calls for i in c.ids) == sorted(ids)
    assert h.value("upload_provider_requests_total", result="ok") == len(sizes)
    assert h.value("upload_tasks", state="pending") == 60


async def test_destination_failures_counted_by_reason_once(sim, harness, clock, caplog_all):
    ids = [
        failing(sim, "destination", "Access Denied"),
        failing(sim, "destination", "Connection timed out"),
        failing(sim, "destination", "NoSuchBucket: The specified bucket does not exist"),
        failing(sim, "destination", "Disk quota exceeded"),
        failing(sim, "download", "Download error: HTTP/1.1 404 Not Found"),
        sim.add_task(duration=5).task_id,
        failing(sim, "destination", "Could not resolve host"),
    ]
    h = harness(config(sim, ids))
    clock.advance(4.5)  # all saving; no destination has failed yet
    await h.poll()
    assert h.value("upload_tasks", state="error") == 0
    sim.force_status(ids[-1], "Finished")  # the media says Finished, but a destination failed
    clock.advance(10)
    await h.poll()
    assert h.value("upload_tasks", state="error") == 6
    assert h.value("upload_tasks", state="done") == 1
    assert h.value("upload_tasks_provider_status", status="Finished") == 2  # as reported
    assert h.value("upload_task_faults", fault_code="destination_error") == 5
    assert h.value("upload_task_faults", fault_code="download_error") == 1
    for reason in ("access_denied", "timeout", "not_found", "connection", "other"):
        assert h.value("upload_destination_errors_total", reason=reason) == 1
    clock.advance(100)
    await h.poll()  # final media are not asked again, nor counted again
    assert h.value("upload_destination_errors_total", reason="access_denied") == 1
    # Destination URLs carry credentials: they reach neither labels nor logs.
    assert FTP_PASSWORD not in h.metrics() and "ftp://" not in h.metrics()
    assert FTP_PASSWORD not in caplog_all.text
    assert all("://" not in rec.message for rec in h.store.sets["videos"].tasks.values())


async def test_deleted_stopped_and_unknown_media_do_not_sink_the_batch(sim, harness, clock):
    ok, deleted, stopped = (sim.add_task(duration=5).task_id for _ in range(3))
    sim.force_status(deleted, "Deleted")
    sim.force_status(stopped, "Stopped")
    h = harness(config(sim, [ok, deleted, "999999", stopped]))
    clock.advance(10)
    await h.poll()
    assert len(sim.calls) == 1
    assert h.value("upload_poll_up") == 1
    assert h.value("upload_tasks", state="done") == 1
    assert h.value("upload_tasks", state="not_found") == 2
    assert h.value("upload_task_faults", fault_code="stopped") == 1
    assert h.value("upload_provider_api_errors_total", code="wrong_mediaid") == 1


async def test_a_refused_batch_is_asked_again_without_the_unknown_media(sim, harness, clock):
    sim.refuse_unknown = True  # the whole call fails over one unknown ID, naming only that one
    good = [sim.add_task(duration=5).task_id for _ in range(3)]
    h = harness(config(sim, [good[0], "999998", good[1], "999999", good[2]]))
    clock.advance(10)
    await h.poll()
    asked = [c.ids for c in sim.calls]
    assert asked[0] == (good[0], "999998", good[1], "999999", good[2])
    assert sorted(asked[1:]) == sorted((i,) for i in [*good, "999999"])  # the named one is not asked again
    assert h.value("upload_poll_up") == 1
    assert h.value("upload_tasks", state="done") == 3
    assert h.value("upload_tasks", state="not_found") == 2
    assert h.value("upload_provider_api_errors_total", code="wrong_mediaid") == 2


async def test_an_answer_without_media_is_invalid_not_not_found(sim, harness, clock):
    media = sim.add_task(duration=500).task_id
    h = harness(config(sim, [media], {"max_tries": 1}))
    sim.malformed_body = b'<?xml version="1.0"?>\n<response><message>OK</message></response>'
    sim.fail_next("malformed")
    await h.poll()
    assert h.value("upload_provider_requests_total", result="invalid_response") == 1
    assert h.value("upload_tasks", state="not_found") == 0
    assert h.value("upload_tasks", state="pending") == 1


def rss_kib() -> tuple[int, int]:
    """(peak, current) resident set size of this process in KiB."""
    status = Path("/proc/self/status").read_text()
    current = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, current


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion_laughs", "external_entity"])
async def test_hostile_xml_is_refused_without_growing(sim, harness, clock, caplog_all, body):
    media = sim.add_task(duration=500).task_id
    h = harness(config(sim, [media]))
    clock.advance(10)
    await h.poll()  # warm up: the process has done one ordinary poll
    sim.malformed_body = body
    sim.fail_next("malformed", times=2)
    peak_before, rss_before = rss_kib()
    await h.poll()
    peak_after, rss_after = rss_kib()
    assert h.value("upload_provider_requests_total", result="invalid_response") == 2
    assert h.value("upload_poll_up") == 0
    assert h.value("upload_tasks", state="pending") == 1  # kept, not overwritten by the entity
    assert peak_after - peak_before < 16 * 1024
    assert rss_after - rss_before < 16 * 1024
    assert "lollol" not in caplog_all.text and "root:" not in caplog_all.text
    assert "refused XML" in h.store.sets["videos"].down_reason


async def test_an_unknown_error_beside_valid_media_keeps_the_media(sim, harness, clock):
    """An expired media worded in a way we do not know must not freeze the whole set."""
    from exporter.core.http import HttpResponse
    from exporter.providers.encoding_com import _parse_answer

    body = (
        b'<?xml version="1.0"?><response><job><id>11</id><status>Finished</status></job>'
        b"<job><id>12</id><status>Processing</status></job>"
        b"<errors><error>Media 13 has expired and was purged</error></errors></response>"
    )
    answer = _parse_answer(HttpResponse(200, {}, body, "manage.encoding.com/"))
    resolved = answer.resolve(["11", "12", "13"])
    assert [s.task_id for s in resolved.statuses] == ["11", "12"]
    assert resolved.codes == ("other",) and resolved.omitted == ["13"]  # asked again, not_found after N
