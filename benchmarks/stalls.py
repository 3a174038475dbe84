"""/metrics while later polls run, event-loop stalls, memory, poll CPU and restart, at scale.

One Yandex Direct simulator with N tasks runs in a child process (benchmarks/churn.py): once
started, a few percent of its tasks finish between two polls, so every later poll has real
work. Three exporters track the same N tasks from the same ID file with the same interval,
one after the other, each alone beside the simulator, each seeing the same timeline (the
simulator is reset in between): the exporter without and with `--state.file`, and the
afternoon exporter (benchmarks/afternoon.py). For each, once its first poll is done:
- /metrics is scraped over loopback on a fixed schedule (open loop: a scrape that has to wait
  behind a stall is timed from when it was due, as Prometheus's would be), all through;
- a lag probe asks `/-/healthy` every 5 ms, one request at a time, during the first
  LOAD_POLLS polls; the afternoon exporter's server thread is probed with `/favicon.ico`,
  which prometheus_client answers without rendering (benchmarks/watch.py). Each stall is
  placed in its poll: while the poll was still asking the simulator, or after its last request
  (applying, saving);
- then, with the probe off and scrapes every 0.5 s, CPU (utime + stime from /proc) is taken at
  the end of each of the next CPU_POLLS polls and divided by the statuses the simulator was
  asked in between;
- RSS (VmRSS) is sampled all through (steady: the median) and its peak (VmHWM) read at the end.
With the state file, the measure starts once the first poll's save is done (its time from ready
is printed), and the exporter is afterwards killed (SIGKILL) once the simulator is paused, a
poll that started after the pause is done and the state file is quiet, and started again:
the time until `/-/ready` answers 200 and until /metrics shows the counts it had (tasks by
state, completed and failed counters) is the restart time. The tables and the targets of
the design's budgets are printed by benchmarks/stalls_report.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml

from benchmarks import common
from benchmarks.watch import LAST_SUCCESS, QUIET_SCRAPE_EVERY, Placement, Watch, lag_probe, place

SIZES = (100_000, 1_000_000)
INTERVALS = {100_000: 5.0, 1_000_000: 10.0}  # seconds between polls, for both exporters
CHURN_PER_INTERVAL = 0.03  # of the tasks, finishing between two polls
LOAD_POLLS = 2  # polls watched with scrapes and the lag probe
CPU_POLLS = 6  # then polls whose CPU is taken (scrapes only): enough that a tick or a collection moves it little
PHASE_SECONDS = 240.0  # bound of each phase
READY_SECONDS = 300.0
SAVE_SECONDS = 240.0  # bound on waiting for the last save before the kill
QUIET_SECONDS = 1.0  # the state file unchanged this long: saved
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=120)
TARGETS = ("exporter", "exporter --state.file", "afternoon exporter")

COUNTS = re.compile(rb"^upload_tasks(?:_completed_total|_failed_total)?\{.*$", re.M)


@dataclass
class Figure:
    tasks: int
    target: str
    error: str = ""
    polls: int = 0
    scrapes: list[float] | None = None
    lags: list[float] | None = None
    stalls: Placement | None = None
    rss_mb: float = float("nan")
    peak_rss_mb: float = float("nan")
    cpu_per_status: float = float("nan")  # seconds
    statuses: int = 0  # asked during the CPU polls
    first_save_s: float = float("nan")  # with the state file: from ready until the first poll's save was done

    def scrape(self, q: float) -> float:
        return common.percentile(self.scrapes, q) if self.scrapes else float("nan")

    def lag(self, q: float) -> float:
        return common.percentile(self.lags, q) if self.lags else float("nan")


@dataclass
class Restart:
    """With the state file: killed after its last save and started again (errors go to its Figure)."""

    tasks: int
    ready_s: float = float("nan")
    restored_s: float = float("nan")
    peak_rss_mb: float = float("nan")


async def asked_log(session: aiohttp.ClientSession, control: str) -> list[tuple[float, int]]:
    """The simulator's requests: (monotonic time received, IDs asked)."""
    async with session.get(f"{control}asked") as resp:
        return [(float(at), int(n)) for at, n in (await resp.json())["asked"]]


async def control(session: aiohttp.ClientSession, control_url: str, action: str) -> None:
    async with session.post(control_url + action) as resp:
        assert resp.status == 200, await resp.text()


