// The upload-status-exporter monitoring mixin: prometheusAlerts, grafanaDashboards and _config,
// in the monitoring-mixins convention (https://monitoring.mixins.dev). The one source of the
// shipped rules (grafana/alerts/), dashboards (grafana/dashboards/) and their Kubernetes forms
// (deploy/kubernetes/overlays/monitoring/): scripts/grafana_mixin.py renders them with render.jsonnet.
(import 'config.libsonnet')
+ (import 'alerts/alerts.libsonnet')
+ {
  grafanaDashboards+:: (import 'dashboards/dashboards.libsonnet')($._config),
}
