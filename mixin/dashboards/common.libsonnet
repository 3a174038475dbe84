// Panels both dashboards show; `by` and `legend` say how series are split.
local g = import 'panels.libsonnet';

function(c, q, by, legend)
  local Q = (import 'queries.libsonnet')(c);
  local dedup = Q.dedup;
  local rateOf(metric) = 'rate(%s[$__rate_interval])' % q(metric);
  local eta = c.etaLimitSeconds;
  local stale = c.stalePollSeconds;
  local counters = g.providerCounters(c.providers);
  {
    by_state: g.panel(
      'timeseries',
      'Tasks by state',
      'Tracked upload tasks by normalized state (pending, done, error, not_found), as of each '
      + "set's last poll. Done and error tasks stay tracked until forget_final_after.",
      'short',
      [['sum by (state) (%s)' % dedup(q('upload_tasks'), ['state']), '{{state}}']],
    ) + { stack: true },
    pending: g.panel(
      'timeseries',
      'Pending tasks',
      'Tasks queued or in progress at the provider: the backlog. It should go down between '
      + 'bursts of new uploads; a flat line while nothing finishes is UploadBacklogStuck.',
      'short',
      [['sum by (%s) (%s)' % [by, dedup(q('upload_tasks', [g.st('pending')]))], legend]],
    ),
    eta: g.panel(
      'timeseries',
      'ETA of the backlog',
      "Seconds until the pending tasks are expected to finish: the provider's own estimate where it "
      + 'gives one, else pending tasks / observed completion rate. Red above %dh ' % (eta / 3600)
      + '(UploadBacklogEtaHigh). No line while unknown (no completions seen yet).',
      's',
      [['max by (%s) (%s)' % [by, q('upload_tasks_eta_seconds')], legend]],
    ) + { steps: [['green', null], ['orange', eta / 2], ['red', eta]] },
    progress: g.panel(
      'timeseries',
      'Progress',
      'Mean progress over tracked tasks: finished tasks count as 100%, pending ones with the '
      + "provider's progress where it reports one, else 0%.",
      'percentunit',
      [['max by (%s) (%s)' % [by, q('upload_tasks_progress_ratio')], legend]],
    ) + { minmax: [0, 1] },
    rates: g.panel(
      'timeseries',
      'Completions and failures',
      'Tasks per minute that reached done and error, as the exporter observed the transitions.',
      'opm',
      [
        ['60 * sum by (%s) (%s)' % [by, dedup(rateOf('upload_tasks_completed_total'))], legend + ' completed'],
        ['60 * sum by (%s) (%s)' % [by, dedup(rateOf('upload_tasks_failed_total'), ['fault_code'])], legend + ' failed'],
      ],
    ),
    failures: g.panel(
      'timeseries',
      'New failures by fault code',
      "Tasks per minute that failed, by the provider's fault code (unknown codes as 'other'). "
      + "Any failure raises UploadTasksFailed; the fault text is in the exporter's debug log.",
      'opm',
      [[
        '60 * sum by (%s, fault_code) (%s)' % [by, dedup(rateOf('upload_tasks_failed_total'), ['fault_code'])],
        legend + ' {{fault_code}}',
      ]],
    ) + { bars: true },
    ratio: g.panel(
      'timeseries',
      'Failure ratio (1h)',
      'Share of the tasks finished in the last hour that failed. Red above '
      + '%d%% (UploadFailureRatioHigh). No line when nothing finished.' % std.floor(c.failureRatio * 100 + 0.5),
      'percentunit',
      [[Q.failureRatio(q, by, '1h'), legend]],
    ) + { minmax: [0, 1], steps: [['green', null], ['orange', c.failureRatio / 2], ['red', c.failureRatio]] },
    faults: g.panel(
      'bargauge',
      'Tasks in error by fault code',
      'Tracked tasks now in error, by fault code, as of the last poll (they stay until forgotten '
      + 'after forget_final_after).',
      'short',
      [[
        'sum by (%s, fault_code) (%s)' % [by, dedup(q('upload_task_faults'), ['fault_code'])],
        legend + ' {{fault_code}}',
      ]],
    ) + { steps: [['green', null], ['orange', 1]], instant: true },
    duration: g.panel(
      'timeseries',
      'Task duration (p50, p95)',
      'Created-to-finished time of the tasks that finished (first-seen time where the provider '
      + 'gives no creation time), by final state.',
      's',
      [
        [
          'histogram_quantile(%s, sum by (%s, state, le) (%s))'
          % [quantile, by, dedup(rateOf('upload_task_duration_seconds_bucket'), ['state', 'le'])],
          legend + ' {{state}} p%d' % std.floor(std.parseJson(quantile) * 100 + 0.5),
        ]
        for quantile in ['0.5', '0.95']
      ],
    ),
    poll_up: g.panel(
      'state-timeline',
      'Poll status',
      '1 (up) when the last poll of the set succeeded, 0 (down) when it failed: the set then '
      + 'shows its last known state. Down for 15 minutes is UploadPollDown.',
      'short',
      [['min by (provider, task_set) (%s)' % q('upload_poll_up'), '{{provider}}/{{task_set}}']],
    ) + { steps: [['red', null], ['green', 1]] },
    poll_age: g.panel(
      'timeseries',
      'Time since the last successful poll',
      "Age of each set's data. It grows by the poll interval between polls; a set that never "
      + 'polled successfully shows how long its exporter has run without a success. Red above '
      + '%dh (UploadPollStale).' % (stale / 3600),
      's',
      [[Q.pollAge(q), '{{provider}}/{{task_set}}']],
    ) + { steps: [['green', null], ['orange', stale / 4], ['red', stale]] },
    poll_duration: g.panel(
      'timeseries',
      'Poll duration (p95, mean)',
      'Wall time of one poll of a set, retries and backoff included. Long polls mean slow '
      + 'or throttled APIs, or very large sets.',
      's',
      [
        [
          'histogram_quantile(0.95, sum by (provider, task_set, le) (%s))'
          % dedup(rateOf('upload_poll_duration_seconds_bucket'), ['le']),
          '{{provider}}/{{task_set}} p95',
        ],
        [
          'sum by (provider, task_set) (%s) / sum by (provider, task_set) (%s)'
          % [dedup(rateOf('upload_poll_duration_seconds_sum')), dedup(rateOf('upload_poll_duration_seconds_count'))],
          '{{provider}}/{{task_set}} mean',
        ],
      ],
    ),
    requests: g.panel(
      'timeseries',
      'Provider requests by result',
      'API calls per second by result: ok, api_error (the API answered with an error code), '
      + 'http_error (HTTP status or connection failure), timeout, invalid_response.',
      'reqps',
      [[
        'sum by (%s, result) (%s)' % [by, dedup(rateOf('upload_provider_requests_total'), ['result'])],
        legend + ' {{result}}',
      ]],
    ) + { stack: true },
    api_errors: g.panel(
      'timeseries',
      'API error codes',
      "Error codes the provider APIs answered with, per second (unknown codes as 'other'). "
      + 'Auth codes with no ok calls raise UploadProviderRequestsRefused; throttling codes '
      + "UploadProviderThrottled. The runbook lists each provider's codes.",
      'reqps',
      [[
        'sum by (%s, code) (%s)' % [by, dedup(rateOf('upload_provider_api_errors_total'), ['code'])],
        legend + ' {{code}}',
      ]],
    ) + { stack: true },
    counters:: [
      g.counterPanel(
        pc[0],
        pc[1],
        by,
        legend,
        dedup(rateOf('upload_%s_total' % pc[1].name), if pc[1].label != '' then [pc[1].label] else []),
      )
      for pc in counters
    ],
  }