def write_config(workdir: Path, sim_url: str, ids_file: Path, interval: float) -> Path:
    account = {**common.remote_yandex_account(sim_url), "rate_limit": common.UNLIMITED}
    raw = {
        "accounts": {"a": account},
        "task_sets": [
            common.task_set(
                "bench",
                "a",
                {"files": [str(ids_file)]},
                interval=interval,
                poll_timeout=PHASE_SECONDS,
                max_retry_time=30,
            )
        ],
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


class Run:
    """One size: the simulator, its ID file, and each exporter measured beside it."""

    def __init__(self, tasks: int, workdir: Path, sim_url: str, session: aiohttp.ClientSession) -> None:
        self.tasks, self.workdir, self.sim_url, self.session = tasks, workdir, sim_url, session
        self.control = sim_url.split("/live/")[0] + "/-/churn/"
        self.interval = INTERVALS.get(tasks, 5.0)
        self.ids_file = workdir / "ids"
        self.config = write_config(workdir, sim_url, self.ids_file, self.interval)
        self.state_file = workdir / "state.sqlite"
        self.children: list[subprocess.Popen[bytes]] = []

    def exporter_args(self, port: int, state: bool) -> list[str]:
        args = [
            "-m",
            "exporter",
            f"--config.file={self.config}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        return [*args, f"--state.file={self.state_file}"] if state else args

    async def start(self, target: str, port: int, log: Path) -> tuple[subprocess.Popen[bytes], str, str]:
        """The target, started and past its first poll: (process, /metrics URL, lag probe URL)."""
        base = f"http://127.0.0.1:{port}"
        if target == "afternoon exporter":
            proc = common.spawn_logged(
                self.children,
                log,
                "-m",
                "benchmarks.afternoon",
                f"--endpoint={self.sim_url}",
                f"--ids-file={self.ids_file}",
                f"--interval={self.interval}",
                f"--port={port}",
            )
            line = await asyncio.to_thread(common.read_line, proc, READY_SECONDS)
            assert line == "ready", line
            return proc, f"{base}/metrics", f"{base}/favicon.ico"
        proc = common.spawn_logged(self.children, log, *self.exporter_args(port, target.endswith("--state.file")))
        await common.wait_http(self.session, f"{base}/-/ready", READY_SECONDS)
        return proc, f"{base}/metrics", f"{base}/-/healthy"

    async def measure(self, target: str) -> tuple[Figure, Restart | None]:
        figure = Figure(self.tasks, target)
        log = self.workdir / f"{target.replace(' ', '_')}.log"
        await control(self.session, self.control, "reset")
        self.state_file.unlink(missing_ok=True)
        restart = None
        try:
            port = common.free_port()
            proc, metrics_url, probe_url = await self.start(target, port, log)
            if target.endswith("--state.file"):
                figure.first_save_s = await self.first_save(metrics_url)
            await control(self.session, self.control, "start")
            await self.watch(figure, proc, metrics_url, probe_url)
            if target.endswith("--state.file"):
                restart = await self.restart(proc, port, metrics_url, log)
        except (RuntimeError, AssertionError, aiohttp.ClientError, OSError, TimeoutError) as err:
            figure.error = f"{err!r} [{common.tail(log)}]"
        finally:
            for child in self.children:  # measured: no need to let them stop gently
                child.kill()
                child.wait()
            self.children.clear()
            await control(self.session, self.control, "pause")
        return figure, restart

    async def watch(self, figure: Figure, proc: subprocess.Popen[bytes], metrics_url: str, probe_url: str) -> None:
        watch = Watch(self.session, metrics_url, proc.pid)
        stop, probe_stop = asyncio.Event(), asyncio.Event()
        scraper = asyncio.create_task(watch.run(stop, 3 * PHASE_SECONDS))
        probe = asyncio.create_task(lag_probe(probe_url, probe_stop, PHASE_SECONDS))
        try:
            await watch.polls(LOAD_POLLS, PHASE_SECONDS)
            probe_stop.set()
            probed = await probe
            figure.lags = probed.lags
            watch.every = QUIET_SCRAPE_EVERY
            first = watch.ends[-1]
            await watch.polls(CPU_POLLS, PHASE_SECONDS)
            last = watch.ends[-1]
        finally:
            stop.set()
            probe_stop.set()
            await asyncio.gather(scraper, probe, return_exceptions=True)
        figure.polls = len(watch.ends)
        figure.scrapes = watch.scrapes
        figure.rss_mb = common.median(watch.rss) if watch.rss else float("nan")
        figure.peak_rss_mb = common.rss_mb(proc.pid, "VmHWM")
        asked = await asked_log(self.session, self.control)
        figure.statuses = sum(n for at, n in asked if first[0] < at <= last[0])
        figure.stalls = place(probed.stalls, [at for at, _ in watch.ends], [at for at, _ in asked])
        figure.cpu_per_status = (last[1] - first[1]) / max(1, figure.statuses)

    async def first_save(self, metrics_url: str) -> float:
        """Seconds from ready until the first poll's save is done (the file quiet): the later polls
        are measured after it, so their figures hold only what each later poll saves."""
        started = time.monotonic()
        if await self.until(READY_SECONDS, lambda: self.polled_since(metrics_url, 0.0)) is None:
            raise RuntimeError(f"no poll ended within {READY_SECONDS:.0f} s of ready")
        await self.quiet(SAVE_SECONDS)
        return time.monotonic() - started - QUIET_SECONDS

    async def restart(self, proc: subprocess.Popen[bytes], port: int, metrics_url: str, log: Path) -> Restart:
        """Kill the exporter once it saved everything, start it again, time it to ready and restored."""
        result = Restart(self.tasks)
        await control(self.session, self.control, "pause")
        paused = time.time()
        saved = await self.until(SAVE_SECONDS, lambda: self.polled_since(metrics_url, paused))
        if saved is None:
            raise RuntimeError(f"no poll ended within {SAVE_SECONDS:.0f} s of the pause")
        await self.quiet(SAVE_SECONDS)
        before = await self.counts(metrics_url)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        started = time.monotonic()
        proc = common.spawn_logged(self.children, log, *self.exporter_args(port, True))

        async def restored() -> bool:
            return await self.counts(metrics_url) == before

        async def ready() -> bool:
            async with self.session.get(metrics_url.replace("/metrics", "/-/ready")) as resp:
                return resp.status == 200

        # Both watched at once: each time is when its own check first held.
        restored_at, ready_at = await asyncio.gather(
            self.until(READY_SECONDS, restored), self.until(READY_SECONDS, ready)
        )
        if restored_at is None or ready_at is None:
            raise RuntimeError(f"not ready or restored within {READY_SECONDS:.0f} s of the restart")
        result.restored_s, result.ready_s = restored_at - started, ready_at - started
        result.peak_rss_mb = common.rss_mb(proc.pid, "VmHWM")
        return result

    async def until(self, seconds: float, check: Callable[[], Awaitable[bool]]) -> float | None:
        """The monotonic time `check` first held, asked every 20 ms for at most `seconds`; None if never."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if await check():
                    return time.monotonic()
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.02)
        return None

    async def polled_since(self, metrics_url: str, since: float) -> bool:
        async with self.session.get(metrics_url) as resp:
            match = LAST_SUCCESS.search(await resp.read())
        return match is not None and float(match.group(1)) > since

    async def counts(self, metrics_url: str) -> list[bytes]:
        async with self.session.get(metrics_url) as resp:
            return sorted(COUNTS.findall(await resp.read()))

    async def quiet(self, seconds: float) -> None:
        """Until the state file and its journal stay unchanged for QUIET_SECONDS (bounded)."""
        files = [self.state_file, Path(f"{self.state_file}-wal"), Path(f"{self.state_file}-journal")]

        def look() -> list[tuple[int, int]]:
            return [(s.st_size, s.st_mtime_ns) for f in files if f.exists() and (s := f.stat())]

        seen, since = look(), time.monotonic()
        deadline = since + seconds
        while time.monotonic() - since < QUIET_SECONDS:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the state file kept changing for {seconds:.0f} s")
            await asyncio.sleep(0.1)
            now = look()
            if now != seen:
                seen, since = now, time.monotonic()


async def measure(tasks: int) -> tuple[list[Figure], Restart | None]:
    """Every target at `tasks` tasks, one after the other beside one simulator."""
    interval = INTERVALS.get(tasks, 5.0)
    with tempfile.TemporaryDirectory(prefix="upload-stalls-") as tmp:
        workdir = Path(tmp)
        sim = common.spawn(
            "-m",
            "benchmarks.serve",
            "churn",
            f"--tasks={tasks}",
            f"--ids-file={workdir / 'ids'}",
            f"--churn-seconds={interval / CHURN_PER_INTERVAL}",
        )
        try:
            sim_url = await asyncio.to_thread(common.read_line, sim, READY_SECONDS)
            os.environ.setdefault("DEMO_YANDEX_DIRECT_TOKEN", "sim-yandex-token")
            async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as session:
                run = Run(tasks, workdir, sim_url, session)
                figures, restart = [], None
                for target in TARGETS:
                    figure, restarted = await run.measure(target)
                    figures.append(figure)
                    restart = restarted or restart
        finally:
            common.stop(sim)
    return figures, restart
