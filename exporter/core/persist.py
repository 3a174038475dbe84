"""Durable state in SQLite, so a restart loses no task and counts no transition twice.

The state module hands `save` each set's changed and forgotten tasks once per poll, and
it writes them with the set's aggregates (counters, histograms, health) in one
transaction; `restore` loads a set back when it is configured again.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporter.core.model import TaskState

if TYPE_CHECKING:
    from exporter.core.state import SetState

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_set TEXT NOT NULL, task_id TEXT NOT NULL, state TEXT NOT NULL, status TEXT NOT NULL,
    fault TEXT NOT NULL, message TEXT NOT NULL, progress REAL, eta REAL, created REAL, finished REAL,
    first_seen REAL NOT NULL, last_seen REAL, not_before REAL,
    PRIMARY KEY (task_set, task_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sets (task_set TEXT PRIMARY KEY, provider TEXT NOT NULL, aggregates TEXT NOT NULL);
"""
# TaskRecord slots in column order; `state` is stored as its value.
FIELDS = ("state", "status", "fault", "message", "progress", "eta", "created", "finished",
          "first_seen", "last_seen", "not_before")
INSERT = f"INSERT OR REPLACE INTO tasks VALUES (?, ?, {', '.join('?' * len(FIELDS))})"


class StateFile:
    """One SQLite file holding every set's tasks and aggregates."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def save(self, st: SetState, aggregates: dict[str, Any], changed: Iterable[str], forgotten: Iterable[str]) -> None:
        """Write changed tasks, drop forgotten ones and replace the aggregates, as one transaction."""
        rows = []
        for task_id in changed:
            rec = st.tasks.get(task_id)
            if rec is not None:
                rows.append((st.name, task_id, rec.state.value, *(getattr(rec, f) for f in FIELDS[1:])))
        with self._db:
            self._db.executemany(INSERT, rows)
            self._db.executemany("DELETE FROM tasks WHERE task_set = ? AND task_id = ?",
                                 [(st.name, t) for t in forgotten])
            self._db.execute("INSERT OR REPLACE INTO sets VALUES (?, ?, ?)",
                             (st.name, st.provider, json.dumps(aggregates)))

    def load(self, name: str, provider: str) -> tuple[dict[str, Any], list[tuple[Any, ...]]] | None:
        """A set's aggregates and task rows (task_id, then FIELDS), if saved under this provider."""
        row = self._db.execute("SELECT provider, aggregates FROM sets WHERE task_set = ?", (name,)).fetchone()
        if row is None or row[0] != provider:
            return None
        tasks = self._db.execute(f"SELECT task_id, {', '.join(FIELDS)} FROM tasks WHERE task_set = ?", (name,))
        return json.loads(row[1]), [(tid, TaskState(state), *rest) for tid, state, *rest in tasks]

    def drop_sets_except(self, keep: Iterable[str]) -> None:
        """Forget every set not in `keep`."""
        names = list(keep)
        marks = ", ".join("?" * len(names)) or "NULL"
        with self._db:
            self._db.execute(f"DELETE FROM tasks WHERE task_set NOT IN ({marks})", names)
            self._db.execute(f"DELETE FROM sets WHERE task_set NOT IN ({marks})", names)
