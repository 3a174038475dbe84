"""The benchmark: prints the figures, each beside the baseline measured in the same run.

    python -m benchmarks.run                  every section (about eight minutes on 2 cores)
    python -m benchmarks.run --only stalls    one section (or several, comma-separated)
    python -m benchmarks.run --only stalls --stalls-tasks 100000    the stalls section at one size
    python -m benchmarks.run --only replicas  three replicas on one redis-server (redis-server on PATH)
    python -m benchmarks.run --auth           only the basic-auth flood section (same as --only auth)
    python -m benchmarks.run --profile        also profile the Yandex Direct ingest (pyinstrument)

Exits 1 when a target is missed. Every server is on 127.0.0.1 and stops with the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sys
import time
from collections.abc import Awaitable, Callable

from benchmarks import (
    auth,
    calls,
    common,
    ingest,
    ratecap,
    replicas,
    replicas_report,
    scale_report,
    stalls,
    stalls_report,
    tombstones,
)
from exporter.core.memory import tune_collector

CALL_TASKS, CALL_CYCLES = 1_000, 4
INGEST = {"yandex_direct": 100_000, "ipernity": 10_000, "encoding_com": 10_000, "aliyun_vod": 10_000}
INGEST_BASELINE_TASKS = 1_000
RATE_JOBS = 20_000
TOMBSTONE_COUNTS = (100_000, 1_000_000)
TOMBSTONE_TARGET_BYTES = 64

INGEST_TARGET = 100_000.0
AUTH_FLOOD_RATIO = 3.0  # authorised /metrics p99 under a wrong-password flood, over its p99 without


ms, table = common.ms, common.table
Checks = list[tuple[str, bool, str]]


async def section_calls(checks: Checks) -> None:
    figures = [await calls.measure(p, CALL_TASKS, CALL_CYCLES) for p in common.SIMULATORS]
    table(
        f"API calls per poll cycle: {CALL_TASKS:,} tasks a provider, {CALL_CYCLES} polls 60 s apart",
        ["provider", "batch cap", "calls", "minimum", "calls/minimum", "baseline calls", "baseline/ours"],
        [
            [
                f.provider,
                str(f.batch_cap),
                str(f.calls),
                str(f.minimum),
                f"{f.calls / f.minimum:.2f}",
                str(f.baseline_calls),
                f"{f.baseline_calls / f.calls:.0f}x",
            ]
            for f in figures
        ],
    )
    worst = max(f.calls / f.minimum for f in figures)
    checks.append(("API calls per cycle / theoretical minimum = 1.00", worst == 1.0, f"worst {worst:.2f}"))


async def section_ingest(checks: Checks) -> None:
    ingests = [await ingest.measure(p, n, INGEST_BASELINE_TASKS) for p, n in INGEST.items()]
    table(
        "Ingest: statuses parsed and applied per CPU second (recorded answers replayed, best of "
        f"{ingest.ROUNDS}; baseline: one-task answers into per-task Gauges)",
        ["provider", "statuses", "per second", "baseline per second", "ours/baseline"],
        [
            [
                i.provider,
                f"{i.statuses:,}",
                f"{i.per_second:,.0f}",
                f"{i.baseline_per_second:,.0f}",
                f"{i.per_second / i.baseline_per_second:.1f}x",
            ]
            for i in ingests
        ],
    )
    yandex = ingests[0]
    checks.append(
        (
            "Yandex Direct ingest >= 100,000 statuses/s on one core",
            yandex.per_second >= INGEST_TARGET,
            f"{yandex.per_second:,.0f}/s",
        )
    )


async def section_ratecap(checks: Checks) -> None:
    rate = await ratecap.measure(RATE_JOBS)
    table(
        f"Alibaba Cloud VOD call rate: {rate.jobs:,} jobs in {ratecap.SETS} sets on one account, cap {rate.cap:.0f}/s",
        ["", "calls", "seconds", "most calls in one second", "throttled"],
        [
            ["exporter", str(rate.calls), str(rate.seconds), str(rate.max_per_second), str(rate.throttled)],
            [
                "baseline",
                f"(first {ratecap.BASELINE_SECONDS:.0f} s)",
                "",
                str(rate.baseline_max_per_second),
                str(rate.baseline_throttled),
            ],
        ],
    )
    checks.append(
        (
            f"VOD calls in any one second <= {rate.cap:.0f}",
            rate.max_per_second <= rate.cap,
            f"{rate.max_per_second} (baseline {rate.baseline_max_per_second})",
        )
    )


async def section_tombstones(checks: Checks) -> None:
    tombs = [(n, tombstones.bytes_per_tombstone(n)) for n in TOMBSTONE_COUNTS]
    table(
        f"Tombstones: traced bytes per forgotten ID beyond the ID string ({tombstones.HOURS} distinct hours)",
        ["tombstones", "bytes each"],
        [[f"{n:,}", f"{b:.1f}"] for n, b in tombs],
    )
    worst_tomb = max(b for _, b in tombs)
    checks.append(
        (
            f"a tombstone <= {TOMBSTONE_TARGET_BYTES} bytes beyond its ID",
            worst_tomb <= TOMBSTONE_TARGET_BYTES,
            f"{worst_tomb:.1f} bytes",
        )
    )


async def auth_section(checks: list[tuple[str, bool, str]]) -> None:
    a = await auth.measure()
    table(
        f"Basic auth: an authorised client's /metrics in ms, alone and while {auth.FLOODERS} clients send wrong "
        f"passwords (bcrypt cost {auth.COST}, {auth.SCRAPES} scrapes each)",
        [
            "",
            "p50 alone",
            "p99 alone",
            "p50 flood",
            "p99 flood",
            "p99 flood/alone",
            "401s a second",
            "401 known user",
            "401 unknown user",
        ],
        [
            [
                "exporter",
                ms(a.quiet_p50),
                ms(a.quiet_p99),
                ms(a.flood_p50),
                ms(a.flood_p99),
                f"{a.flood_p99 / a.quiet_p99:.1f}x",
                f"{a.wrong_per_second:.1f}",
                ms(a.known_401),
                ms(a.unknown_401),
            ],
            [
                "baseline (bcrypt on the loop)",
                "",
                ms(a.baseline_quiet_p99),
                "",
                ms(a.baseline_flood_p99),
                f"{a.baseline_flood_p99 / a.baseline_quiet_p99:.0f}x",
                f"({a.baseline_scrapes} scrapes)",
                "",
                "",
            ],
        ],
    )
    checks.append(
        (
            f"/metrics p99 under a {auth.FLOODERS}-client wrong-password flood <= 3x its p99 alone",
            a.flood_p99 <= AUTH_FLOOD_RATIO * a.quiet_p99,
            f"{ms(a.flood_p99)} ms vs {ms(a.quiet_p99)} ms ({a.flood_p99 / a.quiet_p99:.1f}x)",
        )
    )


async def section_stalls(checks: Checks, sizes: tuple[int, ...] = stalls.SIZES) -> None:
    results = [await stalls.measure(n) for n in sizes]
    checks.extend(stalls_report.report(results))


async def section_replicas(checks: Checks) -> None:
    if shutil.which("redis-server") is None:  # scripts/ensure-test-tools installs it, as `make test` does
        checks.append(("replicas section: redis-server on PATH", False, "not found (Debian package redis-server)"))
        return
    checks.extend(replicas_report.report(await replicas.measure()))


SECTIONS: dict[str, Callable[[Checks], Awaitable[None]]] = {
    "calls": section_calls,
    "scale": scale_report.section,
    "ingest": section_ingest,
    "ratecap": section_ratecap,
    "tombstones": section_tombstones,
    "auth": auth_section,
    "stalls": section_stalls,
    "replicas": section_replicas,
}


async def run(sections: list[str], profile: bool, stall_tasks: tuple[int, ...]) -> Checks:
    checks: Checks = []
    tune_collector()  # what is measured in this process runs with the daemon's collector settings
    for name in sections:
        if name == "stalls" and stall_tasks:
            await section_stalls(checks, stall_tasks)
        else:
            await SECTIONS[name](checks)
    if profile:
        await profile_ingest()
    return checks


async def profile_ingest() -> None:
    from pyinstrument import Profiler

    rec = await ingest.recording("yandex_direct", INGEST["yandex_direct"], 1)
    profiler = Profiler()
    with profiler:
        await ingest.replay_exporter(rec.raw, rec.responses, rec.batches, rec.clock)
    print("\nProfile of one Yandex Direct ingest replay")
    print(profiler.output_text(unicode=False, color=False))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", action="store_true", help="profile the Yandex Direct ingest with pyinstrument")
    parser.add_argument("--auth", action="store_true", help="run only the basic-auth flood section")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run, in order (default: all of {','.join(SECTIONS)})",
    )
    parser.add_argument(
        "--stalls-tasks",
        default="",
        help=f"comma-separated task counts for the stalls section (default: {','.join(str(n) for n in stalls.SIZES)})",
    )
    args = parser.parse_args()
    sections = ["auth"] if args.auth else [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown sections {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    stall_tasks = tuple(int(n) for n in args.stalls_tasks.split(",") if n.strip())
    started = time.monotonic()
    print(
        f"upload-status-exporter benchmark: Python {platform.python_version()}, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    checks = asyncio.run(run(sections, args.profile, stall_tasks))
    print("\nTargets")
    for what, ok, figure in checks:
        print(f"  {'met   ' if ok else 'MISSED'}  {what}: {figure}")
    print(
        f"\n{sum(ok for _, ok, _ in checks)} met, {sum(not ok for _, ok, _ in checks)} missed "
        f"in {time.monotonic() - started:.0f} s"
    )
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
