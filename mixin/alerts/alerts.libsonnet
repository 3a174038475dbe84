// The alert rules, one group per concern; every expression selects through the job selector
// and every runbook_url is the runbook base URL plus the alert's anchor.
local groups(c) = [
  (import 'tasks.libsonnet')(c),
  (import 'polling.libsonnet')(c),
  (import 'exporter.libsonnet')(c),
  (import 'cluster.libsonnet')(c),
];

{
  prometheusAlerts+:: {
    groups+: [
      g {
        rules: [
          r { annotations+: { runbook_url: '%s#%s' % [$._config.runbookBaseUrl, std.asciiLower(r.alert)] } }
          for r in g.rules
        ],
      }
      for g in groups($._config)
    ],
  },
}
