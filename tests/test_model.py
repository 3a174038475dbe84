"""Statuses decoded when read: a sequence like any other, built one at a time."""

from __future__ import annotations

import pytest

from exporter.core.model import APART, FetchResult, LazyStatuses, StatusPage, TaskState, TaskStatus


def statuses() -> tuple[LazyStatuses, list[str]]:
    decoded: list[str] = []

    def decode(task_id: str, item: str) -> TaskStatus:
        decoded.append(task_id)
        return TaskStatus(task_id, TaskState.DONE, item)

    tail = [TaskStatus("c", TaskState.NOT_FOUND, "")]
    return LazyStatuses([("a", "Done"), ("b", "Ready")], decode, tail), decoded


def test_reads_like_a_sequence_of_the_items_then_the_tail():
    lazy, _ = statuses()
    assert len(lazy) == 3
    assert [(s.task_id, s.provider_status) for s in lazy] == [("a", "Done"), ("b", "Ready"), ("c", "")]
    assert lazy[1].task_id == "b" and lazy[-1].task_id == "c" and lazy[-3].task_id == "a"
    assert [s.task_id for s in lazy[1:]] == ["b", "c"]
    for index in (3, -4):
        with pytest.raises(IndexError):
            lazy[index]


def test_statuses_are_built_only_when_read_and_ids_need_none():
    lazy, decoded = statuses()
    result = FetchResult(lazy)
    assert list(result.task_ids()) == ["a", "b", "c"]
    assert decoded == []
    first = next(iter(lazy))
    assert first.task_id == "a" and decoded == ["a"]


def test_ids_of_built_statuses():
    assert list(FetchResult([TaskStatus("x", TaskState.PENDING, "")]).task_ids()) == ["x"]


def test_a_status_page_reads_like_the_statuses_it_keeps():
    def decode(task_id: str, raw: str, fault: str | None) -> TaskStatus:
        return TaskStatus(task_id, TaskState.ERROR if fault else TaskState.PENDING, raw, fault_code=fault or "")

    page = StatusPage(
        ["7", "8", "9"], bytes([0, APART, 1]), [("Pending", None), ("Done", None)], decode, {1: ("Error", "5004")}
    )
    assert len(page) == 3
    assert [(s.task_id, s.provider_status, s.fault_code) for s in page] == [
        ("7", "Pending", ""),
        ("8", "Error", "5004"),
        ("9", "Done", ""),
    ]
    assert page[-2].fault_code == "5004" and [s.task_id for s in page[1:]] == ["8", "9"]
    assert list(FetchResult(page).task_ids()) == ["7", "8", "9"]
    with pytest.raises(IndexError):
        page[3]
