"""How the process uses memory: the garbage collector's settings and freed heap pages.

A poll of 100,000 tasks parses pages of 10,000 items; once applied, that memory is free but
glibc keeps it in the heap, so the resident size would stay at the poll's peak.
`release_free_memory` hands it back with malloc_trim (elsewhere, musl or macOS, it does
nothing).

CPython's cyclic collector is tuned for small programs: a young collection every 700 new
objects, and full collections that walk every object, start-up's included. The exporter
keeps up to 100,000 long-lived task records and makes few reference cycles, so
`tune_collector` takes what start-up built out of every later collection and lets a poll's
short-lived objects die by reference counting before a collection looks at them.

A poll of a million tasks holds a list of a million due IDs, and its batches, until it is
applied: a collection that meets them young walks a million pointers, tens of milliseconds
with the interpreter held. `collector_paused` keeps automatic collections off while polls
run (the process makes few reference cycles; those made meanwhile wait for the next
collection, a minute at most), and a poll's lists are gone when they come back on.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import time
from collections.abc import Callable, Iterator

YOUNG_GENERATION = 10_000  # new objects between young collections (CPython's default is 700)


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Return the heap's free pages to the system, where the C library can."""
    if _TRIM is not None:
        _TRIM(0)


def tune_collector() -> None:
    """Once start-up is done: freeze what it built and widen the young generation."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION, middle, old)


MAX_PAUSE_SECONDS = 60.0  # sets that always have a poll under way still get their young objects collected


class _Pause:
    polls = 0  # polls under way
    was_enabled = False  # automatic collection was on when the first of them began
    since = 0.0  # when it was last turned off, or young objects last collected


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic collection while this (and any other poll) runs; back as it was after the last."""
    if _Pause.polls == 0:
        _Pause.was_enabled, _Pause.since = gc.isenabled(), time.monotonic()
        gc.disable()
    _Pause.polls += 1
    try:
        yield
    finally:
        _Pause.polls -= 1
        if _Pause.polls == 0:
            if _Pause.was_enabled:
                gc.enable()
        elif time.monotonic() - _Pause.since > MAX_PAUSE_SECONDS:
            gc.collect(1)  # polls overlap without a break: cycles made meanwhile are not kept for ever
            _Pause.since = time.monotonic()
