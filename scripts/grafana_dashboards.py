#!/usr/bin/env python3
"""Writes grafana/dashboards/*.json from the panel tables below (panel building blocks: grafana_panels.py).

    python3 scripts/grafana_dashboards.py          # write the dashboards
    python3 scripts/grafana_dashboards.py --check  # exit 1 when the JSON is out of date

Edit the tables here, not the JSON: every panel gets the same datasource, layout and
field defaults, and the tests check the JSON is what this script writes. Panels read
only the metric contract (docs and exporter/core/metrics.py) and split by the
`provider` label, so a new provider shows up without a dashboard change.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grafana_panels import (
    ONE_IS_BAD,
    UP_DOWN_MAPPING,
    P,
    Selector,
    dashboard,
    override,
    st,
    stat,
    thresholds,
    variable_ds,
    variable_query,
)

OUT = Path(__file__).resolve().parent.parent / "grafana" / "dashboards"
# Thresholds shared with grafana/alerts/upload-status.rules.yml.
ETA_LIMIT_S = 4 * 3600
STALE_POLL_S = 3600
FAILURE_RATIO = 0.2


def weighted_progress(q: Selector) -> str:
    """Progress over all tasks: each set's mean progress weighted by its tracked tasks."""
    return (f"sum({q('upload_tasks_progress_ratio')} * sum without (state) ({q('upload_tasks')}))"
            f" / sum({q('upload_tasks')})")


def failure_ratio(q: Selector, by: str, window: str) -> str:
    failed = f"sum by ({by}) (rate({q('upload_tasks_failed_total')}[{window}]))"
    done = f"sum by ({by}) (rate({q('upload_tasks_completed_total')}[{window}]))"
    return f"{failed} / ({failed} + {done})"


