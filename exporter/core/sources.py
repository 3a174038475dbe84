"""Where a task set's IDs come from: the config and files that are re-read when they change."""

from __future__ import annotations

import logging
from pathlib import Path

from exporter.core.config import TaskSource

log = logging.getLogger(__name__)

IdsFrom = tuple[str, list[str]]  # where the IDs came from (for log lines), and the IDs


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
            ids = self._read_file(path)
            if ids:
                found.append((f"file {path}", ids))
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

    def _read_file(self, path: Path) -> list[str]:
        try:
            stat = path.stat()
            stamp = (stat.st_mtime, stat.st_size)
            if self._stamps.get(path) == stamp:
                return []
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            if path not in self._broken:
                why = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
                log.warning("cannot read task IDs of set %s from %s: %s", self.set_name, path, why)
                self._broken.add(path)
            return []
        if path in self._broken:
            log.info("reading task IDs of set %s from %s again", self.set_name, path)
            self._broken.discard(path)
        self._stamps[path] = stamp
        return _ids(text)


def _ids(text: str) -> list[str]:
    """One ID per line; blank lines and '#' comments are skipped."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
