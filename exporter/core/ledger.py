"""What a counted transition adds to a set's counters, as named increments.

A state sink shared by replicas applies a transition's increments in the same atomic step
that checks the task's prior state, so each transition is counted once whichever replica
reports it; `to_aggregates` turns the kept counters back into the saved aggregates' shape.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from exporter.core.model import Tally, TaskState
from exporter.core.records import DURATION_BUCKETS

Increments = list[tuple[str, float]]
SEP = "\x1f"  # never in a fault code, counter or label value (all are bounded, printable)
COMPLETED = "completed"


def increments(state: TaskState, fault: str, tallies: Iterable[Tally], duration: float | None) -> Increments:
    """The counters one transition into `state` moves: totals, tallies and the duration histogram."""
    out: Increments = []
    if state is TaskState.DONE:
        out.append((COMPLETED, 1))
    elif state is TaskState.ERROR:
        out.append((f"failed{SEP}{fault}", 1))
    out.extend((f"tally{SEP}{t.counter}{SEP}{t.label}", t.amount) for t in tallies)
    if duration is not None:
        first = bisect.bisect_left(DURATION_BUCKETS, duration)
        prefix = f"duration{SEP}{state.value}{SEP}"
        out.extend((f"{prefix}{i}", 1) for i in range(first, len(DURATION_BUCKETS)))
        out += [(f"{prefix}sum", duration), (f"{prefix}count", 1)]
    return out


def to_aggregates(counters: Mapping[str, float], states: Sequence[TaskState]) -> dict[str, Any]:
    """The transition counters as the saved aggregates hold them (see dump.aggregates)."""
    failed: dict[str, int] = {}
    tallies: list[list[Any]] = []
    counts = {s.value: [0] * len(DURATION_BUCKETS) for s in states}
    totals: dict[str, float] = dict.fromkeys(counts, 0.0)
    observed: dict[str, int] = dict.fromkeys(counts, 0)
    for field, value in counters.items():
        kind, *rest = field.split(SEP)
        if kind == "failed" and len(rest) == 1:
            failed[rest[0]] = int(value)
        elif kind == "tally" and len(rest) == 2:
            tallies.append([rest[0], rest[1], value])
        elif kind == "duration" and len(rest) == 2 and rest[0] in counts:
            state, part = rest
            if part == "sum":
                totals[state] = float(value)
            elif part == "count":
                observed[state] = int(value)
            elif part.isdigit() and int(part) < len(DURATION_BUCKETS):
                counts[state][int(part)] = int(value)
    durations = {s: {"counts": counts[s], "total": totals[s], "count": observed[s]} for s in counts}
    return {
        "completed_total": int(counters.get(COMPLETED, 0)),
        "failed_total": failed,
        "tallies": tallies,
        "durations": durations,
    }


def from_aggregates(data: Mapping[str, Any]) -> dict[str, float]:
    """The transition counters of saved aggregates, as ledger fields (the inverse of `to_aggregates`)."""
    out: dict[str, float] = {COMPLETED: data.get("completed_total", 0)}
    out.update({f"failed{SEP}{fault}": n for fault, n in data.get("failed_total", {}).items()})
    out.update({f"tally{SEP}{counter}{SEP}{label}": v for counter, label, v in data.get("tallies", [])})
    for state, hist in data.get("durations", {}).items():
        prefix = f"duration{SEP}{state}{SEP}"
        out.update({f"{prefix}{i}": n for i, n in enumerate(hist["counts"])})
        out[f"{prefix}sum"], out[f"{prefix}count"] = hist["total"], hist["count"]
    return out
