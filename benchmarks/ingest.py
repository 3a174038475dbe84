"""Ingest: task statuses parsed and applied per second of CPU, from each provider's real answers.

Answers are recorded once from the simulators over loopback, then replayed through the
provider's own `fetch` (request building, signing and parsing included) and applied to a
fresh state store, as one poll does. The baseline parses one-task answers and sets a
per-task Gauge, as a hand-written exporter would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from benchmarks import common
from benchmarks.baseline import HandWrittenExporter
from exporter.core.http import HttpResponse
from exporter.core.model import FetchResult
from exporter.core.state import PollOutcome, StateStore

ROUNDS = 3  # replays per provider; the best round is reported (the least disturbed by the machine)


@dataclass(frozen=True)
class IngestFigure:
    provider: str
    statuses: int
    per_second: float
    baseline_per_second: float


async def record(session: aiohttp.ClientSession, raw: dict[str, Any], batches: list[list[str]]) -> list[HttpResponse]:
    client = common.RecordingClient(session)
    provider = common.provider_for(raw, client)
    for batch in batches:
        await provider.fetch(batch)
    return client.responses


async def replay_exporter(
    raw: dict[str, Any], responses: list[HttpResponse], batches: list[list[str]], clock: Any
) -> float:
    """CPU seconds to fetch (replayed) and apply every batch as one poll."""
    store = StateStore()
    provider = common.provider_for(raw, common.ReplayClient(responses, clock))
    store.ensure_set("bench", provider.name, provider.vocabulary)
    started = time.process_time()
    results: list[FetchResult] = [await provider.fetch(batch) for batch in batches]
    store.apply_poll("bench", PollOutcome(started=clock(), duration=0.0, results=results))
    return time.process_time() - started


async def replay_baseline(raw: dict[str, Any], responses: list[HttpResponse], ids: list[str], clock: Any) -> float:
    provider = common.provider_for(raw, common.ReplayClient(responses, clock))
    exporter = HandWrittenExporter(provider, "bench")
    started = time.process_time()
    for task_id in ids:
        await exporter.poll_one(task_id)
    return time.process_time() - started


@dataclass(frozen=True)
class Recording:
    """Real answers of a simulator: for every batch, and for every task asked alone."""

    raw: dict[str, Any]
    clock: common.ManualClock
    batches: list[list[str]]
    responses: list[HttpResponse]
    singles: list[str]
    single_responses: list[HttpResponse]


async def recording(provider: str, tasks: int, baseline_tasks: int) -> Recording:
    clock = common.ManualClock()
    sim = common.make_simulator(provider, clock, **({"rate_cap": 10**9} if provider == "aliyun_vod" else {}))
    await sim.start()
    try:
        ids = common.add_mixed_tasks(sim, tasks)
        raw = {
            "accounts": {"a": common.account(sim, rate_limit=common.UNLIMITED)},
            "task_sets": [common.task_set("bench", "a", {"ids": ids[:1]})],
        }
        singles = ids[:baseline_tasks]
        async with aiohttp.ClientSession() as session:
            cap = common.runners(raw, StateStore(), session)[0].batch_size  # as the scheduler batches
            batches = [ids[i : i + cap] for i in range(0, len(ids), cap)]
            responses = await record(session, raw, batches)
            single_responses = await record(session, raw, [[t] for t in singles])
    finally:
        await sim.stop()
    return Recording(raw, clock, batches, responses, singles, single_responses)


async def measure(provider: str, tasks: int, baseline_tasks: int) -> IngestFigure:
    rec = await recording(provider, tasks, baseline_tasks)
    ours = min([await replay_exporter(rec.raw, rec.responses, rec.batches, rec.clock) for _ in range(ROUNDS)])
    theirs = min([await replay_baseline(rec.raw, rec.single_responses, rec.singles, rec.clock) for _ in range(ROUNDS)])
    return IngestFigure(provider, tasks, tasks / ours, len(rec.singles) / theirs)
