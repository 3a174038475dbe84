"""The Prometheus alert rules as a table, rendered to grafana/alerts/upload-status.rules.yml by grafana_mixin.py.

Every expression selects its series through `Mixin.sel` (the configurable job selector) and
every runbook_url is `Mixin.runbook_base_url` plus the alert's anchor, like a monitoring mixin.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass
from typing import Any

import yaml
from grafana_config import ETA_LIMIT_S, STALE_POLL_S, Mixin

from exporter.providers import PROVIDERS

HEADER = """\
# Prometheus alert rules for upload-status-exporter.
# Written by scripts/grafana_mixin.py (job selector {selector!r}, runbook {runbook}): edit it, not this file.
#
# Every rule reads only the exporter's metric contract (docs/runbook.md says what each
# alert means and what to do) and works for every provider through the `provider` label.
# Rules keep the series' own labels (task set labels such as `team` included) so
# Alertmanager can route on them; the example routes by severity and groups by
# provider and task_set (grafana/alertmanager.example.yml).
#
# Severities: critical pages someone (uploads are failing or nothing is being watched);
# warning opens a ticket (something needs a look today).
# Thresholds are starting points: tune them to your upload volumes and durations.
# Unit tests: promtool test rules grafana/alerts/upload-status.rules.test.yml
"""


@dataclass(frozen=True)
class Rule:
    alert: str
    comment: str
    expr: str
    for_: str | None
    severity: str
    summary: str
    description: str


def task_rules(m: Mixin) -> list[Rule]:
    s = m.s
    failed = s("upload_tasks_failed_total")
    failed_1h = f"sum without (fault_code) (increase({failed}[1h]))"
    done_1h = f"increase({s('upload_tasks_completed_total')}[1h])"
    return [
        Rule(
            "UploadTasksFailed",
            "Tasks of a set kept failing: failures in each 5-minute window for 10 minutes, one alert per\n"
            "set (not per fault code). A single failure, or one burst, does not fire. A counter series that\n"
            "first appears already at 1 has no increase, so a fault code seen for the first time counts\n"
            "through the second clause (the exporter was scraped 5 minutes ago and the series did not exist).",
            f"""sum without (fault_code) (
  increase({failed}[5m]) > 0
  or
  (
    ({failed} > 0 unless {failed} offset 5m)
    and on (job, instance) (up{{{m.sel}}} offset 5m == 1)
  )
)""",
            "10m",
            "warning",
            "Uploads keep failing in {{ $labels.provider }} set {{ $labels.task_set }}",
            '{{ printf "%.0f" $value }} upload task(s) of task set {{ $labels.task_set }} at provider '
            "{{ $labels.provider }} failed in the last 5 minutes, and failures went on for 10 minutes. "
            "The fault codes are on the dashboards (upload_tasks_failed_total by fault_code); the provider's "
            "fault message is in the exporter's debug log.",
        ),
        Rule(
            "UploadFailureRatioHigh",
            "More than 20% of the tasks that finished in the last hour failed, over at least 10 tasks.",
            f"""(
  {failed_1h}
  /
  ({failed_1h} + {done_1h})
) > 0.2
and
({failed_1h} + {done_1h}) >= 10""",
            "15m",
            "critical",
            "{{ $value | humanizePercentage }} of uploads fail in {{ $labels.provider }} set {{ $labels.task_set }}",
            "{{ $value | humanizePercentage }} of the upload tasks of task set {{ $labels.task_set }} at provider "
            "{{ $labels.provider }} that finished in the last hour failed (threshold 20%). "
            "The failures by fault code are on the upload-status dashboards.",
        ),
        Rule(
            "UploadBacklogStuck",
            "Tasks are pending but none finished (done or error) in the last hour.",
            f"""{s("upload_tasks", 'state="pending"')} > 0
