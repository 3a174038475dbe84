"""The collector settings the daemon applies once start-up is done."""

from __future__ import annotations

import gc
import weakref

import pytest

from exporter.core import memory


class Node:
    def __init__(self) -> None:
        self.peer: Node | None = None


@pytest.fixture
def restore_collector():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_start_up_objects_are_frozen_and_cycles_made_later_are_still_collected(restore_collector):
    memory.tune_collector()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == memory.YOUNG_GENERATION

    cycle = Node()
    cycle.peer = Node()
    cycle.peer.peer = cycle
    dead = weakref.ref(cycle)
    del cycle
    gc.collect()
    assert dead() is None


def test_collection_waits_while_polls_run_and_comes_back_after_the_last():
    assert gc.isenabled()
    with memory.collector_paused():
        assert not gc.isenabled()
        with memory.collector_paused():  # another set's poll
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), memory.collector_paused():
        raise RuntimeError("a poll that failed")
    assert gc.isenabled()


def test_polls_that_always_overlap_still_have_young_objects_collected(monkeypatch):
    collected: list[int] = []
    monkeypatch.setattr(memory.gc, "collect", lambda generation=2: collected.append(generation) or 0)
    monkeypatch.setattr(memory, "MAX_PAUSE_SECONDS", 0.0)
    with memory.collector_paused():
        with memory.collector_paused():
            pass
        assert collected == [1] and not gc.isenabled()
    assert gc.isenabled()
