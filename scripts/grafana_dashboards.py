#!/usr/bin/env python3
"""The dashboards as panel tables, rendered to grafana/dashboards/*.json by grafana_mixin.py
(panel building blocks: grafana_panels.py).

Edit the tables here, not the JSON: every panel gets the same datasource, layout and
field defaults, and the tests check the JSON is what the generator writes. Panels read
only the metric contract (docs and exporter/core/metrics.py) and split by the
`provider` label, so a new provider shows up without a dashboard change. Every query is
filtered by the `job` and `instance` variables, and takes the max over replicas
(`dedup`) before it sums, so two exporters watching the same sets do not double a panel.
"""

from __future__ import annotations

from typing import Any

from grafana_config import ETA_LIMIT_S, FAILURE_RATIO, SET_LABELS, STALE_POLL_S, Mixin
from grafana_panels import (
    ONE_IS_BAD,
    UP_DOWN_MAPPING,
    P,
    Selector,
    counter_panel,
    dashboard,
    override,
    provider_counters,
    st,
    stat,
    thresholds,
    variable_ds,
    variable_query,
)
from grafana_queries import (
    FAILED,
    NEVER_MAPPING,
    TARGET_FILTERS,
    dedup,
    failure_ratio,
    poll_age,
    weighted_progress,
)


