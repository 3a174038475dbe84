"""The replicas section's tables and targets (benchmarks/replicas.py measures)."""

from __future__ import annotations

from benchmarks import common
from benchmarks.replicas import (
    CAP_SETS,
    INTERVAL_SECONDS,
    KILLED_SET,
    KILLS,
    REPLICAS,
    TASKS,
    TTL_SECONDS,
    Figure,
)

Checks = list[tuple[str, bool, str]]


def report(f: Figure) -> Checks:
    common.table(
        f"API calls per poll cycle, {REPLICAS} replicas on one Redis: {TASKS} pending tasks a set, polled every "
        f"{INTERVAL_SECONDS:g} s, {f.window:.1f} s (minimum: ceil(tasks / batch cap) a poll, as one process)",
        ["provider", "batch cap", "polls", "polled by", "calls", "minimum", "calls/minimum"],
        [
            [
                s.provider,
                str(s.batch_cap),
                str(s.polls),
                f"{s.polled_by} replica" + "s" * (s.polled_by != 1),
                str(s.calls),
                str(s.minimum),
                f"{s.calls / s.minimum:.2f}" if s.minimum else "-",
            ]
            for s in f.sets
        ],
    )
    print("  ipernity's set is polled too, and left out: it asks a ticket again only once the API's ETA has passed")
    worst = max((s.calls / s.minimum if s.minimum else float("inf")) for s in f.sets)
    polled_by = max(s.polled_by for s in f.sets)
    checks = [
        (
            "API calls per poll cycle across the replicas / minimum = 1.00, each set polled by one replica",
            round(worst, 2) == 1.0 and polled_by == 1,
            f"worst {worst:.2f}, polled by at most {polled_by}",
        )
    ]

    respected = f.cap_busiest <= f.cap
    spread = sum(n > 0 for n in f.spread)  # replicas holding sets of the account: more than one, or nothing is shared
    common.table(
        f"Alibaba Cloud VOD, one account capped at {f.cap:.0f}/s: {CAP_SETS} sets asking "
        f"{CAP_SETS * 6 / INTERVAL_SECONDS:.0f} calls a second, spread over the replicas, {f.window:.1f} s",
        [
            "sets per replica",
            "calls",
            "calls a second",
            "most calls in one second",
            "cap",
            "cap respected",
            "throttled",
        ],
        [
            [
                "/".join(str(n) for n in f.spread),
                str(f.cap_calls),
                f"{f.cap_calls / f.window:.1f}",
                str(f.cap_busiest),
                f"{f.cap:.0f}",
                "yes" if respected else "no",
                str(f.cap_throttled),
            ]
        ],
    )
    checks.append(
        (
            f"calls on one account in any one second, its sets on {spread} replicas, <= its cap",
            respected and f.cap_throttled == 0 and spread > 1,
            f"{f.cap_busiest} (cap {f.cap:.0f}, {f.cap_throttled} throttled)",
        )
    )

    bound = TTL_SECONDS + INTERVAL_SECONDS
    median, most = common.median(f.takeovers), max(f.takeovers)
    common.table(
        f"Take-over of {KILLED_SET} after kill -9 of its holder: seconds until its API is called again "
        f"(lease TTL {TTL_SECONDS:g} s, interval {INTERVAL_SECONDS:g} s)",
        ["kills", "median", "max", "each", "TTL + one interval"],
        [[str(KILLS), f"{median:.2f}", f"{most:.2f}", ", ".join(f"{t:.2f}" for t in f.takeovers), f"{bound:g}"]],
    )
    checks.append(
        (
            "take-over after kill -9 of a set's holder <= lease TTL + one interval",
            most <= bound,
            f"median {median:.2f} s, max {most:.2f} s (bound {bound:g} s)",
        )
    )
    return checks
