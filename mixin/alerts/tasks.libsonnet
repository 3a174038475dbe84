// Alerts on the tasks of each set: failures, failure ratio, a stuck or slow backlog.
local util = import '../lib/util.libsonnet';

function(c)
  local s(metric, matchers=[]) = util.sel(metric, [c.jobSelector] + matchers);
  local failed = s('upload_tasks_failed_total');
  local failed1h = 'sum without (fault_code) (increase(%s[1h]))' % failed;
  local done1h = 'increase(%s[1h])' % s('upload_tasks_completed_total');
  local ratioPct = '%d%%' % std.floor(c.failureRatio * 100 + 0.5);
  {
    name: 'upload-status.tasks',
    rules: [
      {
        alert: 'UploadTasksFailed',
        comment:: |||
          Tasks of a set kept failing: failures in each 5-minute window for 10 minutes, one alert per
          set (not per fault code). A single failure, or one burst, does not fire. A counter series that
          first appears already at 1 has no increase, so a fault code seen for the first time counts
          through the second clause (the exporter was scraped 5 minutes ago and the series did not exist).
        |||,
        expr: |||
          sum without (fault_code) (
            increase(%(failed)s[5m]) > 0
            or
            (
              (%(failed)s > 0 unless %(failed)s offset 5m)
              and on (job, instance) (up{%(sel)s} offset 5m == 1)
            )
          )
        ||| % { failed: failed, sel: c.jobSelector },
        'for': '10m',
        labels: { severity: 'warning' },
        annotations: {
          summary: 'Uploads keep failing in {{ $labels.provider }} set {{ $labels.task_set }}',
          description: '{{ printf "%.0f" $value }} upload task(s) of task set {{ $labels.task_set }} at provider '
                       + '{{ $labels.provider }} failed in the last 5 minutes, and failures went on for 10 minutes. '
                       + "The fault codes are on the dashboards (upload_tasks_failed_total by fault_code); the provider's "
                       + "fault message is in the exporter's debug log.",
        },
      },
      {
        alert: 'UploadFailureRatioHigh',
        comment:: 'More than %s of the tasks that finished in the last hour failed, over at least 10 tasks.' % ratioPct,
        expr: |||
          (
            %(f)s
            /
            (%(f)s + %(d)s)
          ) > %(r)s
          and
          (%(f)s + %(d)s) >= 10
        ||| % { f: failed1h, d: done1h, r: util.num(c.failureRatio) },
        'for': '15m',
        labels: { severity: 'critical' },
        annotations: {
          summary: '{{ $value | humanizePercentage }} of uploads fail in {{ $labels.provider }} set {{ $labels.task_set }}',
          description: '{{ $value | humanizePercentage }} of the upload tasks of task set {{ $labels.task_set }} at provider '
                       + '{{ $labels.provider }} that finished in the last hour failed (threshold %s). ' % ratioPct
                       + 'The failures by fault code are on the upload-status dashboards.',
        },
      },
      {
        alert: 'UploadBacklogStuck',
        comment:: 'Tasks are pending but none finished (done or error) in the last hour.',
        expr: |||
          %s > 0
          unless ignoring (state) increase(%s[1h]) > 0
          unless ignoring (state) %s > 0
        ||| % [s('upload_tasks', ['state="pending"']), s('upload_tasks_completed_total'), failed1h],
        'for': '30m',
        labels: { severity: 'warning' },
        annotations: {
          summary: 'Upload backlog stuck in {{ $labels.provider }} set {{ $labels.task_set }}',
          description: '{{ printf "%.0f" $value }} upload task(s) of task set {{ $labels.task_set }} at provider '
                       + '{{ $labels.provider }} are pending and none finished in the last 1h30m.',
        },
      },
      {
        alert: 'UploadBacklogEtaHigh',
        comment:: 'The pending tasks are not expected to finish within %d hours.' % (c.etaLimitSeconds / 3600),
        expr: '%s > %d * 3600\n' % [s('upload_tasks_eta_seconds'), c.etaLimitSeconds / 3600],
        'for': '30m',
        labels: { severity: 'warning' },
        annotations: {
          summary: 'Upload backlog of {{ $labels.provider }} set {{ $labels.task_set }} needs {{ $value | humanizeDuration }}',
          description: 'The pending upload tasks of task set {{ $labels.task_set }} at provider {{ $labels.provider }} '
                       + 'are expected to finish in {{ $value | humanizeDuration }}, over the %dh limit, for 30 minutes.'
                         % (c.etaLimitSeconds / 3600),
        },
      },
    ],
  }
