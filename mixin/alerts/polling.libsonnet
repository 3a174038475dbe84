// Alerts on polling: a set down or stale, calls refused or throttled by the provider.
local util = import '../lib/util.libsonnet';

function(c)
  local s(metric, matchers=[]) = util.sel(metric, [c.jobSelector] + matchers);
  local last = s('upload_poll_last_success_timestamp_seconds');
  local matchers = util.throttlingMatchers(c.providers);
  local throttled = std.join('\n    or ', [
    'rate(%s[10m])' % s('upload_provider_api_errors_total', ['provider=' + std.escapeStringJson(p), matchers[p]])
    for p in std.objectFields(matchers)
  ]);
  {
    name: 'upload-status.polling',
    rules: [
      {
        alert: 'UploadPollDown',
        comment:: '',
        expr: '%s == 0\n' % s('upload_poll_up'),
        'for': '15m',
        labels: { severity: 'warning' },
        annotations: {
          summary: 'Polling {{ $labels.provider }} set {{ $labels.task_set }} fails',
          description: 'Every poll of task set {{ $labels.task_set }} at provider {{ $labels.provider }} failed for '
                       + '15 minutes; its metrics show the last known state. The exporter logged why when the set went down.',
        },
      },
      {
        alert: 'UploadPollStale',
        comment:: |||
          The last successful poll is over an hour old; 0 means the set never succeeded, and then the
          time counted is how long the exporter has been running without a success.
        |||,
        expr: |||
          time() - (%(last)s > 0) > %(stale)d
          or
          (%(last)s == 0)
          + on (job, instance) group_left ()
          (time() - process_start_time_seconds{%(sel)s}) > %(stale)d
        ||| % { last: last, stale: c.stalePollSeconds, sel: c.jobSelector },
        'for': '5m',
        labels: { severity: 'critical' },
        annotations: {
          summary: 'No successful poll of {{ $labels.provider }} set {{ $labels.task_set }} for '
                   + '{{ $value | humanizeDuration }}',
          description: 'The last successful poll of task set {{ $labels.task_set }} at provider {{ $labels.provider }} '
                       + 'was {{ $value | humanizeDuration }} ago, or it never succeeded in that time since the exporter '
                       + 'started (limit 1h): its upload counts and ETAs are out of date or missing.',
        },
      },
      {
        alert: 'UploadProviderRequestsRefused',
        comment:: |||
          The API answers, but with an error code, and no call succeeded in 15 minutes while
          the set is down: refused credentials or permissions (the usual cause) or a request
          the API rejects. Auth failures are not retried, so they show as a steady trickle.
        |||,
        expr: |||
          increase(%s[15m]) > 0
          unless on (job, instance, provider, task_set) increase(%s[15m]) > 0
          and on (job, instance, provider, task_set) %s == 0
        ||| % [s('upload_provider_api_errors_total'), s('upload_provider_requests_total', ['result="ok"']), s('upload_poll_up')],
        'for': '5m',
        labels: { severity: 'critical' },
        annotations: {
          summary: '{{ $labels.provider }} refuses every call of set {{ $labels.task_set }} (API error {{ $labels.code }})',
          description: 'Task set {{ $labels.task_set }} is down: its calls to provider {{ $labels.provider }} keep ending in '
                       + 'API error code {{ $labels.code }} and none succeeded in the last 15 minutes. Usually the credentials '
                       + "or their permissions were refused; the exporter's log line says what to fix.",
        },
      },
      {
        alert: 'UploadProviderThrottled',
        comment:: |||
          Share of calls answered with the provider's throttling codes, as each provider declares
          them (exporter/providers: ErrorCodes.throttling). HTTP 429 without a code is counted as
          result="http_error" and shows on the dashboards.
        |||,
        expr: |||
          (
            sum without (code) (
              %s
            )
            /
            sum without (result) (rate(%s[10m]))
          ) > %s
        ||| % [throttled, s('upload_provider_requests_total'), util.num(c.throttledRatio)],
        'for': '15m',
        labels: { severity: 'warning' },
        annotations: {
          summary: '{{ $labels.provider }} throttles set {{ $labels.task_set }} ({{ $value | humanizePercentage }} of calls)',
          description: '{{ $value | humanizePercentage }} of the calls of task set {{ $labels.task_set }} to provider '
                       + '{{ $labels.provider }} were throttled over the last 10 minutes, for 15 minutes. Polls are slowed '
                       + 'down and statuses arrive late.',
        },
      },
    ],
  }
