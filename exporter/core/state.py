"""The registry of task sets' state, its version, and the sink that keeps it across restarts.

Each set's `SetState` owns its tasks and their mutations. The store drives the work that
walks many tasks a chunk at a time, giving the event loop a turn between chunks, so a poll
of a million tasks never holds up a scrape. `version` moves once a change is complete, so
the exposition is rendered once per change and served from cache. What a poll changed is
snapshotted on the loop and written by the sink off it, one save at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Collection, Iterable, Iterator

from exporter.core import dump
from exporter.core.aggregates import MISSING, OTHER
from exporter.core.errors import StoreUnavailable
from exporter.core.model import PollOutcome
from exporter.core.provider import IdSyntax, Vocabulary
from exporter.core.sink import RowGroup, StateSink
from exporter.core.tasks import SetState

__all__ = ["MISSING", "OTHER", "PollOutcome", "SetState", "StateStore"]

log = logging.getLogger(__name__)

RESTORE_PAGE = 20_000  # saved task rows read from the sink at a time
RESTORE_CHUNK = 4_000  # rows loaded between two turns of the event loop
RESTORE_ENTRIES = 100  # groups of saved tasks read from the sink at a time (loaded RESTORE_CHUNK tasks at a time)
SAVE_CHUNK = 1_000  # changed tasks' rows grouped and handed to the sink at a time


def _drain(steps: Iterator[None]) -> None:
    for _ in steps:
        pass


async def _run(steps: Iterator[None]) -> None:
    """Run a chunked job, letting other work (scrapes) in between chunks."""
    for _ in steps:
        await asyncio.sleep(0)


class StateStore:
    """All task sets' state: the only code that changes it goes through here or its SetStates."""

    def __init__(self, sink: StateSink | None = None) -> None:
        self.sets: dict[str, SetState] = {}
        self.version = 0
        self.sink = sink
        self._to_restore: set[str] = set()
        self._restoring: dict[str, asyncio.Lock] = {}
        self._saving = asyncio.Lock()
        self._keep: set[str] | None = None  # sets to keep in the sink, when some were dropped

    def changed(self) -> None:
        self.version += 1

    def ensure_set(
        self,
        name: str,
        provider: str,
        vocabulary: Vocabulary,
        *,
        id_syntax: IdSyntax | None = None,
        not_found_after: int = 3,
    ) -> SetState:
        """The set of this name and provider, new (and due for `restore`) if there was none."""
        st = self.sets.get(name)
        if st is None or st.provider != provider:
            counted = self.sink is not None and getattr(self.sink, "counts_transitions", True)
            whole = self.sink is not None and getattr(self.sink, "whole_saves_cheap", False)
            st = SetState(
                name,
                provider,
                vocabulary,
                keep_changes=self.sink is not None,
                keep_counted=counted,
                whole_when_many=whole,
            )
            self.sets[name] = st
            if self.sink is not None:
                self._to_restore.add(name)
            self.changed()
        st.vocabulary = vocabulary
        st.id_syntax = id_syntax
        st.not_found_after = not_found_after
        return st

    async def restore(self, name: str) -> None:
        """Load the set's saved state, page by page, once; later calls return at once."""
        if name not in self._to_restore or self.sink is None:
            return
        async with self._restoring.setdefault(name, asyncio.Lock()):
            if name not in self._to_restore:
                return
            try:
                await self._load(self.sets[name])
            except Exception:
                # A set that cannot be restored is never saved over what it could not read.
                self._to_restore.discard(name)
                del self.sets[name]
                raise
            self._to_restore.discard(name)
            self.changed()

    async def _load(self, st: SetState) -> None:
        assert self.sink is not None
        saved = await self.sink.load(st.name, st.provider)
        if saved is None:
            return
        try:
            dump.restore(st, saved)
        except (KeyError, ValueError, TypeError, AttributeError) as err:
            raise self.sink.damaged(err, f"the aggregates of set {st.name}") from None
        # Rows one a task (the next page is read on the sink's thread while this one is loaded
        # here), then the groups of tasks saved after them, in order.
        page = await self.sink.rows(st.name, "", RESTORE_PAGE)
        while page:
            following = asyncio.ensure_future(self.sink.rows(st.name, page[-1][0], RESTORE_PAGE))
            try:
                for start in range(0, len(page), RESTORE_CHUNK):
                    dump.restore_rows(st, page[start : start + RESTORE_CHUNK])
                    await asyncio.sleep(0)
            except BaseException:  # a stop while restoring: the page being read is not wanted
                following.cancel()
                raise
            page = await following
        entries = await self.sink.log(st.name, 0, RESTORE_ENTRIES)
        while entries:
            more = asyncio.ensure_future(self.sink.log(st.name, entries[-1][0], RESTORE_ENTRIES))
            try:
                await _run(dump.replay(st, entries, RESTORE_CHUNK))
            except BaseException:
                more.cancel()
                raise
            entries = await more
        st.restored = True  # ready: everything saved is loaded
        log.info("restored %d tasks and %d tombstones of set %s", len(st.tasks), len(st.tombstones), st.name)

    def retain_sets(self, names: Iterable[str]) -> None:
        """Drop sets no longer configured; their series vanish from /metrics, and their saved
        state goes with the next save."""
        keep = set(names)
        for name in [n for n in self.sets if n not in keep]:
            del self.sets[name]
            self._to_restore.discard(name)
            self.changed()
        self._keep = keep

    def discard(self, name: str) -> None:
        """Forget a set here without saving it (another process holds it now); its series vanish."""
        if self.sets.pop(name, None) is not None:
            self.changed()
        self._to_restore.discard(name)

    def track(self, name: str, task_ids: Iterable[str], now: float, where: str = "the config") -> int:
        """Start tracking these IDs in the set; returns how many were new (see SetState.track)."""
        added = self.sets[name].track(task_ids, now, where)
        if added:
            self.changed()
        return added

    def push_refused(self, name: str, reason: str) -> None:
        """Count a push to set `name` refused for `reason` (a bounded label value)."""
        st = self.sets.get(name)
        if st is not None:
            st.push_refused[reason] += 1
            self.changed()

    # -- chunked work, as coroutines for the daemon and plain calls for tests and tools ------
    async def due_async(self, name: str, now: float) -> list[str]:
        found: list[str] = []
        await _run(self.sets[name].due_steps(now, found))
        return found

    def due(self, name: str, now: float) -> list[str]:
        """Pending tasks whose "not before" time has passed."""
        found: list[str] = []
        _drain(self.sets[name].due_steps(now, found))
        return found

    async def apply_poll_async(self, name: str, outcome: PollOutcome) -> None:
        await _run(self.sets[name].apply_steps(outcome))
        self.changed()

    def apply_poll(self, name: str, outcome: PollOutcome) -> None:
        """Apply one poll's statuses, counters and health."""
        _drain(self.sets[name].apply_steps(outcome))
        self.changed()

    async def forget_final_async(self, name: str, older_than: float, now: float) -> int:
        forgotten: list[str] = []
        await _run(self.sets[name].forget_steps(older_than, now, forgotten))
        if forgotten:
            self.changed()
        return len(forgotten)

    def forget_final(self, name: str, older_than: float, now: float) -> int:
        """Stop tracking final tasks last seen before `older_than`; each leaves a tombstone."""
        forgotten: list[str] = []
        _drain(self.sets[name].forget_steps(older_than, now, forgotten))
        if forgotten:
            self.changed()
        return len(forgotten)

    async def flush(self, name: str) -> None:
        """Save what changed in the set since the last flush (nothing to do without a sink).

        Saves run one at a time, in order, so a later snapshot is never overwritten by an
        earlier one; an acknowledged push waits for its own save."""
        if self.sink is None or name not in self.sets:
            return
        await self.restore(name)  # never save a set over its saved state before that is loaded
        async with self._saving:
            if self._keep is not None:
                await self.sink.drop_sets_except(self._keep)
                self._keep = None
            st = self.sets.get(name)
            if st is None:
                return
            ids, changes = dump.take_changes(st, whole=self.sink.rewrite_due(name, len(st.tasks)))

            async def chunks() -> AsyncIterator[list[RowGroup]]:
                for start in range(0, len(ids), SAVE_CHUNK):
                    yield dump.rows(st, ids[start : start + SAVE_CHUNK])

            try:
                await self.sink.save(changes, chunks())
            except BaseException:
                dump.give_back(st, ids, changes)
                raise

    async def close(self) -> None:
        """Save every set and close the sink. A set a shared store will not take now is left to
        its lease: its last changes are polled again by whoever holds it next."""
        for name in list(self.sets):
            try:
                await self.flush(name)
            except StoreUnavailable as err:
                log.warning("set %s not saved at stop: %s", name, err)
        if self.sink is not None:
            await self.sink.close()

    def handle(self, name: str) -> SetHandle:
        """The set as its runner holds it."""
        return SetHandle(self, name)


class SetHandle:
    """One set's state as its runner holds it: the store's work on that set, without its name."""

    def __init__(self, store: StateStore, name: str) -> None:
        self.store = store
        self.name = name

    @property
    def state(self) -> SetState:
        return self.store.sets[self.name]

    async def restore(self) -> None:
        await self.store.restore(self.name)

    def track(self, task_ids: Iterable[str], now: float, where: str) -> int:
        return self.store.track(self.name, task_ids, now, where)

    async def due(self, now: float) -> list[str]:
        return await self.store.due_async(self.name, now)

    async def apply(self, outcome: PollOutcome) -> None:
        await self.store.apply_poll_async(self.name, outcome)

    async def forget_final(self, older_than: float, now: float) -> int:
        return await self.store.forget_final_async(self.name, older_than, now)

    def expire_tombstones(self, task_ids: Iterable[str], still_listed: Collection[str], now: float) -> int:
        return self.state.tombstones.expire(task_ids, still_listed, now)

    async def flush(self) -> None:
        await self.store.flush(self.name)
