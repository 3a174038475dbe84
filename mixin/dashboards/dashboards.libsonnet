// The two dashboards as panel tables. Panels read only the metric contract and split by the
// `provider` label, so a new provider shows up without a dashboard change. Every query is
// filtered by the `job` and `instance` variables and takes the max over replicas (`dedup`)
// before it sums, so replicas watching the same sets do not double a panel.
local g = import 'panels.libsonnet';

local drillDown =
  '/d/upload-status-provider/upload-status-provider?var-datasource=${datasource}'
  + '&${job:queryparam}&${instance:queryparam}'
  + '&var-provider=${__data.fields.provider}&var-task_set=${__data.fields.task_set}&${__url_time_range}';

local widen(c) = {
  [k]: c[k] { w: if k == 'poll_up' || k == 'duration' then 24 else 12 }
  for k in std.objectFields(c)
} + { counters: [p { w: 12 } for p in c.counters] };

local rowsOf(wide, backlog, polling, extra) = [
  ['Backlog', backlog],
  ['Completions and failures', [wide.rates, wide.ratio, wide.failures, wide.faults, wide.duration]],
  [polling, [wide.poll_up, wide.poll_age, wide.poll_duration, wide.requests, wide.api_errors]],
] + extra + [['Provider-specific counters', wide.counters]];

