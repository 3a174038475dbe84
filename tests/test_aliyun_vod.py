"""The Alibaba Cloud VOD provider against its simulator, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from yarl import URL

from exporter.core import config as config_mod
from exporter.core.errors import ConfigError
from exporter.core.model import TaskState
from exporter.providers import PROVIDERS
from exporter.providers.aliyun_vod import AliyunVod, percent_encode, signature, signed_query, string_to_sign
from exporter.simulator import aliyun_vod as sim_module
from exporter.simulator.aliyun_vod import RATE_CAP, AliyunVodSimulator, server_signature
from exporter.simulator.demo import Demo
from tests.conftest import ManualClock

KEY_ID = "LTAI5tTestAccessKeyId01"
SECRET = "aliyun-test-access-key-secret-value"


@pytest.fixture
def clock() -> ManualClock:
    # Requests carry the real time in Timestamp and the simulator checks it against its
    # clock, so that clock starts now; tests move it by minutes at most.
    return ManualClock(time.time())


@pytest.fixture
async def sim(clock) -> AsyncIterator[AliyunVodSimulator]:
    s = AliyunVodSimulator(KEY_ID, SECRET, clock=clock)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture(autouse=True)
def key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_ALIYUN_KEY_ID", KEY_ID)
    monkeypatch.setenv("TEST_ALIYUN_KEY_SECRET", SECRET)


def config(sim: AliyunVodSimulator, tasks: dict[str, Any], *, sets: int = 1, **account: Any) -> dict[str, Any]:
    return {
        "accounts": {
            "vod": {
                "provider": "aliyun_vod",
                "endpoint": sim.url,
                "access_key_id": {"env": "TEST_ALIYUN_KEY_ID"},
                "access_key_secret": {"env": "TEST_ALIYUN_KEY_SECRET"},
                **account,
            }
        },
        "task_sets": [
            {
                "name": f"videos{i}" if i else "videos",
                "account": "vod",
                "interval": 60,
                "tasks": tasks,
                "max_tries": 2,
                "max_retry_time": 1,
            }
            for i in range(sets)
        ],
    }


def states(h: Any, **labels: str) -> dict[str, float]:
    """Tracked tasks by normalized state, zeros left out."""
    counts = {s.value: h.value("upload_tasks", state=s.value, **labels) or 0 for s in TaskState}
    return {state: n for state, n in counts.items() if n}


# -- batching, states, faults, counters -------------------------------------------------


async def test_states_faults_durations_and_uploaded_bytes(sim, harness, clock):
    done = sim.add_task(duration=30)
    legacy = sim.add_task(duration=40, legacy=True)  # Normal, ErrorCode "200", "yyyy-MM-dd HH:mm:ss" times
    failing = sim.add_task(duration=20, fails=True)
    slow = sim.add_task(duration=200)
    h = harness(config(sim, {"ids": [done.task_id, legacy.task_id, failing.task_id, slow.task_id]}))
    await h.poll()  # all pending: the baseline, so what finishes below is a transition seen
    clock.advance(50)
    await h.poll()
    assert states(h) == {"done": 2, "error": 1, "pending": 1}
    assert h.value("upload_tasks_provider_status", status="SUCCESS") == 1
    assert h.value("upload_tasks_provider_status", status="Normal") == 1
    assert h.value("upload_tasks_provider_status", status="FAIL") == 1
    assert h.value("upload_tasks_provider_status", status="DOWNLOADING") == 1
    assert h.value("upload_task_faults", fault_code="URLInvalidError") == 1
    assert h.value("upload_tasks_failed_total", fault_code="URLInvalidError") == 1
    # Both time formats feed the duration histogram (the API gives whole seconds).
    assert h.value("upload_task_duration_seconds_count", state="done") == 2
    assert h.value("upload_task_duration_seconds_sum", state="done") == pytest.approx(70, abs=2)
    assert h.value("upload_task_duration_seconds_sum", state="error") == pytest.approx(20, abs=1)
    sizes = sim.size_of(done) + sim.size_of(legacy)
    assert h.value("upload_uploaded_bytes_total", provider="aliyun_vod") == sizes
    # Final jobs are not asked again; the bytes of a job are counted once, when it finishes.
    clock.advance(200)
    await h.poll()
    assert sim.calls[-1].ids == (slow.task_id,)
    await h.poll()
    assert h.value("upload_uploaded_bytes_total") == sizes + sim.size_of(slow)
    assert h.value("upload_tasks_completed_total") == 3


async def test_unknown_status_and_fault_code_are_bounded(sim, harness, clock, monkeypatch, caplog_all):
    monkeypatch.setattr(sim_module, "in_progress_status", lambda progress: "QUEUED_FOR_REVIEW")
    waiting = sim.add_task(duration=500)
    failing = sim.add_task(duration=1, fails=True)
    failing.fault = ("SourceFileTooLarge", "the source file is over the size limit")
    h = harness(config(sim, {"ids": [waiting.task_id, failing.task_id]}))
    clock.advance(5)
    await h.poll()
    assert h.value("upload_tasks", state="pending") == 1
    assert h.value("upload_tasks_provider_status", status="other") == 1
    assert h.value("upload_task_faults", fault_code="other") == 1
    assert "QUEUED_FOR_REVIEW" not in h.metrics() and "SourceFileTooLarge" not in h.metrics()
    assert "QUEUED_FOR_REVIEW" in caplog_all.text  # the raw value goes to the log, once


@pytest.mark.parametrize("style", ["list", "python", "json"])
async def test_non_exists_in_every_documented_form(sim, harness, clock, style):
    sim.nonexists_style = style
    known = sim.add_task(duration=1)
    unknown = ["e3e71ae8a2c64a7d8b3b5d7c1f8f0c3a", "4c815bjs83j1zz"]
    h = harness(config(sim, {"ids": [known.task_id, *unknown]}))
    clock.advance(2)
    await h.poll()
    assert states(h) == {"not_found": 2, "done": 1}
    assert h.value("upload_poll_up") == 1


async def test_tracking_upload_urls(sim, harness, clock):
    awkward = "https://media.example.com/a b/ç*~,1.mp4?x=1&y=2"
    plain = [f"https://media.example.com/videos/clip-{i}.mp4" for i in range(11)]
    sim.add_task(duration=5, fails=True, url=awkward, created=clock() - 100)  # an older job for the same URL
    newest = sim.add_task(duration=5, url=awkward)
    for url in plain:
        sim.add_task(duration=500, url=url)
    missing = "https://media.example.com/never-uploaded.mp4"
    h = harness(config(sim, {"ids": [awkward, *plain, missing]}, track="upload_urls"))
    await h.poll()  # the baseline: the newest job is still running
    clock.advance(10)
    await h.poll()
    assert [len(c.ids) for c in sim.calls] == [10, 3, 10, 2]  # the missing URL is final after the first
    assert all(c.params["by_url"] for c in sim.calls)
    assert sorted(i for c in list(sim.calls)[:2] for i in c.ids) == sorted([awkward, *plain, missing])
    assert states(h) == {"done": 1, "pending": 11, "not_found": 1}  # the URL's newest job speaks for it
    assert h.value("upload_uploaded_bytes_total") == sim.size_of(newest)


def test_track_takes_only_known_values():
    raw = config(AliyunVodSimulator(), {"ids": ["x"]}, track="urls")
    raw["accounts"]["vod"]["endpoint"] = "http://127.0.0.1:1/"
    with pytest.raises(ConfigError, match="track: expected one of job_ids, upload_urls"):
        config_mod.parse(raw, PROVIDERS)


# -- signature --------------------------------------------------------------------------

DESCRIBE_REGIONS = {  # Alibaba Cloud's published example (ECS DescribeRegions, secret "testsecret")
    "AccessKeyId": "testid",
    "Action": "DescribeRegions",
    "Format": "XML",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
    "SignatureVersion": "1.0",
    "Timestamp": "2016-02-23T12:46:24Z",
    "Version": "2014-05-26",
}
SEND_SMS = {  # the published SMS example (secret "testSecret"): non-ASCII and JSON values
    "AccessKeyId": "testId",
    "Action": "SendSms",
    "Format": "XML",
    "OutId": "123",
    "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou",
    "SignName": "阿里云短信测试专用",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007",
    "TemplateParam": '{"customer":"test"}',
    "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}
VOD_COMMON = {
    "Action": "GetURLUploadInfos",
    "Version": "2017-03-21",
    "Format": "JSON",
    "AccessKeyId": "LTAI5tExampleKeyId",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureVersion": "1.0",
    "SignatureNonce": "0d3c5b4e-8f1a-4c52-9e7d-6a2b1f0c9e83",
    "Timestamp": "2026-03-01T08:15:30Z",
}
SDK_URLS = ["https://media.example.com/a b/ç*~.mp4?x=1&y=2", "https://media.example.com/视频/1.mp4"]


@pytest.mark.parametrize(
    ("params", "secret", "expected"),
    [
        (DESCRIBE_REGIONS, "testsecret", "OLeaidS1JvxuMvnyHOwuJ+uX5qY="),
        (SEND_SMS, "testSecret", "zJDF+Lrzhj/ThnlvIToysFRq6t4="),
        # Computed with aliyun-python-sdk-core 2.16.1 (rpc_signature_composer, sha_hmac1).
        (
            {**VOD_COMMON, "JobIds": "job*1,job~2,job 3,job/4,задание-5"},
            "example-secret",
            "epbz0mcY814UTwDXX4FtLOurhQA=",
        ),
        (
            {**VOD_COMMON, "UploadURLs": ",".join(percent_encode(u) for u in SDK_URLS)},
            "example-secret",
            "0Ol+zJGSfML4F5Jyuvt6LdW9H9E=",
        ),
    ],
)
def test_signature_matches_published_and_sdk_vectors(params, secret, expected):
    assert signature(params, secret) == expected
    assert server_signature("GET", params, secret)[1] == expected


def test_string_to_sign_and_percent_encoding_rules():
    assert string_to_sign(DESCRIBE_REGIONS) == (
        "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1"
        "%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0"
        "%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
    )
    assert percent_encode("a b*c~d/e+f=g&h-_.") == "a%20b%2Ac~d%2Fe%2Bf%3Dg%26h-_."
    assert percent_encode("派") == "%E6%B4%BE"


async def test_tampered_or_replayed_request_is_refused(sim, harness, clock, session):
    job = sim.add_task(duration=1)
    other = sim.add_task(duration=1)
    h = harness(config(sim, {"ids": [job.task_id]}))
    await h.poll()
    query = sim.calls[-1].params["query"]
    assert f"JobIds={job.task_id}" in query

    async def send(raw_query: str) -> tuple[int, dict[str, Any]]:
        async with session.get(URL(f"{sim.url}?{raw_query}", encoded=True)) as resp:
            return resp.status, await resp.json()

    status, body = await send(query.replace(job.task_id, other.task_id))
    assert (status, body["Code"]) == (403, "SignatureDoesNotMatch")
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    status, body = await send(query)  # the very same signed request again
    assert (status, body["Code"]) == (400, "SignatureNonceUsed")
    status, body = await send(re.sub(r"SignatureNonce=[^&]+", "SignatureNonce=fresh", query))
    assert body["Code"] == "SignatureDoesNotMatch"  # the nonce is signed too
    assert len(sim.calls) == 1


@pytest.mark.parametrize(
    ("selection", "detail"),
    [
        ({"JobIds": ",".join(f"job{i}" for i in range(11))}, '"JobIds"'),
        ({"UploadURLs": "https://media.example.com/a.mp4"}, '"UploadURLs"'),  # not URL-encoded
        ({}, '"JobIds"'),
    ],
)
async def test_simulator_refuses_bad_selections(sim, session, clock, selection, detail):
    params = {
        **VOD_COMMON,
        "AccessKeyId": KEY_ID,
        "SignatureNonce": str(uuid.uuid4()),
        "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock())),
        **selection,
    }
    async with session.get(URL(f"{sim.url}?{signed_query(params, SECRET)}", encoded=True)) as resp:
        body = await resp.json()
    assert resp.status == 400 and body["Code"] in ("InvalidParameter", "MissingParameter")
    assert detail in body["Message"]
    assert len(sim.calls) == 0


# -- rate cap ---------------------------------------------------------------------------


def test_default_rate_is_the_apis_limit(sim):
    assert AliyunVod.default_rate_limit == 100 == RATE_CAP == sim.rate_cap
    parsed = config_mod.parse(config(sim, {"ids": ["x"]}), PROVIDERS)
    assert parsed.accounts["vod"].rate_limit == 100


async def test_3000_jobs_never_exceed_the_cap_across_sets(clock, harness):
    cap = 50  # lower than the API's 100 so the test shows pacing across several seconds
    sim = AliyunVodSimulator(KEY_ID, SECRET, clock=clock, rate_cap=cap)
    await sim.start()
    try:
        ids = [sim.add_task(duration=1).task_id for _ in range(3000)]
        raw = config(sim, {"ids": ids[:1500]}, sets=2, rate_limit=cap)
        raw["task_sets"][1]["tasks"] = {"ids": ids[1500:]}
        h = harness(raw)
        clock.advance(2)
        await asyncio.gather(h.poll("videos"), h.poll("videos1"))
    finally:
        await sim.stop()
    assert len(sim.calls) == 300
    assert sim.throttled == 0
    assert max(sim.per_second.values()) <= cap
    assert len(sim.per_second) >= 300 // cap
    assert sum(h.value("upload_tasks", task_set=s, state="done") for s in ("videos", "videos1")) == 3000


async def test_simulator_throttles_calls_over_the_cap(clock, harness):
    sim = AliyunVodSimulator(KEY_ID, SECRET, clock=clock, rate_cap=2)
    await sim.start()
    try:
        ids = [sim.add_task(duration=1).task_id for _ in range(95)]
        h = harness(config(sim, {"ids": ids}, rate_limit=1000, max_concurrency=8))
        clock.advance(2)
        await h.poll()
    finally:
        await sim.stop()
    assert sim.throttled >= 1  # ten calls land within two wall-clock seconds at most
    assert h.value("upload_provider_api_errors_total", code="Throttling.User") == sim.throttled
    assert h.runner().provider._http._limiter.rate < 1000  # the account slowed down


# -- errors -----------------------------------------------------------------------------


async def test_clock_skew_is_refused_and_named(sim, harness, clock, caplog_all):
    job = sim.add_task(duration=1)
    h = harness(config(sim, {"ids": [job.task_id]}))
    clock.advance(16 * 60)  # the server's clock is now 16 minutes ahead of ours
    await h.poll()
    assert h.value("upload_provider_api_errors_total", code="IllegalTimestamp") == 1  # not retried
    assert h.value("upload_poll_up") == 0
    assert "synchronise this host's clock" in caplog_all.text


async def test_the_string_to_sign_a_refusal_quotes_is_cut_off(sim, harness, clock, caplog_all, monkeypatch):
    """SignatureDoesNotMatch quotes the server's string to sign, AccessKeyId included (the refusal itself:
    tests/test_conformance.py)."""
    monkeypatch.setenv("TEST_ALIYUN_KEY_SECRET", "not-the-right-secret")
    h = harness(config(sim, {"ids": [sim.add_task(duration=1).task_id]}))
    await h.poll()
    assert h.value("upload_provider_api_errors_total", code="SignatureDoesNotMatch") == 1
    assert "string to sign" not in caplog_all.text and KEY_ID not in caplog_all.text


# -- demo -------------------------------------------------------------------------------


async def test_demo_serves_aliyun_vod(tmp_path, harness):
    demo = Demo(tmp_path)
    raw = await demo.start()
    try:
        h = harness(raw)
        await h.poll("demo-aliyun_vod")
    finally:
        await demo.stop()
    assert h.value("upload_poll_up", task_set="demo-aliyun_vod") == 1
    counts = states(h, provider="aliyun_vod")
    assert sum(counts.values()) >= 300
    assert counts["pending"] > 0 and counts["done"] > 0
