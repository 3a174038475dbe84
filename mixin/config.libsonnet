// What an installation may change, as a monitoring mixin's `_config`: the defaults render the
// shipped files. Override it (`mixin { _config+:: { jobSelector: 'job="uploads"' } }`) or pass
// --job-selector / --runbook-base-url to scripts/grafana_mixin.py.
{
  _config+:: {
    // PromQL label matchers (without braces) that select the exporter's targets: every rule
    // selects through them and the dashboards' `job` variable lists the jobs they match.
    jobSelector: 'job="upload-status-exporter"',
    // Each alert's runbook_url is this plus `#<alert name in lower case>`.
    runbookBaseUrl: 'https://github.com/upload-status-exporter/upload-status-exporter/blob/main/docs/runbook.md',

    // Thresholds shared by the alert rules and the dashboards' colours.
    etaLimitSeconds: 4 * 3600,
    stalePollSeconds: 3600,
    failureRatio: 0.2,
    throttledRatio: 0.1,
    // Replicas sharing state on Redis (--state.redis-url).
    storeDownFor: '2m',
    unitsUnownedFor: '5m',
    configMismatchFor: '15m',
    leaseLossesPerHour: 6,

    // The labels that name one series of a task set (or of one partition of it), whichever
    // replica exports it: dashboards take the max over replicas by these (and the metric's own
    // labels) before they sum, so partitions held by different replicas add up.
    setLabels: 'job, provider, task_set, partition',

    // What the providers declare (exporter/providers), written by scripts/grafana_mixin.py.
    providers: import 'lib/providers.json',
  },
}
