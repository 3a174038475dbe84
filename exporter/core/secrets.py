"""Secret values: read from the environment or a file, never printed.

Every secret read is registered so the log redaction filter can mask it wherever it
turns up, as a second line of defence behind messages that never include it.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback

_known: set[str] = set()
_lock = threading.Lock()
MASK = "***"
# scheme://user:password@host: the user-info part of any URL, wherever it is quoted.
URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]*@")


class Secret:
    """A credential. `str()` and `repr()` show a mask; `reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        if len(value) >= 4:  # masking shorter strings would mangle ordinary words
            with _lock:
                _known.add(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def redact(text: str) -> str:
    """Mask every known secret in `text`, and the credentials of every URL in it."""
    if "@" in text:
        text = URL_USERINFO.sub(rf"\1{MASK}@", text)
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    return text


USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]*@")


def redact_userinfo(text: str) -> str:
    """`http://user:secret@host:3128` -> `http://***@host:3128`, wherever a URL turns up in `text`."""
    return USERINFO.sub(r"\1***@", text)


class RedactingFilter(logging.Filter):
    """Masks known secrets in the final message and any exception text of a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact_userinfo(redact(message))
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact_userinfo(redact("".join(traceback.format_exception(*record.exc_info))))
            record.exc_info = None
        return True
