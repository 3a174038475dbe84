"""The scale section: /metrics latency, poll CPU and memory at 1,000 to 100,000 tasks,
against the per-task exporter measured in the same run."""

from __future__ import annotations

from benchmarks import common, scale

SIZES = (1_000, 10_000, 100_000)
SCRAPE_P99_TARGET = 0.005
SCRAPE_RATIO_TARGET = 20.0
RSS_TARGET_MB = 100.0
POLL_NOISE = 1.2  # allowance on poll CPU growth for run-to-run noise in CPU time (tens of percent on shared machines)

ms, table = common.ms, common.table
Checks = list[tuple[str, bool, str]]


async def section(checks: Checks) -> None:
    sizes = [await scale.measure(n) for n in SIZES]
    table(
        f"/metrics latency in ms over loopback ({scale.SCRAPES} scrapes; aggregate series, per-task series off)",
        [
            "tasks",
            "p50",
            "p99",
            "p50 after change",
            "p99 after change",
            "body bytes",
            "baseline p50",
            "baseline p99",
            "baseline scrapes",
            "baseline body bytes",
            "baseline/ours p99",
        ],
        [
            [
                f"{s.tasks:,}",
                ms(s.scrape_p50),
                ms(s.scrape_p99),
                ms(s.fresh_p50),
                ms(s.fresh_p99),
                f"{s.body_bytes:,}",
                ms(s.baseline_p50),
                ms(s.baseline_p99),
                str(s.baseline_scrapes),
                f"{s.baseline_body_bytes:,}",
                f"{s.baseline_p99 / s.fresh_p99:.0f}x",
            ]
            for s in sizes
        ],
    )
    largest = sizes[-1]
    checks.append(
        (
            f"/metrics p99 at {largest.tasks:,} tasks <= 5 ms (after a change, the slower case)",
            largest.fresh_p99 <= SCRAPE_P99_TARGET,
            f"{ms(largest.fresh_p99)} ms",
        )
    )
    ratio = largest.baseline_p99 / largest.fresh_p99
    checks.append(
        (
            f"/metrics p99 at {largest.tasks:,} tasks at least 20x faster than the baseline's",
            ratio >= SCRAPE_RATIO_TARGET,
            f"{ratio:.0f}x",
        )
    )

    table(
        f"Poll cost and memory (a full first poll of every task, median of {scale.POLL_ROUNDS}; the polls after "
        f"it until {scale.SUSTAINED_STATUSES:,} statuses, best of {scale.SUSTAINED_REPEATS}; RSS of the running "
        "exporter)",
        [
            "tasks",
            "first poll wall s",
            "first poll CPU s",
            "CPU us/task",
            "later polls CPU us/status",
            "RSS MB",
            "peak RSS MB",
            "baseline first poll wall s",
            "baseline RSS MB",
            "baseline/ours first poll",
        ],
        [
            [
                f"{s.tasks:,}",
                f"{s.poll_wall:.3f}",
                f"{s.poll_cpu:.3f}",
                f"{s.poll_cpu / s.tasks * 1e6:.1f}",
                f"{s.sustained_cpu * 1e6:.1f}",
                f"{s.rss_mb:.1f}",
                f"{s.peak_rss_mb:.1f}",
                f"{s.baseline_poll_wall:.1f}" + ("*" if s.tasks > scale.BASELINE_POLL_TASKS else ""),
                f"{s.baseline_rss_mb:.1f}",
                f"{s.baseline_poll_wall / s.poll_wall:.0f}x",
            ]
            for s in sizes
        ],
    )
    print(f"  * timed on {scale.BASELINE_POLL_TASKS:,} tasks and scaled: one request a task takes minutes at this size")
    checks.append(
        (
            f"RSS with {largest.tasks:,} tasks <= 100 MB",
            largest.rss_mb <= RSS_TARGET_MB,
            f"{largest.rss_mb:.1f} MB (baseline {largest.baseline_rss_mb:.1f} MB)",
        )
    )
    first = sizes[0]
    growth = largest.tasks / first.tasks
    scrape_growth = largest.fresh_p99 / first.fresh_p99
    poll_growth = growth * largest.sustained_cpu / first.sustained_cpu
    print(
        f"  growth from {first.tasks:,} to {largest.tasks:,} tasks ({growth:.0f}x): scrape p99 x{scrape_growth:.1f}, "
        f"poll CPU x{poll_growth:.1f} (first poll x{largest.poll_cpu / first.poll_cpu:.1f})"
    )
    checks.append(
        (
            "scrape and poll cost grow at most linearly with tasks",
            scrape_growth <= growth and poll_growth <= growth * POLL_NOISE,
            f"x{scrape_growth:.1f} and x{poll_growth:.1f} for x{growth:.0f} tasks",
        )
    )
