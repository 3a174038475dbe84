"""Where a task set's IDs come from: the config and files that are re-read when they change."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from exporter.core.config import TaskSource

log = logging.getLogger(__name__)

IdsFrom = tuple[str, Iterable[str]]  # where the IDs came from (for log lines), and the IDs
LINES_AT_ONCE = 1 << 20  # characters of a file split into lines at a time


class TaskIdSource:
    """Yields the IDs a set should track; files are re-read only when their mtime or size changes."""

    def __init__(self, source: TaskSource, set_name: str) -> None:
        self.source = source
        self.set_name = set_name
        self._stamps: dict[Path, tuple[float, int]] = {}
        self._broken: set[Path] = set()
        self._config_read = False

    def read(self) -> list[IdsFrom]:
        """IDs to track now: config IDs on the first call, then new or changed files' IDs."""
        found: list[IdsFrom] = []
        if not self._config_read and self.source.ids:
            found.append(("the config", list(self.source.ids)))
        self._config_read = True
        for path in self.source.files:
            text = self._read_file(path)
            if text:
                found.append((f"file {path}", _ids(text)))
        return found

    def listed(self) -> set[str]:
        """Every ID the config and the files list now (blocking file reads: call it off the event loop)."""
        ids = set(self.source.ids)
        for path in self.source.files:
            try:
                ids.update(_ids(path.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError):
                continue  # an unreadable file lists nothing; its read() logs why
        return ids

    def _read_file(self, path: Path) -> str:
        """The file's text if it is new or changed since it was last read, else ""."""
        try:
            stat = path.stat()
            stamp = (stat.st_mtime, stat.st_size)
            if self._stamps.get(path) == stamp:
                return ""
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            if path not in self._broken:
                why = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
                log.warning("cannot read task IDs of set %s from %s: %s", self.set_name, path, why)
                self._broken.add(path)
            return ""
        if path in self._broken:
            log.info("reading task IDs of set %s from %s again", self.set_name, path)
            self._broken.discard(path)
        self._stamps[path] = stamp
        return text


def _ids(text: str) -> Iterator[str]:
    """One ID per line; blank lines and '#' comments are skipped. Split a part at a time, as the
    IDs are tracked: the strings of IDs tracked already (most, once a file changes) are freed at
    once, not all held until the last line is read."""
    start = 0
    while start < len(text):
        end = text.find("\n", start + LINES_AT_ONCE)
        end = len(text) if end < 0 else end + 1  # a part ends after a newline: no line is cut in two
        for line in text[start:end].splitlines():
            task_id = line.strip()
            if task_id and not task_id.startswith("#"):
                yield task_id
        start = end
