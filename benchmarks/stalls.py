"""/metrics while later polls run, event-loop stalls, memory, poll CPU and restart, at scale.

One Yandex Direct simulator with N tasks runs in a child process (benchmarks/churn.py): once
started, a few percent of its tasks finish between two polls, so every later poll has real
work. Three exporters track the same N tasks from the same ID file with the same interval,
one after the other, each alone beside the simulator, each seeing the same timeline (the
simulator is reset in between): the exporter without and with `--state.file`, and the
afternoon exporter (benchmarks/afternoon.py). For each, once its first poll is done:
- /metrics is scraped over loopback on a fixed schedule (open loop: a scrape that has to wait
  behind a stall is timed from when it was due, as Prometheus's would be), all through;
- a lag probe asks `/-/healthy` every PROBE_EVERY, one request at a time, during the first
  LOAD_POLLS polls; the afternoon exporter's server thread is probed with `/favicon.ico`,
  which prometheus_client answers without rendering. A probe that waited L behind a stall
  also stands for the probes that would have been sent meanwhile (L - 5 ms, L - 10 ms, ...);
- then, with the probe off, CPU (utime + stime from /proc) is taken at the end of each of
  the next CPU_POLLS polls and divided by the statuses the simulator was asked in between;
- RSS (VmRSS) is sampled all through (steady: the median) and its peak (VmHWM) read at the end.
With the state file, the exporter is then killed (SIGKILL) once the simulator is paused, a
poll that started after the pause is done and the state file is quiet, and started again:
the time until `/-/ready` answers 200 and until /metrics shows the counts it had (tasks by
state, completed and failed counters) is the restart time.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml

from benchmarks import common

SIZES = (100_000, 1_000_000)
INTERVALS = {100_000: 5.0, 1_000_000: 10.0}  # seconds between polls, for both exporters
CHURN_PER_INTERVAL = 0.03  # of the tasks, finishing between two polls
SCRAPE_EVERY = 0.05
SCRAPES_IN_FLIGHT = 32  # open-loop scrapes waiting at once, at most
PROBE_EVERY = 0.005
LOAD_POLLS = 2  # polls watched with scrapes and the lag probe
CPU_POLLS = 2  # then polls whose CPU is taken (scrapes only)
PHASE_SECONDS = 240.0  # bound of each phase
READY_SECONDS = 300.0
SAVE_SECONDS = 240.0  # bound on waiting for the last save before the kill
QUIET_SECONDS = 1.0  # the state file unchanged this long: saved
RSS_EVERY = 0.5
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=120)
TARGETS = ("exporter", "exporter --state.file", "afternoon exporter")

# The targets of issue 14.
P99_TARGETS = {100_000: 0.010, 1_000_000: 0.025}
STALL_TARGET, STALL_AT = 0.050, 1_000_000
STATE_CPU_RATIO = 1.3  # poll CPU with the state file / without
CPU_RATIO = 0.5  # later poll CPU per status / the afternoon exporter's
RSS_TARGET_MB, RSS_AT = 200.0, 1_000_000
PEAK_RATIO = 1.3  # peak RSS / steady
RESTART_TARGET, RESTART_AT = 5.0, 1_000_000

LAST_SUCCESS = re.compile(rb"^upload_poll_last_success_timestamp_seconds\{[^}]*\} (\S+)$", re.M)
COUNTS = re.compile(rb"^upload_tasks(?:_completed_total|_failed_total)?\{.*$", re.M)


@dataclass
class Figure:
    tasks: int
    target: str
    error: str = ""
    polls: int = 0
    scrapes: list[float] | None = None
    lags: list[float] | None = None
    rss_mb: float = float("nan")
    peak_rss_mb: float = float("nan")
    cpu_per_status: float = float("nan")  # seconds
    statuses: int = 0  # asked during the CPU polls


    def scrape(self, q: float) -> float:
        return common.percentile(self.scrapes, q) if self.scrapes else float("nan")

    def lag(self, q: float) -> float:
        return common.percentile(self.lags, q) if self.lags else float("nan")


@dataclass
class Restart:
    tasks: int
    error: str = ""
    ready_s: float = float("nan")
    restored_s: float = float("nan")
    peak_rss_mb: float = float("nan")


class Watch:
    """Scrapes one exporter on a schedule; notes each new poll's end with the process's CPU then."""

    def __init__(self, session: aiohttp.ClientSession, url: str, pid: int) -> None:
        self.session, self.url, self.pid = session, url, pid
        self.scrapes: list[float] = []
        self.ends: list[tuple[float, float]] = []  # (monotonic time, CPU seconds) when a poll's end was seen
        self.last_success = -1.0
        self.rss: list[float] = []
        self.errors = 0

    async def scrape(self, due: float, gate: asyncio.Semaphore) -> None:
        async with gate:
            try:
                async with self.session.get(self.url) as resp:
                    body = await resp.read()
            except (aiohttp.ClientError, TimeoutError):
                self.errors += 1
                return
        self.scrapes.append(time.monotonic() - due)
        match = LAST_SUCCESS.search(body)
        value = float(match.group(1)) if match else -1.0
        if value > self.last_success:
            if self.last_success > 0:
                self.ends.append((time.monotonic(), common.cpu_seconds(self.pid)))
            self.last_success = value

    async def run(self, stop: asyncio.Event, seconds: float) -> None:
        """Scrape every SCRAPE_EVERY until `stop` (or `seconds`), and sample RSS."""
        gate = asyncio.Semaphore(SCRAPES_IN_FLIGHT)
        pending: set[asyncio.Task[None]] = set()
        start = due = time.monotonic()
        next_rss = due
        for _ in range(int(seconds / SCRAPE_EVERY)):
            if stop.is_set():
                break
            pending.add(asyncio.create_task(self.scrape(due, gate)))
            pending = {t for t in pending if not t.done()}
            if due >= next_rss and due - start > 1.0:
                self.rss.append(common.rss_mb(self.pid))
                next_rss = due + RSS_EVERY
            due += SCRAPE_EVERY
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        await asyncio.gather(*pending)

    async def polls(self, count: int, seconds: float) -> None:
        """Until `count` more poll ends were seen (bounded)."""
        want = len(self.ends) + count
        deadline = time.monotonic() + seconds
        while len(self.ends) < want:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(self.ends) - want + count} of {count} polls ended in {seconds:.0f} s")
            await asyncio.sleep(0.05)


async def lag_probe(url: str, stop: asyncio.Event, seconds: float) -> list[float]:
    """Answer times of `url` asked every PROBE_EVERY, one at a time, each wait also standing for the
    probes it held back (so the figures are those of probes sent on schedule)."""
    lags: list[float] = []
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1), timeout=REQUEST_TIMEOUT) as session:
        for _ in range(int(seconds / PROBE_EVERY)):
            if stop.is_set() or time.monotonic() > deadline:
                break
            started = time.monotonic()
            try:
                async with session.get(url) as resp:
                    await resp.read()
            except (aiohttp.ClientError, TimeoutError):
                continue
            took = time.monotonic() - started
            lags.append(took)
            held = took - PROBE_EVERY
            for _ in range(int(took / PROBE_EVERY)):
                if held <= PROBE_EVERY:
                    break
                lags.append(held)
                held -= PROBE_EVERY
            await asyncio.sleep(max(0.0, PROBE_EVERY - took))
    return lags


async def asked_between(session: aiohttp.ClientSession, control: str, start: float, end: float) -> int:
    async with session.get(f"{control}asked") as resp:
        asked = (await resp.json())["asked"]
    return sum(int(n) for at, n in asked if start < at <= end)


async def control(session: aiohttp.ClientSession, control_url: str, action: str) -> None:
    async with session.post(control_url + action) as resp:
        assert resp.status == 200, await resp.text()


def write_config(workdir: Path, sim_url: str, ids_file: Path, interval: float) -> Path:
    account = {**common.remote_yandex_account(sim_url), "rate_limit": common.UNLIMITED}
    raw = {"accounts": {"a": account},
           "task_sets": [common.task_set("bench", "a", {"files": [str(ids_file)]}, interval=interval,
                                         poll_timeout=PHASE_SECONDS, max_retry_time=30)]}
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def spawn_logged(children: list[subprocess.Popen[bytes]], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """A child whose stderr goes to `log` (read when something goes wrong), added to `children`."""
    with log.open("ab") as err:
        child = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=err)
    children.append(child)
    return child


def tail(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return " | ".join(lines[-3:])


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
        args = ["-m", "exporter", f"--config.file={self.config}", f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn"]
        return [*args, f"--state.file={self.state_file}"] if state else args

    async def start(self, target: str, port: int, log: Path) -> tuple[subprocess.Popen[bytes], str, str]:
        """The target, started and past its first poll: (process, /metrics URL, lag probe URL)."""
        base = f"http://127.0.0.1:{port}"
        if target == "afternoon exporter":
            proc = spawn_logged(self.children, log, "-m", "benchmarks.afternoon", f"--endpoint={self.sim_url}",
                                f"--ids-file={self.ids_file}", f"--interval={self.interval}", f"--port={port}")
            line = await asyncio.to_thread(common.read_line, proc, READY_SECONDS)
            assert line == "ready", line
            return proc, f"{base}/metrics", f"{base}/favicon.ico"
        proc = spawn_logged(self.children, log, *self.exporter_args(port, target.endswith("--state.file")))
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
            await control(self.session, self.control, "start")
            await self.watch(figure, proc, metrics_url, probe_url)
            if target.endswith("--state.file"):
                restart = await self.restart(proc, port, metrics_url, log)
        except (RuntimeError, AssertionError, aiohttp.ClientError, OSError, TimeoutError) as err:
            figure.error = f"{err!r} [{tail(log)}]"
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
            figure.lags = await probe
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
        figure.statuses = await asked_between(self.session, self.control, first[0], last[0])
        figure.cpu_per_status = (last[1] - first[1]) / max(1, figure.statuses)

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
        proc = spawn_logged(self.children, log, *self.exporter_args(port, True))

        async def restored() -> bool:
            return await self.counts(metrics_url) == before

        async def ready() -> bool:
            async with self.session.get(metrics_url.replace("/metrics", "/-/ready")) as resp:
                return resp.status == 200

        restored_at = await self.until(READY_SECONDS, restored)
        ready_at = await self.until(READY_SECONDS, ready)
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
        sim = common.spawn("-m", "benchmarks.serve", "churn", f"--tasks={tasks}", f"--ids-file={workdir / 'ids'}",
                           f"--churn-seconds={interval / CHURN_PER_INTERVAL}")
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


# -- report -------------------------------------------------------------------------------

Result = tuple[list[Figure], Restart | None]


def div(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def ratio(ours: float, theirs: float) -> str:
    return f"{div(ours, theirs):.2f}x"


def report(results: list[Result]) -> list[tuple[str, bool, str]]:
    """Print the tables; the targets of issue 14 as (what, met, figure)."""
    ms = common.ms
    rows, notes = [], []
    for figures, _ in results:
        afternoon = figures[-1]
        for f in figures:
            rows.append([f"{f.tasks:,}", f.target, str(f.polls), str(len(f.scrapes or [])), ms(f.scrape(0.5)),
                         ms(f.scrape(0.99)), ms(f.scrape(1.0)), ratio(f.scrape(0.99), afternoon.scrape(0.99)),
                         ms(f.lag(0.99)), ms(f.lag(1.0)), f"{f.rss_mb:.1f}", f"{f.peak_rss_mb:.1f}",
                         f"{f.cpu_per_status * 1e6:.2f}", ratio(f.cpu_per_status, afternoon.cpu_per_status)])
            if f.error:
                notes.append(f"  {f.tasks:,} {f.target}: {f.error}")
    intervals = ", ".join(f"{INTERVALS.get(fs[0].tasks, 5.0):g} s at {fs[0].tasks:,}" for fs, _ in results)
    common.table(
        f"/metrics while later polls run ({CHURN_PER_INTERVAL:.0%} of tasks change state per interval: {intervals}); "
        f"scraped every {SCRAPE_EVERY * 1000:.0f} ms (open loop), lag probe every {PROBE_EVERY * 1000:.0f} ms "
        f"(/-/healthy; the afternoon exporter's server thread: /favicon.ico) over {LOAD_POLLS} polls, "
        f"CPU over the {CPU_POLLS} after them",
        ["tasks", "exporter", "polls", "scrapes", "p50 ms", "p99 ms", "max ms", "p99/afternoon", "lag p99 ms",
         "lag max ms", "RSS MB", "peak RSS MB", "CPU us/status", "CPU/afternoon"], rows)
    for note in notes:
        print(note)
    restarts = [r for _, r in results if r is not None]
    if restarts:
        common.table("Restart with --state.file: SIGKILL after its last save, then started again (seconds from "
                     "the start)",
                     ["tasks", "/metrics restored s", "/-/ready s", "peak RSS MB"],
                     [[f"{r.tasks:,}", f"{r.restored_s:.1f}", f"{r.ready_s:.1f}", f"{r.peak_rss_mb:.1f}"]
                      for r in restarts])
        for r in restarts:
            if r.error:
                print(f"  {r.tasks:,}: {r.error}")
    return checks(results)


def checks(results: list[Result]) -> list[tuple[str, bool, str]]:
    ms = common.ms
    out: list[tuple[str, bool, str]] = []
    cpu_ratios, state_ratios = [], []
    for figures, restart in results:
        plain, stated, afternoon = figures
        n = plain.tasks
        limit = P99_TARGETS.get(n)
        if limit is not None:
            worst = max(plain.scrape(0.99), stated.scrape(0.99))
            out.append((f"/metrics p99 while polls run at {n:,} tasks <= {limit * 1000:.0f} ms and <= the afternoon "
                        "exporter's, with and without --state.file",
                        worst <= limit and worst <= afternoon.scrape(0.99),
                        f"{ms(plain.scrape(0.99))} ms, {ms(stated.scrape(0.99))} ms with the state file "
                        f"(afternoon {ms(afternoon.scrape(0.99))} ms)"))
        if n == STALL_AT:
            stall = max(plain.lag(1.0), stated.lag(1.0))
            out.append((f"longest event-loop stall at {n:,} tasks <= {STALL_TARGET * 1000:.0f} ms",
                        stall <= STALL_TARGET,
                        f"{ms(plain.lag(1.0))} ms, {ms(stated.lag(1.0))} ms with the state file"))
        if n == RSS_AT:
            rss = max(plain.rss_mb, stated.rss_mb)
            out.append((f"RSS at {n:,} tasks <= {RSS_TARGET_MB:.0f} MB", rss <= RSS_TARGET_MB,
                        f"{plain.rss_mb:.1f} MB, {stated.rss_mb:.1f} MB with the state file "
                        f"(afternoon {afternoon.rss_mb:.1f} MB)"))
            peaks = [div(plain.peak_rss_mb, plain.rss_mb), div(stated.peak_rss_mb, stated.rss_mb)]
            if restart is not None:
                peaks.append(div(restart.peak_rss_mb, stated.rss_mb))
            out.append((f"peak RSS at {n:,} tasks <= {PEAK_RATIO}x steady (runs and restart)",
                        max(peaks) <= PEAK_RATIO, "x" + ", x".join(f"{p:.2f}" for p in peaks)))
        if n == RESTART_AT:
            ready = restart.ready_s if restart is not None else float("nan")
            restored = restart.restored_s if restart is not None else float("nan")
            out.append((f"restart at {n:,} tasks with the state file ready within {RESTART_TARGET:g} s",
                        ready <= RESTART_TARGET,
                        f"ready after {ready:.1f} s, /metrics restored after {restored:.1f} s"))
        state_ratios.append((n, div(stated.cpu_per_status, plain.cpu_per_status)))
        cpu_ratios.append((n, div(plain.cpu_per_status, afternoon.cpu_per_status)))
    out.append((f"poll CPU with the state file <= {STATE_CPU_RATIO}x without",
                all(r <= STATE_CPU_RATIO for _, r in state_ratios),
                ", ".join(f"x{r:.2f} at {n:,}" for n, r in state_ratios)))
    out.append((f"later poll CPU per status <= {CPU_RATIO}x the afternoon exporter's",
                all(r <= CPU_RATIO for _, r in cpu_ratios), ", ".join(f"x{r:.2f} at {n:,}" for n, r in cpu_ratios)))
    return out