def common_panels(q: Selector, by: str, legend: str) -> dict[str, P]:
    """Panels both dashboards show; `by` and `legend` say how series are split."""

    def rate_of(metric: str) -> str:
        return f"rate({q(metric)}[$__rate_interval])"

    return {
        "by_state": P(
            "timeseries",
            "Tasks by state",
            "Tracked upload tasks by normalized state (pending, done, error, not_found), as of each "
            "set's last poll. Done and error tasks stay tracked until forget_final_after.",
            "short",
            [(f"sum by (state) ({dedup(q('upload_tasks'), 'state')})", "{{state}}")],
            stack=True,
        ),
        "pending": P(
            "timeseries",
            "Pending tasks",
            "Tasks queued or in progress at the provider: the backlog. It should go down between "
            "bursts of new uploads; a flat line while nothing finishes is UploadBacklogStuck.",
            "short",
            [(f"sum by ({by}) ({dedup(q('upload_tasks', st('pending')))})", legend)],
        ),
        "eta": P(
            "timeseries",
            "ETA of the backlog",
            "Seconds until the pending tasks are expected to finish: the provider's own estimate where it "
            f"gives one, else pending tasks / observed completion rate. Red above {ETA_LIMIT_S // 3600}h "
            "(UploadBacklogEtaHigh). No line while unknown (no completions seen yet).",
            "s",
            [(f"max by ({by}) ({q('upload_tasks_eta_seconds')})", legend)],
            steps=[("green", None), ("orange", ETA_LIMIT_S // 2), ("red", ETA_LIMIT_S)],
        ),
        "progress": P(
            "timeseries",
            "Progress",
            "Mean progress over tracked tasks: finished tasks count as 100%, pending ones with the "
            "provider's progress where it reports one, else 0%.",
            "percentunit",
            [(f"max by ({by}) ({q('upload_tasks_progress_ratio')})", legend)],
            minmax=(0, 1),
        ),
        "rates": P(
            "timeseries",
            "Completions and failures",
            "Tasks per minute that reached done and error, as the exporter observed the transitions.",
            "opm",
            [
                (f"60 * sum by ({by}) ({dedup(rate_of('upload_tasks_completed_total'))})", f"{legend} completed"),
                (
                    f"60 * sum by ({by}) ({dedup(rate_of('upload_tasks_failed_total'), 'fault_code')})",
                    f"{legend} failed",
                ),
            ],
        ),
        "failures": P(
            "timeseries",
            "New failures by fault code",
            "Tasks per minute that failed, by the provider's fault code (unknown codes as 'other'). "
            "Any failure raises UploadTasksFailed; the fault text is in the exporter's debug log.",
            "opm",
            [
                (
                    f"60 * sum by ({by}, fault_code) ({dedup(rate_of(FAILED), 'fault_code')})",
                    f"{legend} {{{{fault_code}}}}",
                )
            ],
            bars=True,
        ),
        "ratio": P(
            "timeseries",
            "Failure ratio (1h)",
            "Share of the tasks finished in the last hour that failed. Red above "
            f"{FAILURE_RATIO:.0%} (UploadFailureRatioHigh). No line when nothing finished.",
            "percentunit",
            [(failure_ratio(q, by, "1h"), legend)],
            minmax=(0, 1),
            steps=[("green", None), ("orange", FAILURE_RATIO / 2), ("red", FAILURE_RATIO)],
        ),
        "faults": P(
            "bargauge",
            "Tasks in error by fault code",
            "Tracked tasks now in error, by fault code, as of the last poll (they stay until forgotten "
            "after forget_final_after).",
            "short",
            [
                (
                    f"sum by ({by}, fault_code) ({dedup(q('upload_task_faults'), 'fault_code')})",
                    f"{legend} {{{{fault_code}}}}",
                )
            ],
            steps=[("green", None), ("orange", 1)],
            instant=True,
        ),
        "duration": P(
            "timeseries",
            "Task duration (p50, p95)",
            "Created-to-finished time of the tasks that finished (first-seen time where the provider "
            "gives no creation time), by final state.",
            "s",
            [
                (
                    f"histogram_quantile({quantile}, sum by ({by}, state, le) "
                    f"({dedup(rate_of('upload_task_duration_seconds_bucket'), 'state', 'le')}))",
                    f"{legend} {{{{state}}}} p{int(quantile * 100)}",
                )
                for quantile in (0.5, 0.95)
            ],
        ),
        "poll_up": P(
            "state-timeline",
            "Poll status",
            "1 (up) when the last poll of the set succeeded, 0 (down) when it failed: the set then "
            "shows its last known state. Down for 15 minutes is UploadPollDown.",
            "short",
            [(f"min by (provider, task_set) ({q('upload_poll_up')})", "{{provider}}/{{task_set}}")],
            steps=[("red", None), ("green", 1)],
        ),
        "poll_age": P(
            "timeseries",
            "Time since the last successful poll",
            "Age of each set's data. It grows by the poll interval between polls; a set that never "
            "polled successfully shows how long its exporter has run without a success. Red above "
            f"{STALE_POLL_S // 3600}h (UploadPollStale).",
            "s",
            [(poll_age(q), "{{provider}}/{{task_set}}")],
            steps=[("green", None), ("orange", STALE_POLL_S // 4), ("red", STALE_POLL_S)],
        ),
        "poll_duration": P(
            "timeseries",
            "Poll duration (p95, mean)",
            "Wall time of one poll of a set, retries and backoff included. Long polls mean slow "
            "or throttled APIs, or very large sets.",
            "s",
            [
                (
                    f"histogram_quantile(0.95, sum by (provider, task_set, le) "
                    f"({dedup(rate_of('upload_poll_duration_seconds_bucket'), 'le')}))",
                    "{{provider}}/{{task_set}} p95",
                ),
                (
                    f"sum by (provider, task_set) ({dedup(rate_of('upload_poll_duration_seconds_sum'))})"
                    f" / sum by (provider, task_set) "
                    f"({dedup(rate_of('upload_poll_duration_seconds_count'))})",
                    "{{provider}}/{{task_set}} mean",
                ),
            ],
        ),
        "requests": P(
            "timeseries",
            "Provider requests by result",
            "API calls per second by result: ok, api_error (the API answered with an error code), "
            "http_error (HTTP status or connection failure), timeout, invalid_response.",
            "reqps",
            [
                (
                    f"sum by ({by}, result) ({dedup(rate_of('upload_provider_requests_total'), 'result')})",
                    f"{legend} {{{{result}}}}",
                )
            ],
            stack=True,
        ),
        "api_errors": P(
            "timeseries",
            "API error codes",
            "Error codes the provider APIs answered with, per second (unknown codes as 'other'). "
            "Auth codes with no ok calls raise UploadProviderRequestsRefused; throttling codes "
            "UploadProviderThrottled. The runbook lists each provider's codes.",
            "reqps",
            [
                (
                    f"sum by ({by}, code) ({dedup(rate_of('upload_provider_api_errors_total'), 'code')})",
                    f"{legend} {{{{code}}}}",
                )
            ],
            stack=True,
        ),
        **{
            f"counter:{spec.name}": counter_panel(
                provider,
                spec,
                by,
                legend,
                dedup(rate_of(f"upload_{spec.name}_total"), *([spec.label] if spec.label else [])),
            )
            for provider, spec in provider_counters()
        },
    }


DRILL_DOWN = (
    "/d/upload-status-provider/upload-status-provider?var-datasource=${datasource}"
    "&${job:queryparam}&${instance:queryparam}"
    "&var-provider=${__data.fields.provider}&var-task_set=${__data.fields.task_set}&${__url_time_range}"
)


def sets_table(q: Selector) -> P:
    """One row per task set, the columns from instant queries merged on provider and task_set."""
    columns = [
        ("Poll", f"min by (provider, task_set) ({q('upload_poll_up')})"),
        ("Pending", f"sum by (provider, task_set) ({dedup(q('upload_tasks', st('pending')))})"),
        ("In error", f"sum by (provider, task_set) ({dedup(q('upload_tasks', st('error')))})"),
        ("ETA", f"max by (provider, task_set) ({q('upload_tasks_eta_seconds')})"),
        ("Progress", f"max by (provider, task_set) ({q('upload_tasks_progress_ratio')})"),
        ("Since last success", poll_age(q)),
    ]
    refs = "ABCDEFGH"
    return P(
        "table",
        "Task sets",
        "Every task set of every provider, as of its last poll: poll health, backlog, ETA, progress and "
        "the age of its data. Click a provider or task set to open the drill-down dashboard.",
        "short",
        [(expr, "") for _, expr in columns],
        w=24,
        h=8,
        overrides=[
            override(
                "Poll",
                mappings=UP_DOWN_MAPPING,
                thresholds=thresholds([("red", None), ("green", 1)]),
                custom_cellOptions={"type": "color-background"},
            ),
            override(
                "In error",
                thresholds=thresholds([("green", None), ("orange", 1)]),
                custom_cellOptions={"type": "color-text"},
            ),
            override(
                "ETA",
                unit="s",
                thresholds=thresholds([("green", None), ("orange", ETA_LIMIT_S // 2), ("red", ETA_LIMIT_S)]),
                custom_cellOptions={"type": "color-text"},
            ),
            override(
                "Progress", unit="percentunit", min=0, max=1, custom_cellOptions={"type": "gauge", "mode": "basic"}
            ),
            override(
                "Since last success",
                unit="s",
                thresholds=thresholds([("green", None), ("orange", STALE_POLL_S // 4), ("red", STALE_POLL_S)]),
                custom_cellOptions={"type": "color-text"},
            ),
            override("provider", links=[{"title": "Drill down", "url": DRILL_DOWN}]),
            override("task_set", links=[{"title": "Drill down", "url": DRILL_DOWN}]),
        ],
        extra={
            "transformations": [
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "indexByName": {"provider": 0, "task_set": 1, **{n: i + 2 for i, (n, _) in enumerate(columns)}},
                        "renameByName": {f"Value #{refs[i]}": n for i, (n, _) in enumerate(columns)},
                    },
                },
            ]
        },
    )


def target_variables(m: Mixin) -> list[dict[str, Any]]:
    """`job` (the jobs the job selector picks) and `instance`: every query filters by both."""
    return [
        variable_query("job", "Job", f"label_values(upload_build_info{{{m.sel}}}, job)", multi=True),
        variable_query("instance", "Instance", 'label_values(upload_build_info{job=~"$job"}, instance)', multi=True),
    ]


def overview(m: Mixin) -> dict[str, Any]:
    q = Selector(*TARGET_FILTERS)
    c = common_panels(q, "provider", "{{provider}}")
    failed_1h = dedup(f"increase({q('upload_tasks_failed_total')}[1h])", "fault_code")
    glance = [
        stat(
            "Pending tasks",
            "Upload tasks queued or in progress, over every provider and task set.",
            "short",
            f"sum({dedup(q('upload_tasks', st('pending')))})",
        ),
        stat(
            "Tasks in error",
            "Tracked tasks now in error, over every provider (kept until forget_final_after).",
            "short",
            f"sum({dedup(q('upload_tasks', st('error')))})",
            steps=[("green", None), ("orange", 1)],
        ),
        stat(
            "Failed in the last hour",
            "Tasks that turned to error in the last hour, over every provider.",
            "short",
            f"sum({failed_1h}) or vector(0)",
            decimals=0,
            steps=[("green", None), ("orange", 1), ("red", 10)],
        ),
        stat(
            "Longest ETA",
            "The longest expected time until a task set's pending tasks finish.",
            "s",
            f"max({q('upload_tasks_eta_seconds')})",
            steps=[("green", None), ("orange", ETA_LIMIT_S // 2), ("red", ETA_LIMIT_S)],
        ),
        stat(
            "Overall progress",
            "Mean progress of every tracked task, finished ones counting 100%.",
            "percentunit",
            weighted_progress(q),
            minmax=(0, 1),
        ),
        stat(
            "Task sets down",
            "Task sets whose last poll failed; they show their last known state.",
            "short",
            f"count(min by ({SET_LABELS}) ({q('upload_poll_up')}) == 0) or vector(0)",
            steps=ONE_IS_BAD,
        ),
        sets_table(q),
    ]
    wide = {k: P(**{**c[k].__dict__, "w": 12}) for k in c}
    wide["poll_up"].w, wide["duration"].w = 24, 24
    rows = [
        ("At a glance", glance),
        ("Backlog", [wide["by_state"], wide["pending"], wide["eta"], wide["progress"]]),
        (
            "Completions and failures",
            [wide["rates"], wide["ratio"], wide["failures"], wide["faults"], wide["duration"]],
        ),
        (
            "Polling and provider APIs",
            [wide["poll_up"], wide["poll_age"], wide["poll_duration"], wide["requests"], wide["api_errors"]],
        ),
        ("Provider-specific counters", [wide[f"counter:{spec.name}"] for _, spec in provider_counters()]),
    ]
    return dashboard(
        "upload-status-overview",
        "Upload status / Overview",
        "Upload backlogs, failures, ETAs and poll health of every provider watched by upload-status-exporter.",
        rows,
        [variable_ds(), *target_variables(m)],
    )


def per_provider(m: Mixin) -> dict[str, Any]:
    q = Selector(*TARGET_FILTERS, 'provider=~"$provider"', 'task_set=~"$task_set"')
    c = common_panels(q, "provider, task_set", "{{task_set}}")

    def tasks_in(state: str) -> str:
        return f"sum({dedup(q('upload_tasks', st(state)))})"

    glance = [
        stat("Pending", "Tasks queued or in progress in the selected task sets.", "short", tasks_in("pending"), w=3),
        stat(
            "Done",
            "Tracked tasks that finished successfully (kept until forget_final_after).",
            "short",
            tasks_in("done"),
            w=3,
        ),
        stat(
            "In error",
            "Tracked tasks that failed (kept until forget_final_after).",
            "short",
            tasks_in("error"),
            w=3,
            steps=[("green", None), ("orange", 1)],
        ),
        stat(
            "Not found",
            "Task IDs the provider does not know (expired, mistyped or deleted).",
            "short",
            tasks_in("not_found"),
            w=3,
            steps=[("green", None), ("orange", 1)],
        ),
        stat(
            "Failed in the last hour",
            "Tasks that turned to error in the last hour.",
            "short",
            f"sum({dedup(f'increase({q(FAILED)}[1h])', 'fault_code')}) or vector(0)",
            w=3,
            decimals=0,
            steps=[("green", None), ("orange", 1), ("red", 10)],
        ),
        stat(
            "ETA",
            "The longest expected time until the pending tasks of a selected set finish.",
            "s",
            f"max({q('upload_tasks_eta_seconds')})",
            w=3,
            steps=[("green", None), ("orange", ETA_LIMIT_S // 2), ("red", ETA_LIMIT_S)],
        ),
        stat(
            "Progress",
            "Mean progress of the tracked tasks, finished ones counting 100%.",
            "percentunit",
            weighted_progress(q),
            w=3,
            minmax=(0, 1),
        ),
        stat(
            "Last successful poll",
            "When the least recently polled selected set was last polled "
            "successfully; 'never' when one of them has not succeeded yet.",
            "dateTimeFromNow",
            f"min({q('upload_poll_last_success_timestamp_seconds')}) * 1000",
            w=3,
            mappings=NEVER_MAPPING,
        ),
    ]
    statuses = P(
        "timeseries",
        "Tasks by provider status",
        "Tracked tasks by the provider's own status value (unknown values as 'other'): finer than the "
        "normalized state, e.g. encoding_com's Downloading/Processing/Saving.",
        "short",
        [(f"sum by (status) ({dedup(q('upload_tasks_provider_status'), 'status')})", "{{status}}")],
        w=12,
        stack=True,
    )
    per_task = f"{q('upload_task_state', st('error|pending|not_found'))} == 1"
    tasks = P(
        "table",
        "Tasks in error or pending (per-task series)",
        "One row per task from the opt-in per-task series (task sets with per_task_series > 0, capped; "
        "tasks in error first). Empty when no selected set enables them.",
        "short",
        [(dedup(per_task, "task_id", "state", "status"), "")],
        w=24,
        h=10,
        extra={
            "transformations": [
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True, "Value": True, "__name__": True, "job": True, "instance": True},
                        "indexByName": {"provider": 0, "task_set": 1, "task_id": 2, "state": 3, "status": 4},
                        "renameByName": {},
                    },
                }
            ]
        },
    )
    wide = {k: P(**{**c[k].__dict__, "w": 12}) for k in c}
    wide["poll_up"].w, wide["duration"].w = 24, 24
    rows = [
        ("At a glance", glance),
        ("Backlog", [wide["by_state"], statuses, wide["pending"], wide["eta"], wide["progress"]]),
        (
            "Completions and failures",
            [wide["rates"], wide["ratio"], wide["failures"], wide["faults"], wide["duration"]],
        ),
        (
            "Polling and provider API",
            [wide["poll_up"], wide["poll_age"], wide["poll_duration"], wide["requests"], wide["api_errors"]],
        ),
        ("Tasks", [tasks]),
        ("Provider-specific counters", [wide[f"counter:{spec.name}"] for _, spec in provider_counters()]),
    ]
    sets = 'upload_poll_up{job=~"$job", instance=~"$instance"'
    variables = [
        variable_ds(),
        *target_variables(m),
        variable_query("provider", "Provider", f"label_values({sets}}}, provider)", multi=False),
        variable_query("task_set", "Task set", f'label_values({sets}, provider=~"$provider"}}, task_set)', multi=True),
    ]
    return dashboard(
        "upload-status-provider",
        "Upload status / Provider",
        "One provider's task sets in detail: backlog by state and provider status, failures by "
        "fault code, ETA, progress, poll health and API results.",
        rows,
        variables,
    )


DASHBOARDS = {"upload-status-overview.json": overview, "upload-status-provider.json": per_provider}
