"""Value checks shared by the config readers: each records one problem line and returns a safe default.

Numbers must be finite (YAML's `.nan` and `.inf` are floats too), durations positive and
bounded, and every message shows at most a short excerpt of the value it refuses.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from exporter.core.secrets import Secret

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
MAX_DURATION = 366 * 86400.0  # a year: anything longer is a typo, and .inf never fires
MAX_SECRET_BYTES = 64 * 1024
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
RESERVED_LABELS = frozenset(
    {
        "provider",
        "task_set",
        "partition",
        "state",
        "status",
        "fault_code",
        "code",
        "result",
        "le",
        "task_id",
        "instance",
        "job",
        "version",
        "python_version",
    }
)


class Checks:
    """Mixed into a reader that has `path` (the file, for messages) and `problems`."""

    path: str
    problems: list[str]

    def bad(self, key: str, message: str) -> None:
        self.problems.append(f"{self.path}: {key}: {message}")

    def duration(
        self, key: str, raw: Any, minimum: float = 0.0, maximum: float = MAX_DURATION, positive: bool = False
    ) -> float:
        """Seconds from 30, 1.5, '30s', '5m', '1h', '2d'; finite, within [minimum, maximum], > 0 if `positive`."""
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            seconds = float(raw)
        else:
            m = DURATION.match(raw) if isinstance(raw, str) else None
            if not m:
                self.bad(key, f"expected a duration such as 30, '30s', '5m' or '1h', got {brief(raw)}")
                return max(minimum, 1.0)
            seconds = float(m.group(1)) * UNIT_SECONDS[m.group(2)]
        if not math.isfinite(seconds) or seconds < minimum or seconds > maximum or (positive and seconds <= 0):
            low = f"more than {minimum:g}" if positive and minimum == 0 else f"at least {minimum:g}"
            self.bad(key, f"expected a duration of {low} and at most {maximum:g} seconds, got {brief(raw)}")
            return max(minimum, 1.0)
        return seconds

    def integer(self, key: str, raw: Any, lo: int, hi: int) -> int:
        if not isinstance(raw, int) or isinstance(raw, bool) or not lo <= raw <= hi:
            self.bad(key, f"expected an integer from {lo} to {hi}, got {brief(raw)}")
            return lo
        return raw

    def number(self, key: str, raw: Any, lo: float, hi: float) -> float:
        if not isinstance(raw, (int, float)) or isinstance(raw, bool) or not math.isfinite(raw) or not lo <= raw <= hi:
            self.bad(key, f"expected a number from {lo:g} to {hi:g}, got {brief(raw)}")
            return lo
        return float(raw)

    def secret(self, key: str, value: Any) -> Secret | None:
        """{env: NAME} or {file: PATH}; a relative PATH is taken from the config file's folder."""
        if not isinstance(value, dict) or len(value) != 1 or not ({"env", "file"} & set(value)):
            self.bad(key, "expected {env: VARIABLE} or {file: PATH}; secrets are never written inline")
            return None
        if "env" in value:
            var = value["env"]
            if not isinstance(var, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", var):
                self.bad(f"{key}.env", f"expected an environment variable name, got {brief(var)}")
                return None
            if not os.environ.get(var, "").strip():
                self.bad(f"{key}.env", f"environment variable {var} is not set or empty")
                return None
            return Secret(os.environ[var].strip())
        if not isinstance(value["file"], str) or not value["file"]:
            self.bad(f"{key}.file", f"expected a file path, got {brief(value['file'])}")
            return None
        file = Path(self.path).parent / value["file"]
        try:
            with open(file, "rb") as f:
                data = f.read(MAX_SECRET_BYTES + 1)
        except OSError as err:
            self.bad(f"{key}.file", f"cannot read {file}: {err.strerror or err}")
            return None
        if len(data) > MAX_SECRET_BYTES:
            self.bad(f"{key}.file", f"{file} is larger than {MAX_SECRET_BYTES // 1024} KiB; expected one secret")
            return None
        try:
            text = data.decode("utf-8").strip()
        except UnicodeDecodeError as err:
            self.bad(f"{key}.file", f"{file}: byte {err.start}: not UTF-8 (expected the secret as UTF-8 text)")
            return None
        if not text:
            self.bad(f"{key}.file", f"{file} is empty")
            return None
        return Secret(text)


def kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def brief(value: Any) -> str:
    """A short repr for messages: a value read from a hostile file may be huge."""
    if isinstance(value, (dict, list, tuple, set)):
        return f"a {kind(value)}" if value else f"an empty {kind(value)}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def keyname(key: Any) -> str:
    """A key as shown in a key path: plain if it is a plain word, else quoted; one line, short."""
    text = str(key)
    if not re.fullmatch(r"[\w.:-]{1,60}", text):
        text = repr(text)
        text = text if len(text) <= 60 else text[:57] + "..."
    return text


def closest(word: str, choices: Sequence[str]) -> str | None:
    """The choice most like `word` (for a did-you-mean), if any is close."""
    match = difflib.get_close_matches(word, choices, n=1)
    return match[0] if match else None
