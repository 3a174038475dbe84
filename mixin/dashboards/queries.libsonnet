// PromQL of the dashboards: one series per task set whichever replicas export it.
local targetFilters = ['job=~"$job"', 'instance=~"$instance"'];

function(c) {
  targetFilters:: targetFilters,

  // `metric{filters, more}`: the dashboard's filters and the metric's own matchers.
  selector(filters):: function(metric, more=[]) (
    local ms = filters + more;
    if ms == [] then metric else '%s{%s}' % [metric, std.join(', ', ms)]
  ),

  // One series per task set (and `labels`) whichever replicas export it: their max.
  dedup(expr, labels=[]):: 'max by (%s) (%s)' % [std.join(', ', [c.setLabels] + labels), expr],

  // Progress over all tasks: each set's mean progress weighted by its tracked tasks.
  weightedProgress(q)::
    local tasks = $.dedup('sum without (state) (%s)' % q('upload_tasks'));
    'sum(%s * %s) / sum(%s)' % [$.dedup(q('upload_tasks_progress_ratio')), tasks, tasks],

  failureRatio(q, by, window)::
    local failed = 'sum by (%s) (%s)' % [by, $.dedup('rate(%s[%s])' % [q('upload_tasks_failed_total'), window], ['fault_code'])];
    local done = 'sum by (%s) (%s)' % [by, $.dedup('rate(%s[%s])' % [q('upload_tasks_completed_total'), window])];
    '%s / (%s + %s)' % [failed, failed, done],

  // Seconds since each set's last successful poll; for a set that never succeeded (0), the
  // time its exporter has been running without a success (as UploadPollStale counts it).
  pollAge(q)::
    local last = q('upload_poll_last_success_timestamp_seconds');
    local started = 'process_start_time_seconds{%s}' % std.join(', ', targetFilters);
    'time() - max by (provider, task_set, partition) (%s > 0) or max by (provider, task_set, partition) ' % last
    + '((%s == 0) + on (job, instance) group_left () (time() - %s))' % [last, started],
}
