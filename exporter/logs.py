"""Log formats in the Prometheus exporters' style: logfmt (default) or JSON, one line a record."""

from __future__ import annotations

import json
import logging
import sys
import time

from exporter.core.secrets import RedactingFilter


def _ts(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _logfmt_value(value: str) -> str:
    if value and not any(c in value for c in ' ="\n\t\\'):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _fields(record: logging.LogRecord) -> dict[str, str]:
    fields = {"ts": _ts(record), "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
    if record.exc_text:
        fields["err"] = record.exc_text
    return fields


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in _fields(record).items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), ensure_ascii=False)


def setup(level: str, fmt: str) -> None:
    """Log to stderr in `fmt` at `level`; secrets are masked in every record."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