function(c)
  local Q = (import 'queries.libsonnet')(c);
  local dedup = Q.dedup;
  local eta = c.etaLimitSeconds;
  local stale = c.stalePollSeconds;
  local etaSteps = [['green', null], ['orange', eta / 2], ['red', eta]];
  local failedSteps = [['green', null], ['orange', 1], ['red', 10]];
  local neverMapping = [{ type: 'value', options: { '0': { text: 'never', color: 'red', index: 0 } } }];

  // One row per task set, the columns from instant queries merged on provider and task_set.
  local setsTable(q) =
    local columns = [
      ['Poll', 'min by (provider, task_set) (%s)' % q('upload_poll_up')],
      ['Pending', 'sum by (provider, task_set) (%s)' % dedup(q('upload_tasks', [g.st('pending')]))],
      ['In error', 'sum by (provider, task_set) (%s)' % dedup(q('upload_tasks', [g.st('error')]))],
      ['ETA', 'max by (provider, task_set) (%s)' % q('upload_tasks_eta_seconds')],
      ['Progress', 'max by (provider, task_set) (%s)' % q('upload_tasks_progress_ratio')],
      ['Since last success', Q.pollAge(q)],
    ];
    local n = std.length(columns);
    g.panel(
      'table',
      'Task sets',
      'Every task set of every provider, as of its last poll: poll health, backlog, ETA, progress and '
      + 'the age of its data. Click a provider or task set to open the drill-down dashboard.',
      'short',
      [[col[1], ''] for col in columns],
      w=24,
    ) + {
      overrides: [
        g.override('Poll', {
          mappings: g.upDownMapping,
          thresholds: g.thresholds([['red', null], ['green', 1]]),
          custom_cellOptions: { type: 'color-background' },
        }),
        g.override('In error', {
          thresholds: g.thresholds([['green', null], ['orange', 1]]),
          custom_cellOptions: { type: 'color-text' },
        }),
        g.override('ETA', { unit: 's', thresholds: g.thresholds(etaSteps), custom_cellOptions: { type: 'color-text' } }),
        g.override('Progress', { unit: 'percentunit', min: 0, max: 1, custom_cellOptions: { type: 'gauge', mode: 'basic' } }),
        g.override('Since last success', {
          unit: 's',
          thresholds: g.thresholds([['green', null], ['orange', stale / 4], ['red', stale]]),
          custom_cellOptions: { type: 'color-text' },
        }),
        g.override('provider', { links: [{ title: 'Drill down', url: drillDown }] }),
        g.override('task_set', { links: [{ title: 'Drill down', url: drillDown }] }),
      ],
      extra: {
        transformations: [
          { id: 'merge', options: {} },
          {
            id: 'organize',
            options: {
              excludeByName: { Time: true },
              indexByName: { provider: 0, task_set: 1 } + { [columns[i][0]]: i + 2 for i in std.range(0, n - 1) },
              renameByName: { ['Value #' + 'ABCDEFGH'[i]]: columns[i][0] for i in std.range(0, n - 1) },
            },
          },
        ],
      },
    };

  // `job` (the jobs the job selector picks) and `instance`: every query filters by both.
  local targetVariables = [
    g.variableQuery('job', 'Job', 'label_values(upload_build_info{%s}, job)' % c.jobSelector, true),
    g.variableQuery('instance', 'Instance', 'label_values(upload_build_info{job=~"$job"}, instance)', true),
  ];

  local overview =
    local q = Q.selector(Q.targetFilters);
    local wide = widen((import 'common.libsonnet')(c, q, 'provider', '{{provider}}'));
    local failed1h = dedup('increase(%s[1h])' % q('upload_tasks_failed_total'), ['fault_code']);
    local glance = [
      g.stat('Pending tasks', 'Upload tasks queued or in progress, over every provider and task set.', 'short',
             'sum(%s)' % dedup(q('upload_tasks', [g.st('pending')]))),
      g.stat('Tasks in error', 'Tracked tasks now in error, over every provider (kept until forget_final_after).', 'short',
             'sum(%s)' % dedup(q('upload_tasks', [g.st('error')]))) + { steps: [['green', null], ['orange', 1]] },
      g.stat('Failed in the last hour', 'Tasks that turned to error in the last hour, over every provider.', 'short',
             'sum(%s) or vector(0)' % failed1h) + { decimals: 0, steps: failedSteps },
      g.stat('Longest ETA', "The longest expected time until a task set's pending tasks finish.", 's',
             'max(%s)' % q('upload_tasks_eta_seconds')) + { steps: etaSteps },
      g.stat('Overall progress', 'Mean progress of every tracked task, finished ones counting 100%.', 'percentunit',
             Q.weightedProgress(q)) + { minmax: [0, 1] },
      g.stat('Task sets down', 'Task sets whose last poll failed; they show their last known state.', 'short',
             'count(min by (%s) (%s) == 0) or vector(0)' % [c.setLabels, q('upload_poll_up')]) + { steps: g.oneIsBad },
      setsTable(q),
    ];
    g.dashboard(
      'upload-status-overview',
      'Upload status / Overview',
      'Upload backlogs, failures, ETAs and poll health of every provider watched by upload-status-exporter.',
      [['At a glance', glance]]
      + rowsOf(wide, [wide.by_state, wide.pending, wide.eta, wide.progress], 'Polling and provider APIs',
               [['Replicas on Redis', (import 'cluster.libsonnet')(c, q)]]),
      [g.variableDs()] + targetVariables,
    );

  local perProvider =
    local q = Q.selector(Q.targetFilters + ['provider=~"$provider"', 'task_set=~"$task_set"']);
    local wide = widen((import 'common.libsonnet')(c, q, 'provider, task_set', '{{task_set}}'));
    local tasksIn(state) = 'sum(%s)' % dedup(q('upload_tasks', [g.st(state)]));
    local glance = [
      g.stat('Pending', 'Tasks queued or in progress in the selected task sets.', 'short', tasksIn('pending'), w=3),
      g.stat('Done', 'Tracked tasks that finished successfully (kept until forget_final_after).', 'short',
             tasksIn('done'), w=3),
      g.stat('In error', 'Tracked tasks that failed (kept until forget_final_after).', 'short', tasksIn('error'), w=3)
      + { steps: [['green', null], ['orange', 1]] },
      g.stat('Not found', 'Task IDs the provider does not know (expired, mistyped or deleted).', 'short',
             tasksIn('not_found'), w=3) + { steps: [['green', null], ['orange', 1]] },
      g.stat('Failed in the last hour', 'Tasks that turned to error in the last hour.', 'short',
             'sum(%s) or vector(0)' % dedup('increase(%s[1h])' % q('upload_tasks_failed_total'), ['fault_code']), w=3)
      + { decimals: 0, steps: failedSteps },
      g.stat('ETA', 'The longest expected time until the pending tasks of a selected set finish.', 's',
             'max(%s)' % q('upload_tasks_eta_seconds'), w=3) + { steps: etaSteps },
      g.stat('Progress', 'Mean progress of the tracked tasks, finished ones counting 100%.', 'percentunit',
             Q.weightedProgress(q), w=3) + { minmax: [0, 1] },
      g.stat('Last successful poll',
             'When the least recently polled selected set was last polled '
             + "successfully; 'never' when one of them has not succeeded yet.",
             'dateTimeFromNow', 'min(%s) * 1000' % q('upload_poll_last_success_timestamp_seconds'), w=3)
      + { mappings: neverMapping },
    ];
    local statuses = g.panel(
      'timeseries',
      'Tasks by provider status',
      "Tracked tasks by the provider's own status value (unknown values as 'other'): finer than the "
      + "normalized state, e.g. encoding_com's Downloading/Processing/Saving.",
      'short',
      [['sum by (status) (%s)' % dedup(q('upload_tasks_provider_status'), ['status']), '{{status}}']],
      w=12,
    ) + { stack: true };
    local perTask = '%s == 1' % q('upload_task_state', [g.st('error|pending|not_found')]);
    local tasks = g.panel(
      'table',
      'Tasks in error or pending (per-task series)',
      'One row per task from the opt-in per-task series (task sets with per_task_series > 0, capped; '
      + 'tasks in error first). Empty when no selected set enables them.',
      'short',
      [[dedup(perTask, ['task_id', 'state', 'status']), '']],
      w=24,
      h=10,
    ) + {
      extra: {
        transformations: [{
          id: 'organize',
          options: {
            excludeByName: { Time: true, Value: true, __name__: true, job: true, instance: true },
            indexByName: { provider: 0, task_set: 1, task_id: 2, state: 3, status: 4 },
            renameByName: {},
          },
        }],
      },
    };
    local sets = 'upload_poll_up{job=~"$job", instance=~"$instance"';
    g.dashboard(
      'upload-status-provider',
      'Upload status / Provider',
      'One provider\'s task sets in detail: backlog by state and provider status, failures by '
      + 'fault code, ETA, progress, poll health and API results.',
      [['At a glance', glance]]
      + rowsOf(wide, [wide.by_state, statuses, wide.pending, wide.eta, wide.progress], 'Polling and provider API',
               [['Tasks', [tasks]]]),
      [g.variableDs()] + targetVariables + [
        g.variableQuery('provider', 'Provider', 'label_values(%s}, provider)' % sets, false),
        g.variableQuery('task_set', 'Task set', 'label_values(%s, provider=~"$provider"}, task_set)' % sets, true),
      ],
    );

  {
    'upload-status-overview.json': overview,
    'upload-status-provider.json': perProvider,
  }
