"""The stalls section's tables and its targets (the core's budgets), ratios against the afternoon exporter."""

from __future__ import annotations

from benchmarks import common
from benchmarks.stalls import CHURN_PER_INTERVAL, CPU_POLLS, INTERVALS, LOAD_POLLS, Figure, Restart
from benchmarks.watch import PROBE_EVERY, QUIET_SCRAPE_EVERY, SCRAPE_EVERY, STALL

# The budgets the core is built for: scrape latency, stalls, memory, restart and CPU.
P99_TARGETS = {100_000: 0.010, 1_000_000: 0.025}
STALL_TARGET, STALL_AT = 0.050, 1_000_000
STATE_CPU_RATIO = 1.3  # poll CPU with the state file / without
CPU_RATIO = 0.5  # later poll CPU per status / the afternoon exporter's
RSS_TARGET_MB, RSS_AT = 200.0, 1_000_000
PEAK_RATIO = 1.3  # peak RSS / steady
RESTART_TARGET, RESTART_AT = 5.0, 1_000_000


Result = tuple[list[Figure], Restart | None]


def div(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def ratio(ours: float, theirs: float) -> str:
    return f"{div(ours, theirs):.2f}x"


def report(results: list[Result]) -> list[tuple[str, bool, str]]:
    """Print the tables; the targets as (what, met, figure)."""
    ms = common.ms
    rows, notes = [], []
    for figures, _ in results:
        afternoon = figures[-1]
        for f in figures:
            rows.append(
                [
                    f"{f.tasks:,}",
                    f.target,
                    str(f.polls),
                    str(len(f.scrapes or [])),
                    ms(f.scrape(0.5)),
                    ms(f.scrape(0.99)),
                    ms(f.scrape(1.0)),
                    ratio(f.scrape(0.99), afternoon.scrape(0.99)),
                    ms(f.lag(0.99)),
                    ms(f.lag(1.0)),
                    f"{f.rss_mb:.1f}",
                    f"{f.peak_rss_mb:.1f}",
                    f"{f.cpu_per_status * 1e6:.2f}",
                    ratio(f.cpu_per_status, afternoon.cpu_per_status),
                ]
            )
            if f.error:
                notes.append(f"  {f.tasks:,} {f.target}: {f.error}")
    intervals = ", ".join(f"{INTERVALS.get(fs[0].tasks, 5.0):g} s at {fs[0].tasks:,}" for fs, _ in results)
    common.table(
        f"/metrics while later polls run ({CHURN_PER_INTERVAL:.0%} of tasks change state per interval: {intervals}); "
        f"scraped every {SCRAPE_EVERY * 1000:.0f} ms (open loop), lag probe every {PROBE_EVERY * 1000:.0f} ms "
        f"(/-/healthy; the afternoon exporter's server thread: /favicon.ico) over {LOAD_POLLS} polls, "
        f"CPU over the {CPU_POLLS} after them (scraped every {QUIET_SCRAPE_EVERY:g} s)",
        [
            "tasks",
            "exporter",
            "polls",
            "scrapes",
            "p50 ms",
            "p99 ms",
            "max ms",
            "p99/afternoon",
            "lag p99 ms",
            "lag max ms",
            "RSS MB",
            "peak RSS MB",
            "CPU us/status",
            "CPU/afternoon",
        ],
        rows,
    )
    for note in notes:
        print(note)
    print(f"  stalls (lag probe answers over {STALL * 1000:.0f} ms) by where they fell in their poll:")
    for figures, _ in results:
        for f in figures:
            if f.stalls is not None:
                print(f"    {f.tasks:,} {f.target}: {f.stalls.describe()}")
    restarts = [(figures[1], r) for figures, r in results if r is not None]
    if restarts:
        common.table(
            "--state.file: the first poll's save (seconds after ready; later polls are measured after it), "
            "then a restart: SIGKILL after the last save, started again (seconds from the start)",
            ["tasks", "first save s", "/metrics restored s", "/-/ready s", "restart peak RSS MB"],
            [
                [
                    f"{r.tasks:,}",
                    f"{f.first_save_s:.1f}",
                    f"{r.restored_s:.1f}",
                    f"{r.ready_s:.1f}",
                    f"{r.peak_rss_mb:.1f}",
                ]
                for f, r in restarts
            ],
        )
        for _, r in restarts:
            if r.ready_s < r.restored_s:
                print(
                    f"  {r.tasks:,}: /-/ready answered 200 {r.restored_s - r.ready_s:.1f} s before /metrics showed "
                    "the saved counts"
                )
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
            out.append(
                (
                    f"/metrics p99 while polls run at {n:,} tasks <= {limit * 1000:.0f} ms and <= the afternoon "
                    "exporter's, with and without --state.file",
                    worst <= limit and worst <= afternoon.scrape(0.99),
                    f"{ms(plain.scrape(0.99))} ms, {ms(stated.scrape(0.99))} ms with the state file "
                    f"(afternoon {ms(afternoon.scrape(0.99))} ms)",
                )
            )
        if n == STALL_AT:
            stall = max(plain.lag(1.0), stated.lag(1.0))
            out.append(
                (
                    f"longest event-loop stall at {n:,} tasks <= {STALL_TARGET * 1000:.0f} ms",
                    stall <= STALL_TARGET,
                    f"{ms(plain.lag(1.0))} ms, {ms(stated.lag(1.0))} ms with the state file",
                )
            )
        if n == RSS_AT:
            rss = max(plain.rss_mb, stated.rss_mb)
            out.append(
                (
                    f"RSS at {n:,} tasks <= {RSS_TARGET_MB:.0f} MB",
                    rss <= RSS_TARGET_MB,
                    f"{plain.rss_mb:.1f} MB, {stated.rss_mb:.1f} MB with the state file "
                    f"(afternoon {afternoon.rss_mb:.1f} MB)",
                )
            )
            peaks = [div(plain.peak_rss_mb, plain.rss_mb), div(stated.peak_rss_mb, stated.rss_mb)]
            if restart is not None:
                peaks.append(div(restart.peak_rss_mb, stated.rss_mb))
            out.append(
                (
                    f"peak RSS at {n:,} tasks <= {PEAK_RATIO}x steady (runs and restart)",
                    max(peaks) <= PEAK_RATIO,
                    "x" + ", x".join(f"{p:.2f}" for p in peaks),
                )
            )
        if n == RESTART_AT:
            ready = restart.ready_s if restart is not None else float("nan")
            restored = restart.restored_s if restart is not None else float("nan")
            # Ready means restored: a /-/ready that answers 200 while /metrics still shows partial
            # counts does not meet it, so the later of the two is what is checked.
            out.append(
                (
                    f"restart at {n:,} tasks with the state file ready, and /metrics restored, within "
                    f"{RESTART_TARGET:g} s",
                    max(ready, restored) <= RESTART_TARGET,
                    f"ready after {ready:.1f} s, /metrics restored after {restored:.1f} s",
                )
            )
        state_ratios.append((n, div(stated.cpu_per_status, plain.cpu_per_status)))
        cpu_ratios.append((n, div(plain.cpu_per_status, afternoon.cpu_per_status)))
    out.append(
        (
            f"poll CPU with the state file <= {STATE_CPU_RATIO}x without",
            all(r <= STATE_CPU_RATIO for _, r in state_ratios),
            ", ".join(f"x{r:.2f} at {n:,}" for n, r in state_ratios),
        )
    )
    out.append(
        (
            f"later poll CPU per status <= {CPU_RATIO}x the afternoon exporter's",
            all(r <= CPU_RATIO for _, r in cpu_ratios),
            ", ".join(f"x{r:.2f} at {n:,}" for n, r in cpu_ratios),
        )
    )
    return out
