"""Scrape latency, memory and poll cost at a given number of tracked tasks.

A Yandex Direct simulator holding N tasks runs in a child process. The exporter runs as
its real command line in another child, tracking those N tasks from a file; once it is
ready, /metrics is scraped over loopback, as Prometheus would: first with nothing changed
(the cached exposition), then each scrape right after one pushed task ID changed the state
(a fresh render). The baseline, in a third child, holds one Gauge series per task and is
scraped the same way. Poll cost is measured from this process: a full first poll of the N
tasks, then the polls that follow it, as every interval makes them: repeated until they
have asked about SUSTAINED_STATUSES statuses, so that each size pays its share of the
garbage collector's work (a single small poll often has none), and the best of
SUSTAINED_REPEATS such runs is kept (noise from other work on the machine only adds time).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml

from benchmarks import common
from benchmarks.baseline import HandWrittenExporter
from exporter.core.scheduler import TaskSetRunner
from exporter.core.state import PollOutcome, StateStore

SCRAPES = 200
BASELINE_SCRAPE_SECONDS = 20.0  # the baseline is scraped SCRAPES times or for this long, whichever ends first
BASELINE_POLL_TASKS = 2_000  # the baseline's one-request-a-task poll is timed on this many and scaled up
POLL_ROUNDS = 5  # first polls per size; the median is reported, steadier than one best or worst
SUSTAINED_STATUSES = 300_000  # the polls after the first are timed until they asked about this many
SUSTAINED_REPEATS = 3
SUSTAINED_MAX_POLLS = 2_000  # in one repeat
PUSH_TOKEN = "bench-push-token"
PUSHED_ID_BASE = 900_000_000  # pushed IDs: Yandex Direct syntax (positive integers), unknown to the simulator
READY_SECONDS = 180.0


@dataclass(frozen=True)
class ScaleFigure:
    tasks: int
    scrape_p50: float
    scrape_p99: float
    fresh_p50: float
    fresh_p99: float
    body_bytes: int
    rss_mb: float
    peak_rss_mb: float  # the exporter's highest RSS so far: its first poll's
    poll_wall: float
    poll_cpu: float
    sustained_cpu: float  # CPU seconds per status asked, over the polls after the first
    baseline_scrapes: int
    baseline_p50: float
    baseline_p99: float
    baseline_body_bytes: int
    baseline_rss_mb: float
    baseline_poll_wall: float  # scaled from BASELINE_POLL_TASKS when N is larger


async def scrape(session: aiohttp.ClientSession, url: str) -> tuple[float, int]:
    started = time.perf_counter()
    async with session.get(url) as resp:
        body = await resp.read()
    return time.perf_counter() - started, len(body)


async def scrapes(
    session: aiohttp.ClientSession, url: str, count: int, seconds: float = 1e9, before: str | None = None
) -> tuple[list[float], int]:
    """Scrape `count` times (or until `seconds` passed); `before` is POSTed an ID before each scrape."""
    times: list[float] = []
    size = 0
    deadline = time.monotonic() + seconds
    for i in range(count):
        if before is not None:
            async with session.post(
                before, json={"ids": [str(PUSHED_ID_BASE + i)]}, headers={"Authorization": f"Bearer {PUSH_TOKEN}"}
            ) as resp:
                assert resp.status == 200, await resp.text()
        took, size = await scrape(session, url)
        times.append(took)
        if time.monotonic() > deadline:
            break
    return times, size


def write_config(workdir: Path, sim_url: str, ids_file: Path) -> Path:
    os.environ["BENCH_PUSH_TOKEN"] = PUSH_TOKEN
    raw = {
        "accounts": {"a": common.remote_yandex_account(sim_url)},
        "task_sets": [
            common.task_set(
                "bench", "a", {"files": [str(ids_file)], "push_token": {"env": "BENCH_PUSH_TOKEN"}}, interval=3600
            )
        ],
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


async def timed_poll(runner: TaskSetRunner) -> tuple[float, float, PollOutcome]:
    """Wall and CPU seconds of one successful poll, and what it learned."""
    wall, cpu = time.perf_counter(), time.process_time()
    outcome = await runner.poll_once()
    took = time.perf_counter() - wall, time.process_time() - cpu
    assert outcome.error is None, outcome.error
    return *took, outcome


async def poll_cost(session: aiohttp.ClientSession, config: Path, ids: list[str]) -> tuple[float, float, float, float]:
    """Wall and CPU seconds of the exporter's first poll of every task (median of POLL_ROUNDS), its
    CPU seconds per status asked in the polls after it (best of SUSTAINED_REPEATS), and the
    baseline's first poll wall, scaled."""
    raw = yaml.safe_load(config.read_text())
    raw["task_sets"][0]["tasks"] = {"ids": ids}
    raw["accounts"]["a"]["rate_limit"] = common.UNLIMITED  # CPU is measured here, not pacing
    walls, cpus = [], []
    for _ in range(POLL_ROUNDS):  # each a first poll, into a fresh store
        runner = common.runners(raw, StateStore(), session)[0]
        wall, cpu, _ = await timed_poll(runner)
        walls.append(wall)
        cpus.append(cpu)
    sustained = []
    for _ in range(SUSTAINED_REPEATS):  # the last runner's store now tracks every task
        asked, spent = 0, 0.0
        for _ in range(SUSTAINED_MAX_POLLS):
            _, cpu, outcome = await timed_poll(runner)
            spent += cpu
            asked += sum(len(result.statuses) for result in outcome.results)
            if asked >= SUSTAINED_STATUSES:
                break
        sustained.append(spent / asked)
    sample = ids[:BASELINE_POLL_TASKS]
    exporter = HandWrittenExporter(common.provider_for(raw, common.live_client(session)), "bench")
    started = time.perf_counter()
    await exporter.poll(sample)
    baseline_wall = (time.perf_counter() - started) * len(ids) / len(sample)
    return common.median(walls), common.median(cpus), min(sustained), baseline_wall


