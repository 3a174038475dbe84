"""Hand memory that a poll freed back to the operating system.

A poll of 100,000 tasks parses pages of 10,000 items; once applied, that memory is free but
glibc keeps it in the heap, so the resident size would stay at the poll's peak. malloc_trim
returns it. Elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable


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
