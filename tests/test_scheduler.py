"""Scheduler policy: retries, Retry-After, account pacing, isolation between sets."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from exporter.core.errors import Throttled, Unavailable
from exporter.core.ratelimit import WINDOW_SECONDS, AccountLimiter
from exporter.core.retries import retry_waits
from exporter.core.scheduler import Scheduler


def two_sets(yandex, **account):
    acc = {"provider": "yandex_direct", "endpoint": yandex.url, "token": {"env": "YANDEX_TEST_TOKEN"}, **account}
    return {
        "accounts": {"direct": acc},
        "task_sets": [
            {"name": "one", "account": "direct", "interval": 1, "tasks": {"discover": True}, "max_tries": 3},
            {"name": "two", "account": "direct", "interval": 1, "tasks": {"discover": True}, "max_tries": 3},
        ],
    }


def test_retry_waits_are_bounded_and_honour_retry_after():
    gen = retry_waits(1.0, 10.0)
    gen.send(None)
    waits = [gen.send(Unavailable("x")) for _ in range(8)]
    assert all(0 <= w <= 10.0 for w in waits)
    assert gen.send(Throttled("slow down", retry_after=7.0)) >= 7.0
    assert gen.send(Throttled("slow down", retry_after=3600.0)) == 10.0  # capped


async def test_transient_failure_is_retried_within_the_poll(yandex, harness, clock):
    yandex.add_task(duration=1)
    clock.advance(2)
    h = harness(two_sets(yandex))
    yandex.fail_next("http_500", times=2)
    await h.poll("one")
    assert h.value("upload_poll_up", task_set="one") == 1  # third try succeeded
    assert h.value("upload_provider_requests_total", task_set="one", result="http_error") == 2
    assert h.value("upload_provider_requests_total", task_set="one", result="ok") == 1


async def test_throttling_slows_the_account_and_retry_after_is_used(yandex, harness, clock):
    yandex.add_task(duration=1)
    h = harness(two_sets(yandex, rate_limit=50))
    limiter = h.runner("one").provider._http._limiter  # the account's shared limiter
    assert limiter is h.runner("two").provider._http._limiter
    yandex.fail_next("api:506")  # too many connections: Throttled with a 5 s Retry-After...
    h.runner("one").config = dataclasses.replace(h.runner("one").config, max_retry_time=0.2)
    started = time.monotonic()
    await h.poll("one")
    # ...which max_retry_time bounds: the poll gives up rather than overrun its budget.
    assert time.monotonic() - started < 2.0
    assert limiter.rate < limiter.max_rate
    assert h.value("upload_provider_api_errors_total", code="506") == 1


async def test_limiter_never_exceeds_rate_in_any_window():
    limiter = AccountLimiter(rate=20, concurrency=8)
    sent: list[float] = []

    async def call() -> None:
        async with limiter.slot():
            sent.append(time.monotonic())

    await asyncio.gather(*(call() for _ in range(45)))
    for i, t in enumerate(sent):
        in_window = [s for s in sent[i:] if s - t < WINDOW_SECONDS - 0.01]
        assert len(in_window) <= 20


async def test_unexpected_error_in_one_set_does_not_stop_the_others(yandex, harness, clock, caplog):
    caplog.set_level(logging.ERROR)
    yandex.add_task(duration=1)
    h = harness(two_sets(yandex))
    broken = h.runner("one")

    async def explode() -> None:
        raise RuntimeError("bug in one set")

    broken.poll_once = explode  # type: ignore[method-assign]
    for r in h.scheduler.runners:
        r.config = dataclasses.replace(r.config, interval=1.0, jitter=0.0)
    scheduler = Scheduler(h.scheduler.runners)
    scheduler.start()
    try:
        for _ in range(100):  # bounded: at most 5 s
            st = h.store.sets["two"]
            if st.polled:
                break
            await asyncio.sleep(0.05)
    finally:
        await scheduler.stop(timeout=2)
    assert h.store.sets["two"].up
    assert any("bug in one set" in (r.exc_text or "") or r.exc_info for r in caplog.records)
