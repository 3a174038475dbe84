// Every generated file as {grafana: {path: text}, kubernetes: {path: text}}: the rules and the
// dashboards under grafana/, their Kubernetes forms under deploy/kubernetes/.
//   jsonnet -J mixin --tla-str jobSelector='job="uploads"' mixin/render.jsonnet
// scripts/grafana_mixin.py runs this and writes (or, with --check, compares) the files; it
// passes `providers` (what exporter/providers declares) fresh, so a stale lib/providers.json
// shows up as out of date instead of rendering stale rules.
local text = import 'lib/yaml.libsonnet';
local base = import 'mixin.libsonnet';

function(jobSelector=null, runbookBaseUrl=null, providers=null)
  local set(key, value) = if value == null then {} else { [key]: value };
  local mixin = base {
    _config+:: set('jobSelector', jobSelector) + set('runbookBaseUrl', runbookBaseUrl) + set('providers', providers),
  };
  local c = mixin._config;
  local fill(template) = std.strReplace(std.strReplace(template, 'SELECTOR', c.jobSelector), 'RUNBOOK', c.runbookBaseUrl);
  local rulesHeader = |||
    # Prometheus alert rules for upload-status-exporter.
    # Written by scripts/grafana_mixin.py from mixin/ (job selector 'SELECTOR', runbook RUNBOOK): edit the mixin, not this file.
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

  |||;
  local k8sHeader = |||
    # Written by scripts/grafana_mixin.py from mixin/ (job selector 'SELECTOR', runbook RUNBOOK): edit the mixin, not this file.
  |||;
  local metadata(name, extra) = [
    'metadata:',
    '  name: ' + name,
    '  labels:',
    '    app.kubernetes.io/name: upload-status-exporter',
    '    app.kubernetes.io/component: monitoring',
  ] + extra;
  local ruleLines = text.groups(mixin.prometheusAlerts);
  local dashboards = {
    [name]: text.json(mixin.grafanaDashboards[name]) + '\n'
    for name in std.objectFields(mixin.grafanaDashboards)
  };
  local configMap(name) = std.join('\n', [
    'apiVersion: v1',
    'kind: ConfigMap',
  ] + metadata(std.strReplace(name, '.json', ''), [
    '    # The Grafana sidecar (kube-prometheus-stack, the grafana chart) loads ConfigMaps with this label.',
    '    grafana_dashboard: "1"',
  ]) + [
    'data:',
    '  %s: |' % name,
    '    ' + std.strReplace(std.substr(dashboards[name], 0, std.length(dashboards[name]) - 1), '\n', '\n    '),
  ]) + '\n';
  {
    grafana: {
      'alerts/upload-status.rules.yml': fill(rulesHeader) + text.lines(ruleLines),
    } + {
      ['dashboards/' + name]: dashboards[name]
      for name in std.objectFields(dashboards)
    },
    kubernetes: {
      'overlays/monitoring/prometheusrule.yaml': fill(k8sHeader) + text.lines([
        '# The groups are grafana/alerts/upload-status.rules.yml, for the Prometheus Operator.',
        'apiVersion: monitoring.coreos.com/v1',
        'kind: PrometheusRule',
      ] + metadata('upload-status-exporter', [
        "    # Add the label your Prometheus's ruleSelector wants (kube-prometheus-stack: release: <its release>).",
      ]) + ['spec:'] + [if l == '' then l else '  ' + l for l in ruleLines]),
      'overlays/monitoring/grafana-dashboards.yaml': fill(k8sHeader) + std.join('---\n', [
        configMap(name)
        for name in std.objectFields(dashboards)
      ]),
    },
  }
