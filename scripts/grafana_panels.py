"""Grafana 10+ dashboard JSON from small panel tables: one datasource variable, a flow layout,
the same field defaults everywhere. Used by grafana_dashboards.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from exporter.core.provider import CounterSpec
from exporter.providers import PROVIDERS

DS = {"type": "prometheus", "uid": "${datasource}"}
TAGS = ["upload-status", "upload-status-exporter"]
SCHEMA_VERSION = 39

GREEN: list[tuple[str, float | None]] = [("green", None)]
ONE_IS_BAD = [("green", None), ("red", 1)]
UP_DOWN_MAPPING = [
    {
        "type": "value",
        "options": {
            "0": {"text": "down", "color": "red", "index": 0},
            "1": {"text": "up", "color": "green", "index": 1},
        },
    }
]


@dataclass
class P:
    """One panel: its kind, texts, unit, queries ((expr, legend) pairs) and size."""

    kind: str  # stat, timeseries, bargauge, state-timeline, table
    title: str
    description: str
    unit: str
    queries: Sequence[tuple[str, str]]
    w: int = 8
    h: int = 8
    steps: Sequence[tuple[str, float | None]] = field(default_factory=lambda: GREEN)
    stack: bool = False
    minmax: tuple[float, float] | None = None
    instant: bool = False
    bars: bool = False
    decimals: int | None = None
    mappings: list[dict[str, Any]] = field(default_factory=list)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # merged into the panel as is


def thresholds(steps: Sequence[tuple[str, float | None]]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


def target(expr: str, legend: str, ref: str, instant: bool, table: bool) -> dict[str, Any]:
    t: dict[str, Any] = {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "refId": ref,
    }
    if table:
        t["format"] = "table"
    return t


def render_panel(p: P, pid: int, x: int, y: int) -> dict[str, Any]:
    table = p.kind == "table"
    defaults: dict[str, Any] = {
        "unit": p.unit,
        "thresholds": thresholds(p.steps),
        "mappings": p.mappings,
        "color": {"mode": "palette-classic" if p.kind == "timeseries" else "thresholds"},
    }
    if p.minmax:
        defaults["min"], defaults["max"] = p.minmax
    if p.decimals is not None:
        defaults["decimals"] = p.decimals
    legend = {"showLegend": True, "displayMode": "list", "placement": "bottom", "calcs": []}
    options: dict[str, Any] = {"legend": legend, "tooltip": {"mode": "multi", "sort": "desc"}}
    if p.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "bars" if p.bars else "line",
            "lineWidth": 1,
            "fillOpacity": 60 if p.bars else 20 if p.stack else 5,
            "showPoints": "never",
            "spanNulls": False,
            "axisSoftMin": 0,
            "stacking": {"mode": "normal" if p.stack else "none", "group": "A"},
            "thresholdsStyle": {"mode": "off" if len(p.steps) == 1 else "line"},
        }
    elif p.kind in ("stat", "bargauge"):
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal" if p.kind == "bargauge" else "auto",
        }
        if p.kind == "stat":
            options.update(colorMode="value", graphMode="area", justifyMode="auto", textMode="auto")
        else:
            options.update(displayMode="gradient", showUnfilled=True, valueMode="color")
    elif p.kind == "state-timeline":
        defaults["mappings"] = UP_DOWN_MAPPING
        defaults["custom"] = {"fillOpacity": 80, "lineWidth": 0}
        options.update(mergeValues=True, showValue="never", alignValue="left", rowHeight=0.9)
    elif table:
        defaults["custom"] = {"align": "auto", "cellOptions": {"type": "auto"}}
        options = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"]}}
    refs = "ABCDEFGH"
    panel: dict[str, Any] = {
        "type": p.kind,
        "id": pid,
        "title": p.title,
        "description": p.description,
        "datasource": DS,
        "gridPos": {"h": p.h, "w": p.w, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": p.overrides},
        "options": options,
        "targets": [target(e, legend, refs[i], p.instant or table, table) for i, (e, legend) in enumerate(p.queries)],
    }
    panel.update(p.extra)
    return panel


def layout(rows: Sequence[tuple[str, Sequence[P]]]) -> list[dict[str, Any]]:
    """Rows of panels, left to right, wrapping at Grafana's 24 columns."""
    panels: list[dict[str, Any]] = []
    pid, y = 1, 0
    for row_title, row_panels in rows:
        panels.append(
            {
                "type": "row",
                "id": pid,
                "title": row_title,
                "collapsed": False,
                "panels": [],
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
            }
        )
        pid, y, x, row_h = pid + 1, y + 1, 0, 0
        for p in row_panels:
            if x + p.w > 24:
                x, y, row_h = 0, y + row_h, 0
            panels.append(render_panel(p, pid, x, y))
            pid, x, row_h = pid + 1, x + p.w, max(row_h, p.h)
        y += row_h
    return panels


def variable_ds() -> dict[str, Any]:
    return {
        "type": "datasource",
        "name": "datasource",
        "label": "Data source",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "options": [],
        "skipUrlSync": False,
    }


def variable_query(name: str, label: str, query: str, *, multi: bool) -> dict[str, Any]:
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]} if multi else {},
        "hide": 0,
        "regex": "",
        "options": [],
        "skipUrlSync": False,
    }


def dashboard(
    uid: str, title: str, description: str, rows: Sequence[tuple[str, Sequence[P]]], variables: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": TAGS,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "id": None,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "timezone": "",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [
            {
                "type": "dashboards",
                "title": "Upload status",
                "tags": ["upload-status"],
                "asDropdown": False,
                "includeVars": True,
                "keepTime": True,
                "icon": "external link",
                "targetBlank": False,
                "tooltip": "",
                "url": "",
            }
        ],
        "templating": {"list": variables},
        "panels": layout(rows),
    }


def st(states: str) -> str:
    """The matcher of one state or a `|` list of states."""
    return f'state=~"{states}"' if "|" in states else f'state="{states}"'


class Selector:
    """Builds `metric{matchers}` with the dashboard's filters (none on the overview)."""

    def __init__(self, *filters: str) -> None:
        self.filters = filters

    def __call__(self, metric: str, *more: str) -> str:
        matchers = [*self.filters, *more]
        return f"{metric}{{{', '.join(matchers)}}}" if matchers else metric


def stat(title: str, description: str, unit: str, expr: str, **kw: Any) -> P:
    return P("stat", title, description, unit, [(expr, "")], w=kw.pop("w", 4), h=4, **kw)


def override(name: str, **props: Any) -> dict[str, Any]:
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [{"id": k.replace("_", "."), "value": v} for k, v in props.items()],
    }


def provider_counters() -> list[tuple[str, CounterSpec]]:
    """Every provider-specific counter, as its provider declares it."""
    return [(name, spec) for name, provider in sorted(PROVIDERS.items()) for spec in provider.counters]


def counter_panel(provider: str, spec: CounterSpec, by: str, legend: str, rate: str) -> P:
    labels = [spec.label] if spec.label else []
    return P(
        "timeseries",
        spec.title or spec.name,
        f"{spec.help} Per second; {provider} only.",
        spec.unit,
        [(f"sum by ({', '.join([by, *labels])}) ({rate})", legend + "".join(f" {{{{{label}}}}}" for label in labels))],
    )