unless ignoring (state) increase({s("upload_tasks_completed_total")}[1h]) > 0
unless ignoring (state) {failed_1h} > 0""",
            "30m",
            "warning",
            "Upload backlog stuck in {{ $labels.provider }} set {{ $labels.task_set }}",
            '{{ printf "%.0f" $value }} upload task(s) of task set {{ $labels.task_set }} at provider '
            "{{ $labels.provider }} are pending and none finished in the last 1h30m.",
        ),
        Rule(
            "UploadBacklogEtaHigh",
            "The pending tasks are not expected to finish within 4 hours.",
            f"{s('upload_tasks_eta_seconds')} > {ETA_LIMIT_S // 3600} * 3600",
            "30m",
            "warning",
            "Upload backlog of {{ $labels.provider }} set {{ $labels.task_set }} needs {{ $value | humanizeDuration }}",
            "The pending upload tasks of task set {{ $labels.task_set }} at provider {{ $labels.provider }} "
            "are expected to finish in {{ $value | humanizeDuration }}, over the 4h limit, for 30 minutes.",
        ),
    ]


def polling_rules(m: Mixin) -> list[Rule]:
    s = m.s
    last = s("upload_poll_last_success_timestamp_seconds")
    throttled = "\n    or ".join(
        f"rate({s('upload_provider_api_errors_total', 'provider=' + json.dumps(p), c)}[10m])"
        for p, c in throttling_matchers().items()
    )
    return [
        Rule(
            "UploadPollDown",
            "",
            f"{s('upload_poll_up')} == 0",
            "15m",
            "warning",
            "Polling {{ $labels.provider }} set {{ $labels.task_set }} fails",
            "Every poll of task set {{ $labels.task_set }} at provider {{ $labels.provider }} failed for "
            "15 minutes; its metrics show the last known state. The exporter logged why when the set went down.",
        ),
        Rule(
            "UploadPollStale",
            "The last successful poll is over an hour old; 0 means the set never succeeded, and then the\n"
            "time counted is how long the exporter has been running without a success.",
            f"""time() - ({last} > 0) > {STALE_POLL_S}
or
({last} == 0)
+ on (job, instance) group_left ()
(time() - process_start_time_seconds{{{m.sel}}}) > {STALE_POLL_S}""",
            "5m",
            "critical",
            "No successful poll of {{ $labels.provider }} set {{ $labels.task_set }} for "
            "{{ $value | humanizeDuration }}",
            "The last successful poll of task set {{ $labels.task_set }} at provider {{ $labels.provider }} "
            "was {{ $value | humanizeDuration }} ago, or it never succeeded in that time since the exporter "
            "started (limit 1h): its upload counts and ETAs are out of date or missing.",
        ),
        Rule(
            "UploadProviderRequestsRefused",
            "The API answers, but with an error code, and no call succeeded in 15 minutes while\n"
            "the set is down: refused credentials or permissions (the usual cause) or a request\n"
            "the API rejects. Auth failures are not retried, so they show as a steady trickle.",
            f"""increase({s("upload_provider_api_errors_total")}[15m]) > 0
