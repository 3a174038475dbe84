"""The set's ETA: a pure function of what the last poll learned."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from exporter.core.records import TaskRecord

RATE_SMOOTHING = 0.3  # weight of the newest poll in the completion-rate average


def smoothed_rate(previous: float | None, completed: int, seconds: float) -> float | None:
    """Tasks finished per second, smoothed over polls; `previous` when no time passed."""
    if seconds <= 0:
        return previous
    rate = completed / seconds
    return rate if previous is None else previous + RATE_SMOOTHING * (rate - previous)


def estimate(
    pending: int,
    reported: Sequence[float],
    asked_etas: Iterable[float],
    waiting_etas: Iterable[float],
    completion_rate: float | None,
) -> float | None:
    """Seconds until the pending tasks are expected to finish, or None when unknown.

    `reported` are the provider's batch ETAs of this poll; `asked_etas` the per-task ETAs this
    poll reported; `waiting_etas` what is left of the ETAs of pending tasks not asked in it
    (waiting for their not-before time). The set is done when its slowest batch or task is.
    """
    waiting = list(waiting_etas)
    if reported:
        return max([*reported, *waiting])
    if not pending:
        return 0.0
    tasks = [*asked_etas, *waiting]
    if tasks:
        return max(tasks)
    if completion_rate:
        return pending / completion_rate
    return None


def task_etas(pending: Iterable[TaskRecord], now: float) -> tuple[list[float], list[float]]:
    """ETAs of tasks asked in the poll ending `now`, and what is left of the others' (waiting for
    their not-before time): a task's ETA counts from when it was reported."""
    asked, waiting = [], []
    for rec in pending:
        if rec.last_seen == now:
            asked.append(rec.eta or 0.0)
        else:
            waiting.append(max(0.0, (rec.eta or 0.0) - (now - (rec.last_seen or now))))
    return asked, waiting
