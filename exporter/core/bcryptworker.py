"""What runs in the bcrypt worker processes: kept tiny, so a worker imports bcrypt and little else."""

from __future__ import annotations

import contextlib
import os
import signal

import bcrypt


def lower_priority() -> None:
    """Worker initializer: the lowest CPU priority, so the exporter's event loop wins every core it wants."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the exporter stops us
    with contextlib.suppress(OSError):  # a seccomp filter may say no
        os.nice(19)


def check(password: bytes, hashed: bytes) -> bool:
    """bcrypt.checkpw; False for a hash it cannot parse (refused at load, but never an error here)."""
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:
        return False