def common_panels(q: Selector, by: str, legend: str) -> dict[str, P]:
    """Panels both dashboards show; `by` and `legend` say how series are split."""
    rate = "$__rate_interval"
    return {
        "by_state": P("timeseries", "Tasks by state",
                      "Tracked upload tasks by normalized state (pending, done, error, not_found), as of each "
                      "set's last poll. Done and error tasks stay tracked until forget_final_after.",
                      "short", [(f"sum by (state) ({q('upload_tasks')})", "{{state}}")], stack=True),
        "pending": P("timeseries", "Pending tasks",
                     "Tasks queued or in progress at the provider: the backlog. It should go down between "
                     "bursts of new uploads; a flat line while nothing finishes is UploadBacklogStuck.",
                     "short", [(f"sum by ({by}) ({q('upload_tasks', st('pending'))})", legend)]),
        "eta": P("timeseries", "ETA of the backlog",
                 "Seconds until the pending tasks are expected to finish: the provider's own estimate where it "
                 f"gives one, else pending tasks / observed completion rate. Red above {ETA_LIMIT_S // 3600}h "
                 "(UploadBacklogEtaHigh). No line while unknown (no completions seen yet).",
                 "s", [(f"max by ({by}) ({q('upload_tasks_eta_seconds')})", legend)],
                 steps=[("green", None), ("orange", ETA_LIMIT_S // 2), ("red", ETA_LIMIT_S)]),
        "progress": P("timeseries", "Progress",
                      "Mean progress over tracked tasks: finished tasks count as 100%, pending ones with the "
                      "provider's progress where it reports one, else 0%.",
                      "percentunit", [(f"max by ({by}) ({q('upload_tasks_progress_ratio')})", legend)],
                      minmax=(0, 1)),
        "rates": P("timeseries", "Completions and failures",
                   "Tasks per minute that reached done and error, as the exporter observed the transitions.",
                   "opm", [(f"60 * sum by ({by}) (rate({q('upload_tasks_completed_total')}[{rate}]))",
                            f"{legend} completed"),
                           (f"60 * sum by ({by}) (rate({q('upload_tasks_failed_total')}[{rate}]))",
                            f"{legend} failed")]),
        "failures": P("timeseries", "New failures by fault code",
                      "Tasks per minute that failed, by the provider's fault code (unknown codes as 'other'). "
                      "Any failure raises UploadTasksFailed; the fault text is in the exporter's debug log.",
                      "opm", [(f"60 * sum by ({by}, fault_code) (rate({q('upload_tasks_failed_total')}[{rate}]))",
                               f"{legend} {{{{fault_code}}}}")], bars=True),
        "ratio": P("timeseries", "Failure ratio (1h)",
                   "Share of the tasks finished in the last hour that failed. Red above "
                   f"{FAILURE_RATIO:.0%} (UploadFailureRatioHigh). No line when nothing finished.",
                   "percentunit", [(failure_ratio(q, by, "1h"), legend)], minmax=(0, 1),
                   steps=[("green", None), ("orange", FAILURE_RATIO / 2), ("red", FAILURE_RATIO)]),
        "faults": P("bargauge", "Tasks in error by fault code",
                    "Tracked tasks now in error, by fault code, as of the last poll (they stay until forgotten "
                    "after forget_final_after).", "short",
                    [(f"sum by ({by}, fault_code) ({q('upload_task_faults')})", f"{legend} {{{{fault_code}}}}")],
                    steps=[("green", None), ("orange", 1)], instant=True),
        "duration": P("timeseries", "Task duration (p50, p95)",
                      "Created-to-finished time of the tasks that finished (first-seen time where the provider "
                      "gives no creation time), by final state.", "s",
                      [(f"histogram_quantile(0.5, sum by ({by}, state, le) "
                        f"(rate({q('upload_task_duration_seconds_bucket')}[{rate}])))", f"{legend} {{{{state}}}} p50"),
                       (f"histogram_quantile(0.95, sum by ({by}, state, le) "
                        f"(rate({q('upload_task_duration_seconds_bucket')}[{rate}])))", f"{legend} {{{{state}}}} p95"),
                       ]),
        "poll_up": P("state-timeline", "Poll status",
                     "1 (up) when the last poll of the set succeeded, 0 (down) when it failed: the set then "
                     "shows its last known state. Down for 15 minutes is UploadPollDown.", "short",
                     [(f"min by (provider, task_set) ({q('upload_poll_up')})", "{{provider}}/{{task_set}}")],
                     steps=[("red", None), ("green", 1)]),
        "poll_age": P("timeseries", "Time since the last successful poll",
                      "Age of each set's data. It grows by the poll interval between polls; red above "
                      f"{STALE_POLL_S // 3600}h (UploadPollStale).", "s",
                      [(f"time() - max by (provider, task_set) "
                        f"({q('upload_poll_last_success_timestamp_seconds')})", "{{provider}}/{{task_set}}")],
                      steps=[("green", None), ("orange", STALE_POLL_S // 4), ("red", STALE_POLL_S)]),
        "poll_duration": P("timeseries", "Poll duration (p95, mean)",
                           "Wall time of one poll of a set, retries and backoff included. Long polls mean slow "
                           "or throttled APIs, or very large sets.", "s",
                           [(f"histogram_quantile(0.95, sum by (provider, task_set, le) "
                             f"(rate({q('upload_poll_duration_seconds_bucket')}[{rate}])))",
                             "{{provider}}/{{task_set}} p95"),
                            (f"sum by (provider, task_set) (rate({q('upload_poll_duration_seconds_sum')}[{rate}]))"
                             f" / sum by (provider, task_set) "
                             f"(rate({q('upload_poll_duration_seconds_count')}[{rate}]))",
                             "{{provider}}/{{task_set}} mean")]),
        "requests": P("timeseries", "Provider requests by result",
                      "API calls per second by result: ok, api_error (the API answered with an error code), "
                      "http_error (HTTP status or connection failure), timeout, invalid_response.", "reqps",
                      [(f"sum by ({by}, result) (rate({q('upload_provider_requests_total')}[{rate}]))",
                        f"{legend} {{{{result}}}}")], stack=True),
        "api_errors": P("timeseries", "API error codes",
                        "Error codes the provider APIs answered with, per second (unknown codes as 'other'). "
                        "Auth codes with no ok calls raise UploadProviderRequestsRefused; throttling codes "
                        "UploadProviderThrottled. The runbook lists each provider's codes.", "reqps",
                        [(f"sum by ({by}, code) (rate({q('upload_provider_api_errors_total')}[{rate}]))",
                          f"{legend} {{{{code}}}}")], stack=True),
        "destination": P("timeseries", "Destination errors by reason",
                         "Output destinations that failed to receive a finished job, per minute, by reason "
                         "(providers that deliver to destinations, such as encoding_com).", "opm",
                         [(f"60 * sum by ({by}, reason) (rate({q('upload_destination_errors_total')}[{rate}]))",
                           f"{legend} {{{{reason}}}}")]),
        "bytes": P("timeseries", "Uploaded bytes",
                   "Bytes per second of the uploads that finished (providers that report file sizes, such as "
                   "aliyun_vod).", "Bps",
                   [(f"sum by ({by}) (rate({q('upload_uploaded_bytes_total')}[{rate}]))", legend)]),
    }


DRILL_DOWN = ("/d/upload-status-provider/upload-status-provider?var-datasource=${datasource}"
              "&var-provider=${__data.fields.provider}&var-task_set=${__data.fields.task_set}&${__url_time_range}")


def sets_table() -> P:
    """One row per task set, the columns from instant queries merged on provider and task_set."""
    columns = [
        ("Poll", "max by (provider, task_set) (upload_poll_up)"),
        ("Pending", 'sum by (provider, task_set) (upload_tasks{state="pending"})'),
        ("In error", 'sum by (provider, task_set) (upload_tasks{state="error"})'),
        ("ETA", "max by (provider, task_set) (upload_tasks_eta_seconds)"),
        ("Progress", "max by (provider, task_set) (upload_tasks_progress_ratio)"),
        ("Since last success", "time() - max by (provider, task_set) (upload_poll_last_success_timestamp_seconds)"),
    ]
    refs = "ABCDEFGH"
    return P("table", "Task sets",
             "Every task set of every provider, as of its last poll: poll health, backlog, ETA, progress and "
             "the age of its data. Click a provider or task set to open the drill-down dashboard.",
             "short", [(expr, "") for _, expr in columns], w=24, h=8,
             overrides=[
                 override("Poll", mappings=UP_DOWN_MAPPING, thresholds=thresholds([("red", None), ("green", 1)]),
                          custom_cellOptions={"type": "color-background"}),
                 override("In error", thresholds=thresholds([("green", None), ("orange", 1)]),
                          custom_cellOptions={"type": "color-text"}),
                 override("ETA", unit="s", thresholds=thresholds(
                     [("green", None), ("orange", ETA_LIMIT_S // 2), ("red", ETA_LIMIT_S)]),
                     custom_cellOptions={"type": "color-text"}),
                 override("Progress", unit="percentunit", min=0, max=1,
                          custom_cellOptions={"type": "gauge", "mode": "basic"}),
                 override("Since last success", unit="s", thresholds=thresholds(
                     [("green", None), ("orange", STALE_POLL_S // 4), ("red", STALE_POLL_S)]),
                     custom_cellOptions={"type": "color-text"}),
                 override("provider", links=[{"title": "Drill down", "url": DRILL_DOWN}]),
                 override("task_set", links=[{"title": "Drill down", "url": DRILL_DOWN}]),
             ],
             extra={"transformations": [
                 {"id": "merge", "options": {}},
                 {"id": "organize", "options": {
                     "excludeByName": {"Time": True},
                     "indexByName": {"provider": 0, "task_set": 1, **{n: i + 2 for i, (n, _) in enumerate(columns)}},
                     "renameByName": {f"Value #{refs[i]}": n for i, (n, _) in enumerate(columns)}}},
             ]})


def overview() -> dict[str, Any]:
    q = Selector()
    c = common_panels(q, "provider", "{{provider}}")
    glance = [
        stat("Pending tasks", "Upload tasks queued or in progress, over every provider and task set.", "short",
             'sum(upload_tasks{state="pending"})'),
        stat("Tasks in error", "Tracked tasks now in error, over every provider (kept until forget_final_after).",
             "short", 'sum(upload_tasks{state="error"})', steps=[("green", None), ("orange", 1)]),
        stat("Failed in the last hour", "Tasks that turned to error in the last hour, over every provider.",
             "short", "sum(increase(upload_tasks_failed_total[1h])) or vector(0)", decimals=0,
             steps=[("green", None), ("orange", 1), ("red", 10)]),
        stat("Longest ETA", "The longest expected time until a task set's pending tasks finish.", "s",
             "max(upload_tasks_eta_seconds)", steps=[("green", None), ("orange", ETA_LIMIT_S // 2),
                                                     ("red", ETA_LIMIT_S)]),
        stat("Overall progress", "Mean progress of every tracked task, finished ones counting 100%.",
             "percentunit", weighted_progress(q), minmax=(0, 1)),
        stat("Task sets down", "Task sets whose last poll failed; they show their last known state.", "short",
             "count(upload_poll_up == 0) or vector(0)", steps=ONE_IS_BAD),
        sets_table(),
    ]
    wide = {k: P(**{**c[k].__dict__, "w": 12}) for k in c}
    wide["poll_up"].w, wide["duration"].w = 24, 24
    rows = [
        ("At a glance", glance),
        ("Backlog", [wide["by_state"], wide["pending"], wide["eta"], wide["progress"]]),
        ("Completions and failures", [wide["rates"], wide["ratio"], wide["failures"], wide["faults"],
                                      wide["duration"]]),
        ("Polling and provider APIs", [wide["poll_up"], wide["poll_age"], wide["poll_duration"], wide["requests"],
                                       wide["api_errors"]]),
        ("Provider-specific counters", [wide["destination"], wide["bytes"]]),
    ]
    return dashboard("upload-status-overview", "Upload status / Overview",
                     "Upload backlogs, failures, ETAs and poll health of every provider watched by "
                     "upload-status-exporter.", rows, [variable_ds()])


def per_provider() -> dict[str, Any]:
    q = Selector('provider=~"$provider"', 'task_set=~"$task_set"')
    c = common_panels(q, "provider, task_set", "{{task_set}}")
    glance = [
        stat("Pending", "Tasks queued or in progress in the selected task sets.", "short",
             f"sum({q('upload_tasks', st('pending'))})", w=3),
        stat("Done", "Tracked tasks that finished successfully (kept until forget_final_after).", "short",
             f"sum({q('upload_tasks', st('done'))})", w=3),
        stat("In error", "Tracked tasks that failed (kept until forget_final_after).", "short",
             f"sum({q('upload_tasks', st('error'))})", w=3, steps=[("green", None), ("orange", 1)]),
        stat("Not found", "Task IDs the provider does not know (expired, mistyped or deleted).", "short",
             f"sum({q('upload_tasks', st('not_found'))})", w=3, steps=[("green", None), ("orange", 1)]),
        stat("Failed in the last hour", "Tasks that turned to error in the last hour.", "short",
             f"sum(increase({q('upload_tasks_failed_total')}[1h])) or vector(0)", w=3, decimals=0,
             steps=[("green", None), ("orange", 1), ("red", 10)]),
        stat("ETA", "The longest expected time until the pending tasks of a selected set finish.", "s",
             f"max({q('upload_tasks_eta_seconds')})", w=3,
             steps=[("green", None), ("orange", ETA_LIMIT_S // 2), ("red", ETA_LIMIT_S)]),
        stat("Progress", "Mean progress of the tracked tasks, finished ones counting 100%.", "percentunit",
             weighted_progress(q), w=3, minmax=(0, 1)),
        stat("Last successful poll", "When the least recently polled selected set was last polled "
             "successfully.", "dateTimeFromNow",
             f"min({q('upload_poll_last_success_timestamp_seconds')}) * 1000", w=3),
    ]
    statuses = P("timeseries", "Tasks by provider status",
                 "Tracked tasks by the provider's own status value (unknown values as 'other'): finer than the "
                 "normalized state, e.g. encoding_com's Downloading/Processing/Saving.", "short",
                 [(f"sum by (status) ({q('upload_tasks_provider_status')})", "{{status}}")], w=12, stack=True)
    tasks = P("table", "Tasks in error or pending (per-task series)",
              "One row per task from the opt-in per-task series (task sets with per_task_series > 0, capped; "
              "tasks in error first). Empty when no selected set enables them.", "short",
              [(f"{q('upload_task_state', st('error|pending|not_found'))} == 1", "")], w=24, h=10,
              extra={"transformations": [{"id": "organize", "options": {
                  "excludeByName": {"Time": True, "Value": True, "__name__": True, "job": True, "instance": True},
                  "indexByName": {"provider": 0, "task_set": 1, "task_id": 2, "state": 3, "status": 4},
                  "renameByName": {}}}]})
    wide = {k: P(**{**c[k].__dict__, "w": 12}) for k in c}
    wide["poll_up"].w, wide["duration"].w = 24, 24
    rows = [
        ("At a glance", glance),
        ("Backlog", [wide["by_state"], statuses, wide["pending"], wide["eta"], wide["progress"]]),
        ("Completions and failures", [wide["rates"], wide["ratio"], wide["failures"], wide["faults"],
                                      wide["duration"]]),
        ("Polling and provider API", [wide["poll_up"], wide["poll_age"], wide["poll_duration"], wide["requests"],
                                      wide["api_errors"]]),
        ("Tasks", [tasks]),
        ("Provider-specific counters", [wide["destination"], wide["bytes"]]),
    ]
    variables = [
        variable_ds(),
        variable_query("provider", "Provider", "label_values(upload_poll_up, provider)", multi=False),
        variable_query("task_set", "Task set", 'label_values(upload_poll_up{provider=~"$provider"}, task_set)',
                       multi=True),
    ]
    return dashboard("upload-status-provider", "Upload status / Provider",
                     "One provider's task sets in detail: backlog by state and provider status, failures by "
                     "fault code, ETA, progress, poll health and API results.", rows, variables)


DASHBOARDS = {"upload-status-overview.json": overview, "upload-status-provider.json": per_provider}


def render(build: Any) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 when a dashboard file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for name, build in DASHBOARDS.items():
        path, text = OUT / name, render(build)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python3 scripts/grafana_dashboards.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
