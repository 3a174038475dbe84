// Alerts on the exporter itself: not scraped, or its last reload failed.
function(c) {
  name: 'upload-status.exporter',
  rules: [
    {
      alert: 'UploadExporterDown',
      comment:: '',
      expr: 'up{%(s)s} == 0\nor\nabsent(up{%(s)s})\n' % { s: c.jobSelector },
      'for': '5m',
      labels: { severity: 'critical' },
      annotations: {
        summary: 'upload-status-exporter{{ with $labels.instance }} {{ . }}{{ end }} is down',
        description: 'Prometheus could not scrape upload-status-exporter {{ with $labels.instance }}at {{ . }}{{ else }}'
                     + '(no target of job upload-status-exporter at all){{ end }} for 5 minutes: no upload is being '
                     + 'watched and no other upload alert can fire.',
      },
    },
    {
      alert: 'UploadConfigReloadFailed',
      comment:: |||
        The last configuration load (SIGHUP or POST /-/reload) failed: the exporter runs the
        previous configuration, and the next restart would fail on the file as it is.
      |||,
      expr: 'upload_config_last_reload_successful{%s} == 0\n' % c.jobSelector,
      'for': '5m',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'upload-status-exporter {{ $labels.instance }} could not reload its configuration',
        description: 'The last configuration reload of upload-status-exporter at {{ $labels.instance }} failed 5 or more '
                     + 'minutes ago: it keeps running the previous configuration, and a restart would fail. The exporter '
                     + 'logged every problem of the file (file, key path, what was expected).',
      },
    },
  ],
}
