"""Durable state in SQLite, so a restart loses no task and counts no transition twice.

The state module hands `save` each set's changed tasks, its new or renewed tombstones and its
expired ones once per poll, and it writes them with the set's aggregates (counters,
histograms, health) in one transaction; `load` reads a set back when it is configured again.
A file that cannot be read as a state file stops the start with one line naming it and
saying what to do: nothing is overwritten.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporter.core.errors import StateFileError
from exporter.core.model import TaskState

if TYPE_CHECKING:
    from exporter.core.state import SetState

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_set TEXT NOT NULL, task_id TEXT NOT NULL, state TEXT NOT NULL, status TEXT NOT NULL,
    fault TEXT NOT NULL, message TEXT NOT NULL, progress REAL, eta REAL, created REAL, finished REAL,
    first_seen REAL NOT NULL, last_seen REAL, not_before REAL, misses INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (task_set, task_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sets (task_set TEXT PRIMARY KEY, provider TEXT NOT NULL, aggregates TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tombstones (
    task_set TEXT NOT NULL, task_id TEXT NOT NULL, state TEXT NOT NULL, hour INTEGER NOT NULL,
    PRIMARY KEY (task_set, task_id)
) WITHOUT ROWID;
"""
# Columns added since the first release, added to older files when they are opened.
ADDED_COLUMNS = {"tasks": [("misses", "INTEGER NOT NULL DEFAULT 0")]}
# TaskRecord slots in column order; `state` is stored as its value.
FIELDS = ("state", "status", "fault", "message", "progress", "eta", "created", "finished",
          "first_seen", "last_seen", "not_before", "misses")
INSERT = f"INSERT OR REPLACE INTO tasks VALUES (?, ?, {', '.join('?' * len(FIELDS))})"
ADVICE = "move it aside (the exporter then starts afresh) or restore a backup"


class StateFile:
    """One SQLite file holding every set's tasks, tombstones and aggregates."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        file = Path(self.path)
        if file.is_file() and file.stat().st_size == 0:
            log.warning("state file %s is empty; initialising it: counters start from zero", self.path)
        try:
            self._db = sqlite3.connect(self.path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            self._migrate()
        except sqlite3.Error as err:
            raise self.damaged(err) from None

    def damaged(self, err: Exception, what: str = "") -> StateFileError:
        """The one-line error for a file that cannot be used; `what` names the part that is wrong."""
        detail = f"{what}: " if what else ""
        return StateFileError(f"state file {self.path} cannot be used ({detail}{err.__class__.__name__}: "
                              f"{str(err)[:200]}); {ADVICE}")

    def _migrate(self) -> None:
        for table, columns in ADDED_COLUMNS.items():
            have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for name, decl in columns:
                if name not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")

    def close(self) -> None:
        self._db.close()

    def save(self, st: SetState, aggregates: dict[str, Any], changed: Iterable[str], buried: Iterable[str],
             unburied: Iterable[str]) -> None:
        """Write changed tasks, turn forgotten ones into tombstones, drop expired tombstones and
        replace the aggregates, as one transaction."""
        rows = []
        for task_id in changed:
            rec = st.tasks.get(task_id)
            if rec is not None:
                rows.append((st.name, task_id, rec.state.value, *(getattr(rec, f) for f in FIELDS[1:])))
        graves = [(st.name, t, state.value, hour) for t in buried
                  if (grave := st.tombstones.get(t)) is not None for state, hour in (grave,)]
        with self._db:
            self._db.executemany(INSERT, rows)
            self._db.executemany("DELETE FROM tasks WHERE task_set = ? AND task_id = ?",
                                 [(st.name, g[1]) for g in graves])
            self._db.executemany("INSERT OR REPLACE INTO tombstones VALUES (?, ?, ?, ?)", graves)
            self._db.executemany("DELETE FROM tombstones WHERE task_set = ? AND task_id = ?",
                                 [(st.name, t) for t in unburied])
            self._db.execute("INSERT OR REPLACE INTO sets VALUES (?, ?, ?)",
                             (st.name, st.provider, json.dumps(aggregates)))

    def load(self, name: str, provider: str) -> tuple[dict[str, Any], list[tuple[Any, ...]],
                                                      list[tuple[str, TaskState, int]]] | None:
        """A set's aggregates, task rows (task_id, then FIELDS) and tombstones, if saved under this provider."""
        where = f"the set {name}"
        try:
            row = self._db.execute("SELECT provider, aggregates FROM sets WHERE task_set = ?", (name,)).fetchone()
            if row is None or row[0] != provider:
                return None
            where = f"the aggregates of set {name}"
            aggregates = json.loads(row[1])
            if not isinstance(aggregates, dict):
                raise ValueError("not a JSON object")
            where = f"the tasks of set {name}"
            tasks = self._db.execute(f"SELECT task_id, {', '.join(FIELDS)} FROM tasks WHERE task_set = ?", (name,))
            rows = [(tid, TaskState(state), *rest) for tid, state, *rest in tasks]
            where = f"the tombstones of set {name}"
            graves = self._db.execute("SELECT task_id, state, hour FROM tombstones WHERE task_set = ?", (name,))
            tombstones = [(tid, TaskState(state), int(hour)) for tid, state, hour in graves]
        except sqlite3.Error as err:
            raise self.damaged(err) from None
        except (ValueError, TypeError) as err:
            raise self.damaged(err, where) from None
        return aggregates, rows, tombstones

    def drop_sets_except(self, keep: Iterable[str]) -> None:
        """Forget every set not in `keep`."""
        names = list(keep)
        marks = ", ".join("?" * len(names)) or "NULL"
        with self._db:
            for table in ("tasks", "tombstones", "sets"):
                self._db.execute(f"DELETE FROM {table} WHERE task_set NOT IN ({marks})", names)
