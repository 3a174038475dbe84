"""The afternoon exporter: what a competent engineer writes in an afternoon instead of this project.

    python -m benchmarks.afternoon --endpoint URL --ids-file F --interval S --port P

prints "ready" once its first poll is done, then serves until terminated. It is the baseline
of the stalls section, so it is as good as an afternoon allows, not a strawman:
- a prometheus-client custom Collector with aggregate series only (tasks by state and by
  provider status, completed and failed counters, poll up and last success), its counts kept
  up to date as statuses change, so a scrape does not walk the tasks;
- /metrics served by prometheus_client's own `start_http_server`, on its own thread;
- polling in the background on an asyncio loop: every task not yet final, in batches at the
  API cap (10,000 IDs a request, a few requests in flight), each answer read with
  `json.loads` into a dict of task ID -> provider status (interned: one string per status).
It speaks the Yandex Direct API (AdImage / CheckUploadStatus) directly, as one would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("afternoon")

PROVIDER = "yandex_direct"
PAGE = 10_000  # the API's cap of IDs a request
IN_FLIGHT = 4  # requests at a time
TIMEOUT = aiohttp.ClientTimeout(total=60)
NOT_FOUND = "NotFound"  # asked, and left out of the answer
STATE_OF = {"Pending": "pending", "Done": "done", "Error": "error", NOT_FOUND: "not_found"}
FINAL = frozenset({"Done", "Error", NOT_FOUND})
UNKNOWN = ""  # not polled yet


class ApiError(Exception):
    pass


class Afternoon:
    """The tracked tasks, their counts, and the poller that keeps them."""

    def __init__(self, endpoint: str, token: str, task_ids: Sequence[str], interval: float, task_set: str) -> None:
        self.endpoint, self.token, self.interval, self.task_set = endpoint, token, interval, task_set
        self.status: dict[str, str] = dict.fromkeys(task_ids, UNKNOWN)
        self.counts: Counter[str] = Counter({UNKNOWN: len(self.status)})
        self.completed = 0
        self.failed: Counter[str] = Counter()  # by fault code
        self.up = 0
        self.last_success = 0.0

    async def run(self, ready: Any) -> None:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            while True:
                started = time.monotonic()
                try:
                    await self.poll(session)
                    self.up, self.last_success = 1, time.time()
                except (aiohttp.ClientError, TimeoutError, ApiError, KeyError, TypeError, ValueError) as err:
                    self.up = 0
                    log.warning("poll failed: %r", err)
                ready()
                await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def poll(self, session: aiohttp.ClientSession) -> None:
        due = [task_id for task_id, status in self.status.items() if status not in FINAL]
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def one(batch: list[str]) -> None:
            async with gate:
                items = await self.fetch(session, batch)
            self.apply(batch, items)

        await asyncio.gather(*(one(due[i : i + PAGE]) for i in range(0, len(due), PAGE)))

    async def fetch(self, session: aiohttp.ClientSession, batch: list[str]) -> list[dict[str, Any]]:
        """Every page of the answer about `batch` (one, at the cap)."""
        criteria: dict[str, Any] = {"AdImageUploadTaskIDS": [int(t) for t in batch], "Limit": PAGE, "Offset": 0}
        request = {
            "method": "AdImage",
            "token": self.token,
            "locale": "en",
            "param": {"Action": "CheckUploadStatus", "SelectionCriteria": criteria},
        }
        items: list[dict[str, Any]] = []
        for _ in range(len(batch) // PAGE + 2):  # bounded, should the total be wrong
            async with session.post(self.endpoint, json=request) as resp:
                resp.raise_for_status()
                body = json.loads(await resp.read())
            if "error_code" in body:
                raise ApiError(f"{body['error_code']}: {body.get('error_str')} {body.get('error_detail')}")
            page = body["data"]["AdImageUploads"]
            items.extend(page)
            criteria["Offset"] += len(page)
            if not page or criteria["Offset"] >= body["data"]["TotalObjectsCount"]:
                break
        return items

    def apply(self, batch: list[str], items: list[dict[str, Any]]) -> None:
        status = self.status
        for item in items:
            task_id = str(item["AdImageUploadTaskID"])
            old = status.get(task_id)
            new = sys.intern(item["Status"])
            if old is None or old == new:
                continue
            self.change(task_id, old, new)
            if old == "Pending" and new == "Done":
                self.completed += 1
            elif old == "Pending" and new == "Error":
                self.failed[str(item.get("Error", {}).get("FaultCode", "other"))] += 1
        if len(items) < len(batch):  # left out: unknown to the API
            answered = {str(item["AdImageUploadTaskID"]) for item in items}
            for task_id in batch:
                if task_id not in answered:
                    self.change(task_id, status[task_id], NOT_FOUND)

    def change(self, task_id: str, old: str, new: str) -> None:
        self.status[task_id] = new
        self.counts[old] -= 1
        self.counts[new] += 1


class AfternoonCollector(Collector):
    """Aggregate series, built fresh at each scrape from the counts (never from the tasks)."""

    def __init__(self, exporter: Afternoon) -> None:
        self.exporter = exporter

    def collect(self) -> Iterator[Metric]:
        ex = self.exporter
        counts, failed = dict(ex.counts), dict(ex.failed)  # copies: the poll changes them on another thread
        labels = ["provider", "task_set"]
        base = [PROVIDER, ex.task_set]
        by_state = Counter({state: 0 for state in STATE_OF.values()})
        statuses = GaugeMetricFamily(
            "upload_tasks_provider_status",
            "Tracked tasks by provider status, as of the last poll",
            labels=[*labels, "status"],
        )
        for status, count in sorted(counts.items()):
            if status != UNKNOWN:
                by_state[STATE_OF.get(status, "pending")] += count
                statuses.add_metric([*base, status], count)
        tasks = GaugeMetricFamily(
            "upload_tasks", "Tracked tasks by state, as of the last poll", labels=[*labels, "state"]
        )
        for state, count in sorted(by_state.items()):
            tasks.add_metric([*base, state], count)
        completed = CounterMetricFamily("upload_tasks_completed", "Transitions to done observed", labels=labels)
        completed.add_metric(base, ex.completed)
        failures = CounterMetricFamily(
            "upload_tasks_failed", "Transitions to error observed", labels=[*labels, "fault_code"]
        )
        for code, count in sorted(failed.items()):
            failures.add_metric([*base, code], count)
        up = GaugeMetricFamily("upload_poll_up", "1 when the last poll succeeded", labels=labels)
        up.add_metric(base, ex.up)
        last = GaugeMetricFamily(
            "upload_poll_last_success_timestamp_seconds", "Unix time of the last successful poll", labels=labels
        )
        last.add_metric(base, ex.last_success)
        yield from (tasks, statuses, completed, failures, up, last)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--ids-file", type=Path, required=True)
    parser.add_argument("--interval", type=float, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--task-set", default="bench")
    parser.add_argument("--token-env", default="DEMO_YANDEX_DIRECT_TOKEN")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    exporter = Afternoon(
        args.endpoint, os.environ[args.token_env], args.ids_file.read_text().split(), args.interval, args.task_set
    )
    registry = CollectorRegistry()
    registry.register(AfternoonCollector(exporter))
    start_http_server(args.port, addr="127.0.0.1", registry=registry)
    said: list[bool] = []

    def ready() -> None:
        if not said:
            said.append(True)
            print("ready", flush=True)

    asyncio.run(exporter.run(ready))


if __name__ == "__main__":
    main()