unless on (job, instance, provider, task_set) increase({s("upload_provider_requests_total", 'result="ok"')}[15m]) > 0
and on (job, instance, provider, task_set) {s("upload_poll_up")} == 0""",
            "5m",
            "critical",
            "{{ $labels.provider }} refuses every call of set {{ $labels.task_set }} (API error {{ $labels.code }})",
            "Task set {{ $labels.task_set }} is down: its calls to provider {{ $labels.provider }} keep ending in "
            "API error code {{ $labels.code }} and none succeeded in the last 15 minutes. Usually the credentials "
            "or their permissions were refused; the exporter's log line says what to fix.",
        ),
        Rule(
            "UploadProviderThrottled",
            "Share of calls answered with the provider's throttling codes, as each provider declares\n"
            "them (exporter/providers: ErrorCodes.throttling). HTTP 429 without a code is counted as\n"
            'result="http_error" and shows on the dashboards.',
            f"""(
  sum without (code) (
    {throttled}
  )
  /
  sum without (result) (rate({s("upload_provider_requests_total")}[10m]))
) > 0.1""",
            "15m",
            "warning",
            "{{ $labels.provider }} throttles set {{ $labels.task_set }} ({{ $value | humanizePercentage }} of calls)",
            "{{ $value | humanizePercentage }} of the calls of task set {{ $labels.task_set }} to provider "
            "{{ $labels.provider }} were throttled over the last 10 minutes, for 15 minutes. Polls are slowed "
            "down and statuses arrive late.",
        ),
    ]


def exporter_rules(m: Mixin) -> list[Rule]:
    return [
        Rule(
            "UploadExporterDown",
            "",
            f"up{{{m.sel}}} == 0\nor\nabsent(up{{{m.sel}}})",
            "5m",
            "critical",
            "upload-status-exporter{{ with $labels.instance }} {{ . }}{{ end }} is down",
            "Prometheus could not scrape upload-status-exporter {{ with $labels.instance }}at {{ . }}{{ else }}"
            "(no target of job upload-status-exporter at all){{ end }} for 5 minutes: no upload is being "
            "watched and no other upload alert can fire.",
        ),
        Rule(
            "UploadConfigReloadFailed",
            "The last configuration load (SIGHUP or POST /-/reload) failed: the exporter runs the\n"
            "previous configuration, and the next restart would fail on the file as it is.",
            f"upload_config_last_reload_successful{{{m.sel}}} == 0",
            "5m",
            "warning",
            "upload-status-exporter {{ $labels.instance }} could not reload its configuration",
            "The last configuration reload of upload-status-exporter at {{ $labels.instance }} failed 5 or more "
            "minutes ago: it keeps running the previous configuration, and a restart would fail. The exporter "
            "logged every problem of the file (file, key path, what was expected).",
        ),
    ]


def groups(m: Mixin) -> list[tuple[str, list[Rule]]]:
    return [
        ("upload-status.tasks", task_rules(m)),
        ("upload-status.polling", polling_rules(m)),
        ("upload-status.exporter", exporter_rules(m)),
    ]


def _wrap(text: str) -> list[str]:
    """Lines of at most about 100 characters, never breaking inside a `{{ template }}`."""
    glued = re.sub(r"\{\{.*?\}\}", lambda m: m.group(0).replace(" ", "\x00"), text)
    return [line.replace("\x00", " ") for line in textwrap.wrap(glued, 100, break_on_hyphens=False)]


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def render(m: Mixin) -> str:
    out = [HEADER.format(selector=m.sel, runbook=m.runbook_base_url), "groups:"]
    for name, rules in groups(m):
        out += [f"  - name: {name}", "    rules:"]
        for r in rules:
            out.append(f"      - alert: {r.alert}")
            out += [f"        # {line}" for line in r.comment.splitlines()]
            out.append("        expr: |")
            out += [f"          {line}" for line in r.expr.splitlines()]
            if r.for_:
                out.append(f"        for: {r.for_}")
            out += [
                "        labels:",
                f"          severity: {r.severity}",
                "        annotations:",
                f"          summary: {_q(r.summary)}",
                "          description: >-",
            ]
            out += [f"            {line}" for line in _wrap(r.description)]
            out += [f"          runbook_url: {_q(m.runbook(r.alert))}", ""]
        out.append("")
    text = "\n".join(out).rstrip("\n") + "\n"
    _self_check(text, m)
    return text


def _self_check(text: str, m: Mixin) -> None:
    """The YAML must read back as exactly the table (quoting, folding and indentation)."""
    doc: dict[str, Any] = yaml.safe_load(text)
    back = [
        (
            g["name"],
            r["alert"],
            r["expr"].rstrip("\n"),
            r.get("for"),
            r["annotations"]["summary"],
            r["annotations"]["description"],
        )
        for g in doc["groups"]
        for r in g["rules"]
    ]
    want = [(name, r.alert, r.expr, r.for_, r.summary, r.description) for name, rules in groups(m) for r in rules]
    assert back == want, "the rules YAML does not read back as the table"


def throttling_matchers() -> dict[str, str]:
    """Each provider's throttling codes as a PromQL label matcher, from the provider's own table."""
    out = {}
    for name, provider in sorted(PROVIDERS.items()):
        codes = sorted(provider.errors.throttling)
        if len(codes) == 1:
            out[name] = f"code={json.dumps(codes[0])}"
        elif codes:
            out[name] = f"code=~{json.dumps('|'.join(re.escape(c) for c in codes))}"
    return out
