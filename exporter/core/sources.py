"""Where a task set's IDs come from: the config and files that are re-read when they change."""

from __future__ import annotations

import logging
from pathlib import Path

from exporter.core.config import TaskSource

log = logging.getLogger(__name__)


class TaskIdSource:
    """Yields the IDs a set should track; files are re-read only when their mtime or size changes."""

    def __init__(self, source: TaskSource, set_name: str) -> None:
        self.source = source
        self.set_name = set_name
        self._stamps: dict[Path, tuple[float, int]] = {}
        self._broken: set[Path] = set()
        self._config_read = False

    def read(self) -> list[str]:
        """IDs to track now: config IDs on the first call, then new or changed files' IDs."""
        ids: list[str] = [] if self._config_read else list(self.source.ids)
        self._config_read = True
        for path in self.source.files:
            ids.extend(self._read_file(path))
        return ids

    def _read_file(self, path: Path) -> list[str]:
        try:
            stat = path.stat()
            stamp = (stat.st_mtime, stat.st_size)
            if self._stamps.get(path) == stamp:
                return []
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            if path not in self._broken:
                log.warning("cannot read task IDs of set %s from %s: %s", self.set_name, path, err.strerror)
                self._broken.add(path)
            return []
        if path in self._broken:
            log.info("reading task IDs of set %s from %s again", self.set_name, path)
            self._broken.discard(path)
        self._stamps[path] = stamp
        # One ID per line; blank lines and '#' comments are skipped.
        return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
