"""Durable state in SQLite, so a restart loses no task and counts no transition twice.

The store hands `save` what changed in a set once per poll (changed tasks, new or renewed
tombstones, expired ones, the aggregates), and it is written in one transaction: the tasks as
a few rows appended to the set's log, whatever their number (see SCHEMA). Every
statement runs on the file's own thread with its own connection, one at a time in the order
they were asked for, never on the event loop. A file that cannot be read as a state file
stops the start with one line naming it and saying what to do: nothing is overwritten.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from exporter.core.errors import StateFileError
from exporter.core.model import TaskState
from exporter.core.records import FIELDS
from exporter.core.sink import LogEntry, RowGroup, SavedSet, SetChanges

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_set TEXT NOT NULL, task_id TEXT NOT NULL, state TEXT NOT NULL, status TEXT NOT NULL,
    fault TEXT NOT NULL, message TEXT NOT NULL, progress REAL, eta REAL, created REAL, finished REAL,
    first_seen REAL NOT NULL, last_seen REAL, not_before REAL, misses INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (task_set, task_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS task_log (
    seq INTEGER PRIMARY KEY, task_set TEXT NOT NULL, task_values TEXT, task_ids TEXT NOT NULL, ids INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS task_log_by_set ON task_log (task_set, seq);
CREATE TABLE IF NOT EXISTS sets (task_set TEXT PRIMARY KEY, provider TEXT NOT NULL, aggregates TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tombstones (
    task_set TEXT NOT NULL, task_id TEXT NOT NULL, state TEXT NOT NULL, hour INTEGER NOT NULL,
    PRIMARY KEY (task_set, task_id)
) WITHOUT ROWID;
"""
# Task rows are kept as a log of groups: each row of `task_log` holds the values of a task row
# after its ID (FIELDS, as a JSON array; NULL: the tasks were dropped) and the IDs of the tasks
# that took them (a JSON array). A save appends what changed: a few rows, whatever the number of
# tasks, where updating one row a task in a keyed table writes every page of it when changes
# are spread over the keys. A set's rows read in order give its tasks; once the log holds
# REWRITE_AFTER times as many IDs as the set has tasks (or REWRITE_SLACK more), the next save
# replaces it with the set's tasks as they are. `tasks`, one row a task, is the format of files
# written before: read on restore, and replaced by the log at the set's first save.
REWRITE_AFTER = 1.5
REWRITE_SLACK = 50_000
# Columns added since the first release, added to older files when they are opened.
ADDED_COLUMNS = {"tasks": [("misses", "INTEGER NOT NULL DEFAULT 0")]}
LOG_INSERT = "INSERT INTO task_log (task_set, task_values, task_ids, ids) VALUES (?, ?, ?, ?)"
SELECT_LOG = "SELECT seq, task_values, task_ids FROM task_log WHERE task_set = ? AND seq > ? ORDER BY seq LIMIT ?"
SELECT_ROWS = (
    f"SELECT task_id, {', '.join(FIELDS)} FROM tasks WHERE task_set = ? AND task_id > ? ORDER BY task_id LIMIT ?"
)
DROP_ROW = 10_000  # IDs of dropped tasks in one log row
PAGE_SIZE = 65_536
STATES = {state.value: state for state in TaskState}  # a dict lookup a row, not an Enum call
ADVICE = "move it aside (the exporter then starts afresh) or restore a backup"


