"""Task IDs read from the config and from files, as they are tracked."""

from __future__ import annotations

import pytest

from exporter.core import sources
from exporter.core.settings import TaskSource
from exporter.core.sources import TaskIdSource

TEXT = "a1\r\n  b2  \n\n# a comment\n   # another\nc3\rd4\n" + "".join(f"id{i}\n" for i in range(40)) + "last"
WANTED = ["a1", "b2", "c3", "d4", *(f"id{i}" for i in range(40)), "last"]


@pytest.mark.parametrize("at_once", [1, 3, 7, 1 << 20])
def test_a_file_read_a_part_at_a_time_gives_every_id_of_its_lines(tmp_path, monkeypatch, at_once):
    monkeypatch.setattr(sources, "LINES_AT_ONCE", at_once)  # parts ending mid-line, after \r, after \r\n
    path = tmp_path / "ids"
    path.write_bytes(TEXT.encode())
    source = TaskIdSource(TaskSource(ids=("cfg",), files=(path,)), "s")
    found = [(where, list(ids)) for where, ids in source.read()]
    assert found == [("the config", ["cfg"]), (f"file {path}", WANTED)]
    assert source.listed() == {"cfg", *WANTED}
    assert source.read() == []  # unchanged since: not read again
    path.write_text("# nothing but a comment\n")
    assert [(where, list(ids)) for where, ids in source.read()] == [(f"file {path}", [])]
