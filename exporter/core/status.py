"""What the landing page and GET /api/v1/status say about each task set.

Error messages are already built to be safe (host and path only), and are redacted again
here: known secrets masked, URL userinfo removed, and cut to a bounded length.
"""

from __future__ import annotations

import html
from typing import Any

from exporter import __version__
from exporter.core import partitions
from exporter.core.config import Config
from exporter.core.secrets import redact, redact_userinfo
from exporter.core.selfmetrics import ReloadStatus
from exporter.core.state import StateStore

MAX_ERROR_CHARS = 300


def safe_message(text: str) -> str:
    """A message fit to show: secrets masked, `user:password@` dropped from URLs, bounded."""
    text = redact_userinfo(redact(text))
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def status_document(config: Config, store: StateStore, reload: ReloadStatus, now: float) -> dict[str, Any]:
    """The JSON status: the config's reload state and, per task set, health, errors and freshness."""
    sets = []
    for ts, unit in [(t, unit) for t in config.task_sets for unit in partitions.units(t)]:
        st = store.sets.get(unit)  # absent: not polled by this process (yet)
        last_success = st.last_success if st else None
        sets.append(
            {
                "name": unit,
                "provider": ts.provider,
                "health": "waiting" if st is None or not st.polled else ("up" if st.up else "down"),
                "tracked_tasks": len(st.tasks) if st else 0,
                "last_success_timestamp_seconds": last_success,
                "last_success_age_seconds": None if last_success is None else round(max(0.0, now - last_success), 3),
                "last_error": safe_message(st.last_error) if st and st.last_error else None,
                "last_error_timestamp_seconds": st.last_error_time if st else None,
            }
        )
    return {
        "version": __version__,
        "config": {
            "path": config.path,
            "last_reload_successful": reload.successful,
            "last_reload_success_timestamp_seconds": reload.last_success,
        },
        "task_sets": sets,
    }


def _age(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.0f}s ago"


def landing_page(config: Config, store: StateStore, reload: ReloadStatus, telemetry_path: str, now: float) -> str:
    """A small HTML page: links, the reload state and one row per task set."""
    doc = status_document(config, store, reload, now)
    rows = []
    for s in doc["task_sets"]:
        error = s["last_error"] or ""
        if error and s["last_error_timestamp_seconds"] is not None:
            error = f"{error} ({_age(now - s['last_error_timestamp_seconds'])})"
        rows.append(
            f"<tr><td>{html.escape(s['name'])}</td><td>{html.escape(s['provider'])}</td>"
            f"<td>{s['health']}</td><td>{s['tracked_tasks']}</td>"
            f"<td>{_age(s['last_success_age_seconds'])}</td><td>{html.escape(error)}</td></tr>"
        )
    reload_state = "ok" if reload.successful else "FAILED (the previous config keeps running; see the log)"
    metrics = html.escape(telemetry_path, quote=True)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>upload-status-exporter</title></head>
<body><h1>upload-status-exporter {html.escape(__version__)}</h1>
<p><a href="{metrics}">Metrics</a> &middot; <a href="/api/v1/status">Status (JSON)</a> &middot;
<a href="/-/healthy">Health</a> &middot; <a href="/-/ready">Readiness</a></p>
<p>Last configuration load: {reload_state}</p>
<table border="1" cellpadding="4"><tr><th>task set</th><th>provider</th><th>poll</th><th>tracked tasks</th>
<th>last success</th><th>last error</th></tr>{"".join(rows)}</table></body></html>"""