class StateFile:
    """One SQLite file holding every set's tasks, tombstones and aggregates (a StateSink)."""

    counts_transitions = False  # the counters are saved whole, with the aggregates
    whole_saves_cheap = True  # appended to the set's log like any save

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        file = Path(self.path)
        if file.is_file() and file.stat().st_size == 0:
            log.warning("state file %s is empty; initialising it: counters start from zero", self.path)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="state-file")
        self._logged: dict[str, int] = {}  # IDs in each set's log (read at its load, kept up to date)
        self._stale: set[str] = set()  # sets whose saved rows the next save replaces whole
        self._written = 0  # IDs written to the log in the transaction under way
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

    def rewrite_due(self, name: str, tracked: int) -> bool:
        """Whether the set's next save should carry all its tasks (SetChanges.whole): its log has
        grown past REWRITE_AFTER times its tasks, or it holds rows that are to go (see SCHEMA)."""
        return name in self._stale or self._logged.get(name, 0) > REWRITE_AFTER * tracked + REWRITE_SLACK

    async def save(self, changes: SetChanges, rows: AsyncIterator[Sequence[RowGroup]]) -> None:
        """One transaction, written a chunk of rows at a time: memory is bounded by the chunk, and a
        stop half-way leaves the file as it was."""
        name = changes.name
        try:
            if changes.whole:
                await self._run(lambda: self._forget_rows(name))
            async for chunk in rows:
                await self._run(lambda chunk=chunk: self._write_rows(name, chunk))  # type: ignore[misc]
            await self._run(lambda: self._finish(changes))
        except BaseException:
            await asyncio.shield(self._run(self._rollback))
            raise

    def _forget_rows(self, name: str) -> None:
        self._db.execute("DELETE FROM task_log WHERE task_set = ?", (name,))
        self._db.execute("DELETE FROM tasks WHERE task_set = ?", (name,))

    def _write_rows(self, name: str, groups: Iterable[tuple[tuple[Any, ...] | None, Sequence[str]]]) -> None:
        rows = [(name, None if v is None else json.dumps(v), json.dumps(list(ids)), len(ids)) for v, ids in groups]
        self._db.executemany(LOG_INSERT, rows)
        self._written += sum(row[3] for row in rows)

    def _finish(self, c: SetChanges) -> None:
        with self._db:  # commits the rows written before, with the rest
            dropped = [task_id for task_id, _, _ in c.buried]
            self._write_rows(c.name, [(None, dropped[i : i + DROP_ROW]) for i in range(0, len(dropped), DROP_ROW)])
            graves = [(c.name, task_id, state.value, hour) for task_id, state, hour in c.buried]
            self._db.executemany("INSERT OR REPLACE INTO tombstones VALUES (?, ?, ?, ?)", graves)
            self._db.executemany(
                "DELETE FROM tombstones WHERE task_set = ? AND task_id = ?", [(c.name, t) for t in c.unburied]
            )
            self._db.execute("INSERT OR REPLACE INTO sets VALUES (?, ?, ?)", (c.name, c.provider, c.aggregates))
        if c.whole:
            self._stale.discard(c.name)
        self._logged[c.name] = (0 if c.whole else self._logged.get(c.name, 0)) + self._written
        self._written = 0

    def _rollback(self) -> None:
        self._written = 0
        self._db.rollback()

    async def load(self, name: str, provider: str) -> SavedSet | None:
        """A set's aggregates and tombstones, if saved under this provider."""
        return await self._run(lambda: self._load(name, provider))

    def _load(self, name: str, provider: str) -> SavedSet | None:
        where = f"the aggregates of set {name}"
        try:
            (logged,) = self._db.execute("SELECT total(ids) FROM task_log WHERE task_set = ?", (name,)).fetchone()
            self._logged[name] = int(logged)
            row = self._db.execute("SELECT provider, aggregates FROM sets WHERE task_set = ?", (name,)).fetchone()
            legacy = self._db.execute("SELECT 1 FROM tasks WHERE task_set = ? LIMIT 1", (name,)).fetchone()
            foreign = row is None or row[0] != provider
            if legacy or (foreign and logged):
                self._stale.add(name)  # rows in the earlier format, or of a set that is not this one: replaced
            if foreign:
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
        """Rows of the earlier format (see SCHEMA), read before the log."""
        return await self._run(lambda: self._rows(name, after, limit))

    def _rows(self, name: str, after: str, limit: int) -> list[tuple[Any, ...]]:
        try:
            page = self._db.execute(SELECT_ROWS, (name, after, limit)).fetchall()
            return [(tid, STATES[state], *rest) for tid, state, *rest in page]
        except sqlite3.Error as err:
            raise self.damaged(err) from None
        except (KeyError, ValueError, TypeError) as err:
            raise self.damaged(err, f"the tasks of set {name}") from None

    async def log(self, name: str, after: int, limit: int) -> list[LogEntry]:
        return await self._run(lambda: self._log(name, after, limit))

    def _log(self, name: str, after: int, limit: int) -> list[LogEntry]:
        try:
            entries = []
            for seq, values, ids in self._db.execute(SELECT_LOG, (name, after, limit)).fetchall():
                task_ids = json.loads(ids)
                if not isinstance(task_ids, list) or not all(isinstance(t, str) for t in task_ids):
                    raise ValueError("task IDs that are not a list of strings")
                if len(set(task_ids)) != len(task_ids):
                    raise ValueError("a task ID twice in one row")
                entries.append((seq, None if values is None else _values(json.loads(values)), task_ids))
            return entries
        except sqlite3.Error as err:
            raise self.damaged(err) from None
        except (KeyError, ValueError, TypeError) as err:
            raise self.damaged(err, f"the tasks of set {name}") from None

    async def drop_sets_except(self, keep: Collection[str]) -> None:
        """Forget every set not in `keep`."""
        names = list(keep)
        await self._run(lambda: self._drop(names))

    def _drop(self, names: list[str]) -> None:
        marks = ", ".join("?" * len(names)) or "NULL"
        with self._db:
            for table in ("tasks", "task_log", "tombstones", "sets"):
                self._db.execute(f"DELETE FROM {table} WHERE task_set NOT IN ({marks})", names)
        for gone in set(self._logged) - set(names):
            del self._logged[gone]
        self._stale &= set(names)


# What each of FIELDS after the state (a value of TaskState) may hold; the others, a number or null.
_MAYBE: tuple[type, ...] = (int, float, type(None))
KINDS: dict[str, tuple[type, ...]] = {
    "status": (str,),
    "fault": (str,),
    "message": (str,),
    "first_seen": (int, float),
    "misses": (int,),
}


def _values(values: Any) -> tuple[Any, ...]:
    """FIELDS' values as a log row holds them, checked, the state as a TaskState."""
    if not isinstance(values, list) or len(values) != len(FIELDS):
        raise ValueError(f"task values that are not a list of {len(FIELDS)}")
    for field, value in zip(FIELDS[1:], values[1:], strict=True):
        if not isinstance(value, KINDS.get(field, _MAYBE)) or isinstance(value, bool):
            raise ValueError(f"a task's {field} of {type(value).__name__}")
    return (STATES[values[0]], *values[1:])
