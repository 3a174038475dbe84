"""Fault injection: four providers x the faults, against one real exporter process.

One exporter polls one task set per provider every second; the four simulators run in this
process on 127.0.0.1. Each phase switches one fault on in every simulator it applies to,
so the matrix costs about twenty phases. `pytest -s` shows the matrix; every cell must pass.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.exporter_process import ExporterProcess, wait_for
from tests.fault_matrix import INTERVAL, MAX_RETRY_TIME, SLACK, THROTTLE_PAUSE, Cell, MatrixRun, Phase
from tests.fault_world import ALL, World, body_cap

RETRY_AFTER = 3  # seconds a 503 asks for
PARTIAL_AT = 10.0  # the partial answers' tasks finish this long after the tasks are made...
PARTIAL_TIMES = 2  # ...and are each left out of this many answers...
NOT_FOUND_AFTER = 3  # ...fewer than make the exporter call them not_found
RUN_SPAN = 260.0  # other tasks finish over this long, so every phase sees some finish
TASKS = {"yandex_direct": 60, "ipernity": 400, "encoding_com": 60, "aliyun_vod": 100}  # VOD: 10 calls a poll
XML_ONLY = "a JSON API, no XML parser to attack"

Matrix = dict[tuple[str, str], Cell]


def phases(world: World, partial_ids: dict[str, list[str]]) -> list[Phase]:
    def omitted_enough() -> bool:
        return all(world.omitted(p).get(i, 0) >= PARTIAL_TIMES for p in ALL for i in partial_ids[p])

    def size(provider: str) -> dict[str, int]:
        return {"size": 4 * body_cap(provider)}

    plain = ["http_500", "http_502", "http_503"]
    return [
        Phase(
            "partial",
            "partial",
            ALL,
            lambda p: {"ids": partial_ids[p], "times": PARTIAL_TIMES},
            hold=0,
            until=omitted_enough,
            max_wait=PARTIAL_AT + 4 * INTERVAL,
        ),
        *[Phase(kind, kind, ALL) for kind in plain],
        Phase(
            "http_503_retry_after",
            "http_503",
            ALL,
            lambda p: {"retry_after": RETRY_AFTER},
            hold=RETRY_AFTER + INTERVAL,
            extra_recovery=lambda p: RETRY_AFTER,
        ),
        *[Phase(kind, kind, ALL) for kind in ("hang", "reset", "truncated", "malformed", "wrong_content_type")],
        *[Phase(kind, kind, ("encoding_com",)) for kind in ("xml_bomb", "external_entity")],
        Phase("oversized", "oversized", ALL, size),
        # One provider at a time, so the growth of the process is that provider's.
        *[Phase("oversized_chunked", "oversized_chunked", (p,), size) for p in ALL],
        Phase("auth", "auth", ALL),
        # Last: a provider may pause its account for a while after its throttling answer.
        Phase("throttle", "throttle", ALL, extra_recovery=lambda p: THROTTLE_PAUSE[p]),
    ]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    world = World()
    exporter = None
    try:
        start = time.time()
        ids, partial_ids = {}, {}
        for p in ALL:
            partial_ids[p] = world.add_tasks(p, [start + PARTIAL_AT + 0.5 * i for i in range(4)], fail_every=4)
            spacing = RUN_SPAN / TASKS[p]
            later = world.add_tasks(p, [start + PARTIAL_AT + 4 + spacing * i for i in range(TASKS[p])], fail_every=4)
            ids[p] = partial_ids[p] + later + world.add_tasks(p, [start + 3600.0] * 3)  # pending throughout
        config = {
            "accounts": {p: {**world.account(p), "rate_limit": 100} for p in ALL},
            "task_sets": [
                {
                    "name": f"ft_{p}",
                    "account": p,
                    "interval": f"{INTERVAL:g}s",
                    "max_tries": 3,
                    "max_retry_time": f"{MAX_RETRY_TIME:g}s",
                    "not_found_after": NOT_FOUND_AFTER,
                    "tasks": {"ids": ids[p]},
                    "per_task_series": len(ids[p]),
                }
                for p in ALL
            ],  # each task checked on its own
        }
        workdir = tmp_path_factory.mktemp("faults")
        exporter = ExporterProcess(workdir, config, world.env, state_file=workdir / "state.db")
        exporter.start()
        run = MatrixRun(world, exporter, ids)
        cells: Matrix = {}
        wait_for(lambda: time.time() >= start + PARTIAL_AT - 0.8, PARTIAL_AT, "the partial answers' tasks")
        for phase in phases(world, partial_ids):
            cells.update({(p, phase.label): cell for p, cell in run.run(phase).items()})
        for label in ("xml_bomb", "external_entity"):
            cells.update({(p, label): Cell(p, label, na=XML_ONLY) for p in ALL if (p, label) not in cells})
        yield cells
    finally:
        if exporter is not None:
            exporter.stop()
        world.close()


def render(cells: Matrix) -> str:
    labels = list(dict.fromkeys(label for _, label in cells))
    width = max(len(p) for p in ALL)
    lines = ["fault".ljust(22) + "  ".join(p.ljust(width) for p in ALL)]
    for label in labels:
        lines.append(label.ljust(22) + "  ".join(cells[(p, label)].verdict.ljust(width) for p in ALL))
    lines.append("")
    for (p, label), cell in cells.items():
        if cell.verdict != "PASS":
            lines.append(f"{p} x {label}: {cell.verdict}: {cell.na or '; '.join(cell.reasons)}")
    return "\n".join(lines)


def test_fault_matrix(matrix: Matrix) -> None:
    """Every provider x fault cell: up, answering, down and logged once, counted right, recovered."""
    text = render(matrix)
    print("\n" + text)
    for (p, label), cell in matrix.items():
        print(f"  {p} x {label}: {cell.notes}")
    assert not [c for c in matrix.values() if c.verdict == "FAIL"], text


def test_retry_after_is_honoured_between_calls(matrix: Matrix) -> None:
    """After a 503 with Retry-After: 3, that account is not called for 3 s, the next poll's call included."""
    for p in ALL:
        cell = matrix[(p, "http_503_retry_after")]
        gaps = cell.notes.get("retry_after_gaps", [])
        assert gaps, (p, cell.notes)
        assert min(gaps) >= RETRY_AFTER - 0.25, (p, gaps)
        assert not [r for r in cell.reasons if "Retry-After" in r], (p, cell.reasons)


def test_throttled_set_is_down_within_one_interval(matrix: Matrix) -> None:
    """Sustained throttling answers (VOD: ten calls a poll) mark the set down within a poll deadline."""
    for p in ALL:
        cell = matrix[(p, "throttle")]
        assert "down_after" in cell.notes, (p, cell.reasons)
        assert cell.notes["down_after"] <= INTERVAL + SLACK, (p, cell.notes)