async def measure(tasks: int) -> ScaleFigure:
    with tempfile.TemporaryDirectory(prefix="upload-bench-") as tmp:
        workdir = Path(tmp)
        ids_file = workdir / "ids"
        sim = common.spawn("-m", "benchmarks.serve", "simulator", f"--tasks={tasks}", f"--ids-file={ids_file}")
        children = [sim]
        try:
            sim_url = common.read_line(sim, READY_SECONDS)
            config = write_config(workdir, sim_url, ids_file)
            port, base_port = common.free_port(), common.free_port()
            exporter = common.spawn(
                "-m",
                "exporter",
                f"--config.file={config}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            )
            baseline = common.spawn(
                "-m", "benchmarks.serve", "baseline", f"--endpoint={sim_url}", f"--port={base_port}"
            )
            children += [exporter, baseline]
            ours = f"http://127.0.0.1:{port}"
            theirs = f"http://127.0.0.1:{base_port}/metrics"
            async with aiohttp.ClientSession() as session:
                await common.wait_http(session, f"{ours}/-/ready", READY_SECONDS)
                cached, size = await scrapes(session, f"{ours}/metrics", SCRAPES)
                fresh, _ = await scrapes(
                    session, f"{ours}/metrics", SCRAPES, before=f"{ours}/api/v1/task_sets/bench/tasks"
                )
                rss, peak_rss = common.rss_mb(exporter.pid), common.rss_mb(exporter.pid, "VmHWM")
                assert common.read_line(baseline, READY_SECONDS) == "ready"
                base, base_size = await scrapes(session, theirs, SCRAPES, BASELINE_SCRAPE_SECONDS)
                base_rss = common.rss_mb(baseline.pid)
                for child in children[1:]:  # the poll below runs alone beside the simulator
                    common.stop(child)
                poll_wall, poll_cpu, sustained, base_poll = await poll_cost(
                    session, config, ids_file.read_text().split()
                )
        finally:
            for child in children:
                common.stop(child)
    return ScaleFigure(
        tasks,
        common.median(cached),
        common.percentile(cached, 0.99),
        common.median(fresh),
        common.percentile(fresh, 0.99),
        size,
        rss,
        peak_rss,
        poll_wall,
        poll_cpu,
        sustained,
        len(base),
        common.median(base),
        common.percentile(base, 0.99),
        base_size,
        base_rss,
        base_poll,
    )
