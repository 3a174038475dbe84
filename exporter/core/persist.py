"""Durable state in SQLite, so a restart loses no task and counts no transition twice.

The store hands `save` what changed in a set once per poll (changed tasks, new or renewed
tombstones, expired ones, the aggregates), and it is written in one transaction. Every
statement runs on the file's own thread with its own connection, one at a time in the order
they were asked for, never on the event loop. A file that cannot be read as a state file
stops the start with one line naming it and saying what to do: nothing is overwritten.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from exporter.core.errors import StateFileError
from exporter.core.model import TaskState
from exporter.core.records import FIELDS
from exporter.core.sink import RowGroup, SavedSet, SetChanges

log = logging.getLogger(__name__)
T = TypeVar("T")

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
# A changed row is updated where it is (an upsert: one search of the tree, where a REPLACE deletes and inserts).
INSERT = (
    f"INSERT INTO tasks VALUES (?, ?, {', '.join('?' * len(FIELDS))}) ON CONFLICT (task_set, task_id) DO UPDATE "
    f"SET {', '.join(f'{f} = excluded.{f}' for f in FIELDS)}"
)
# Rows of the same values (tasks that changed alike in a poll: most of them) written by one
# statement, their IDs bound once as a JSON array: each row then costs SQLite's work alone.
INSERT_ALIKE = (
    f"INSERT INTO tasks SELECT ?, value, {', '.join('?' * len(FIELDS))} FROM json_each(?) WHERE true "
    f"ON CONFLICT (task_set, task_id) DO UPDATE SET {', '.join(f'{f} = excluded.{f}' for f in FIELDS)}"
)
SELECT_ROWS = (
    f"SELECT task_id, {', '.join(FIELDS)} FROM tasks WHERE task_set = ? AND task_id > ? ORDER BY task_id LIMIT ?"
)
# A page of a set's rows grouped by their values: its last task ID; then the distinct values in
# it and, for a few, each one's rows (how many, and their IDs joined by GROUP_SEP), else all
# groups at once (a sort of the whole page, slower than a scan a group).
PAGE_END = (
    "SELECT max(task_id) FROM (SELECT task_id FROM tasks WHERE task_set = ? AND task_id > ? ORDER BY task_id LIMIT ?)"
)
IN_PAGE = "FROM tasks WHERE task_set = ? AND task_id > ? AND task_id <= ?"
SELECT_VALUES = f"SELECT DISTINCT {', '.join(FIELDS)} {IN_PAGE}"
SELECT_GROUP = (
    f"SELECT count(*), group_concat(task_id, char(30)) {IN_PAGE} AND {' AND '.join(f'{f} IS ?' for f in FIELDS)}"
)
SELECT_GROUPS = (
    f"SELECT count(*), group_concat(task_id, char(30)), {', '.join(FIELDS)} {IN_PAGE} GROUP BY {', '.join(FIELDS)}"
)
FEW_GROUPS = 8
PAGE_SIZE = 65_536
GROUP_SEP = "\x1e"
STATES = {state.value: state for state in TaskState}  # a dict lookup a row, not an Enum call
ADVICE = "move it aside (the exporter then starts afresh) or restore a backup"


class StateFile:
    """One SQLite file holding every set's tasks, tombstones and aggregates (a StateSink)."""

    counts_transitions = False  # the counters are saved whole, with the aggregates

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        file = Path(self.path)
        if file.is_file() and file.stat().st_size == 0:
            log.warning("state file %s is empty; initialising it: counters start from zero", self.path)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="state-file")
        try:
            # Opened here, at start-up; from then on used only on the file's own thread.
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a new file's; one made before keeps its own
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            self._migrate()
        except sqlite3.Error as err:
            self._thread.shutdown()
            raise self.damaged(err) from None

    def damaged(self, err: Exception, what: str = "") -> StateFileError:
        """The one-line error for a file that cannot be used; `what` names the part that is wrong."""
        detail = f"{what}: " if what else ""
        return StateFileError(
            f"state file {self.path} cannot be used ({detail}{err.__class__.__name__}: {str(err)[:200]}); {ADVICE}"
        )

    def _migrate(self) -> None:
        for table, columns in ADDED_COLUMNS.items():
            have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for name, decl in columns:
                if name not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")

    async def _run(self, work: Callable[[], T]) -> T:
        """Run `work` on the file's thread, after everything asked before it."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    async def close(self) -> None:
        await self._run(self._db.close)
        self._thread.shutdown()

    async def save(self, changes: SetChanges, rows: AsyncIterator[Sequence[RowGroup]]) -> None:
        """One transaction, written a chunk of rows at a time: memory is bounded by the chunk, and a
        stop half-way leaves the file as it was."""
        try:
            async for chunk in rows:
                await self._run(lambda chunk=chunk: self._write_rows(changes.name, chunk))  # type: ignore[misc]
            await self._run(lambda: self._finish(changes))
        except BaseException:
            await asyncio.shield(self._run(self._db.rollback))
            raise

    def _write_rows(self, name: str, groups: Sequence[RowGroup]) -> None:
        self._db.executemany(INSERT, ((name, ids[0], *values) for values, ids in groups if len(ids) == 1))
        for values, ids in groups:
            if len(ids) > 1:
                self._db.execute(INSERT_ALIKE, (name, *values, json.dumps(list(ids))))

    def _finish(self, c: SetChanges) -> None:
        with self._db:  # commits the rows written before, with the rest
            graves = [(c.name, task_id, state.value, hour) for task_id, state, hour in c.buried]
            self._db.executemany("DELETE FROM tasks WHERE task_set = ? AND task_id = ?", [g[:2] for g in graves])
            self._db.executemany("INSERT OR REPLACE INTO tombstones VALUES (?, ?, ?, ?)", graves)
            self._db.executemany(
                "DELETE FROM tombstones WHERE task_set = ? AND task_id = ?", [(c.name, t) for t in c.unburied]
            )
            self._db.execute("INSERT OR REPLACE INTO sets VALUES (?, ?, ?)", (c.name, c.provider, c.aggregates))

    async def load(self, name: str, provider: str) -> SavedSet | None:
        """A set's aggregates and tombstones, if saved under this provider."""
        return await self._run(lambda: self._load(name, provider))

    def _load(self, name: str, provider: str) -> SavedSet | None:
        where = f"the aggregates of set {name}"
        try:
            row = self._db.execute("SELECT provider, aggregates FROM sets WHERE task_set = ?", (name,)).fetchone()
            if row is None or row[0] != provider:
                return None
            aggregates = json.loads(row[1])
            if not isinstance(aggregates, dict):
                raise ValueError("not a JSON object")
            where = f"the tombstones of set {name}"
            graves = self._db.execute("SELECT task_id, state, hour FROM tombstones WHERE task_set = ?", (name,))
            return SavedSet(aggregates, [(tid, TaskState(state), int(hour)) for tid, state, hour in graves])
        except sqlite3.Error as err:
            raise self.damaged(err) from None
        except (ValueError, TypeError) as err:
            raise self.damaged(err, where) from None

    async def rows(self, name: str, after: str, limit: int) -> list[tuple[Any, ...]]:
        return await self._run(lambda: self._rows(name, after, limit))

    def _rows(self, name: str, after: str, limit: int) -> list[tuple[Any, ...]]:
        try:
            page = self._db.execute(SELECT_ROWS, (name, after, limit)).fetchall()
            return [(tid, STATES[state], *rest) for tid, state, *rest in page]
        except sqlite3.Error as err:
            raise self.damaged(err) from None
        except (KeyError, ValueError, TypeError) as err:
            raise self.damaged(err, f"the tasks of set {name}") from None

    async def groups(self, name: str, after: str, limit: int) -> tuple[list[tuple[str, tuple[Any, ...]]], str] | None:
        """Up to `limit` task rows after `after`, grouped by their values by SQLite: a list of
        (their IDs joined by GROUP_SEP, FIELDS' values with the state as a TaskState), and the
        last ID; None when an ID holds the separator (rows are then read with `rows`)."""
        return await self._run(lambda: self._groups(name, after, limit))

    def _groups(self, name: str, after: str, limit: int) -> tuple[list[tuple[str, tuple[Any, ...]]], str] | None:
        try:
            (last,) = self._db.execute(PAGE_END, (name, after, limit)).fetchone()
            if last is None:
                return [], after
            page = (name, after, last)
            values = self._db.execute(SELECT_VALUES, page).fetchall()
            if len(values) <= FEW_GROUPS:
                found = [(*self._db.execute(SELECT_GROUP, (*page, *v)).fetchone(), *v) for v in values]
            else:
                found = self._db.execute(SELECT_GROUPS, page).fetchall()
            if any(ids.count(GROUP_SEP) != count - 1 for count, ids, *_ in found):
                return None
            return [(ids, (STATES[state], *rest)) for _, ids, state, *rest in found], last
        except sqlite3.Error as err:
            raise self.damaged(err) from None
        except (KeyError, ValueError, TypeError, AttributeError) as err:
            raise self.damaged(err, f"the tasks of set {name}") from None

    async def drop_sets_except(self, keep: Collection[str]) -> None:
        """Forget every set not in `keep`."""
        names = list(keep)
        await self._run(lambda: self._drop(names))

    def _drop(self, names: list[str]) -> None:
        marks = ", ".join("?" * len(names)) or "NULL"
        with self._db:
            for table in ("tasks", "tombstones", "sets"):
                self._db.execute(f"DELETE FROM {table} WHERE task_set NOT IN ({marks})", names)
