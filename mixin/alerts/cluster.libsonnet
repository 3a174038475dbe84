// Alerts on replicas sharing state on Redis (--state.redis-url): the store unreachable, units
// nobody holds, replicas running different configurations, leases changing hands too often.
// Without --state.redis-url none of these series exist and none of these alerts can fire.
local util = import '../lib/util.libsonnet';

function(c)
  local s(metric, matchers=[]) = util.sel(metric, [c.jobSelector] + matchers);
  {
    name: 'upload-status.cluster',
    rules: [
      {
        alert: 'UploadStoreDown',
        comment:: 'A replica cannot reach the Redis store: it takes no lease and applies no poll until it can.',
        expr: '%s == 0\n' % s('upload_store_up'),
        'for': c.storeDownFor,
        labels: { severity: 'critical' },
        annotations: {
          summary: 'upload-status-exporter {{ $labels.instance }} cannot reach its Redis store',
          description: 'The replica of upload-status-exporter at {{ $labels.instance }} has not reached its Redis '
                       + 'store (--state.redis-url) for %s: it holds no lease, so the task sets it held are ' % c.storeDownFor
                       + 'polled by other replicas or by nobody.',
        },
      },
      {
        alert: 'UploadClusterUnitsUnowned',
        comment:: |||
          Units (task sets, or partitions of large ones) that no live replica holds a lease on: nobody
          polls them. The worst view of any replica counts, so one replica's stale view is enough.
        |||,
        expr: 'max by (job) (%s) > 0\n' % s('upload_cluster_units_unowned'),
        'for': c.unitsUnownedFor,
        labels: { severity: 'critical' },
        annotations: {
          summary: '{{ $value }} upload unit(s) of job {{ $labels.job }} are polled by no replica',
          description: '{{ $value }} leasable unit(s) (task sets or their partitions) of job {{ $labels.job }} have '
                       + 'had no live lease for %s: no replica polls them and their metrics are going stale. ' % c.unitsUnownedFor
                       + 'Check that replicas run and reach Redis (upload_cluster_members, upload_store_up).',
        },
      },
      {
        alert: 'UploadClusterConfigMismatch',
        comment:: |||
          Replicas of one job run different configurations (upload_config_hash): a rollout stuck half
          way, or a ConfigMap reloaded by some replicas only. Leases move between them unpredictably.
        |||,
        expr: 'count by (job) (count by (job, hash) (%s)) > 1\n' % s('upload_config_hash'),
        'for': c.configMismatchFor,
        labels: { severity: 'warning' },
        annotations: {
          summary: 'Replicas of {{ $labels.job }} run {{ $value }} different configurations',
          description: 'The replicas of job {{ $labels.job }} report {{ $value }} different configuration hashes '
                       + '(upload_config_hash) for %s. Finish the rollout or reload every replica, so that ' % c.configMismatchFor
                       + 'a task set is polled the same way whichever replica holds it.',
        },
      },
      {
        alert: 'UploadLeasesFlapping',
        comment:: |||
          Leases of one task set keep being lost (summed over its partitions and replicas): replicas
          that cannot renew in time (overloaded, or Redis slow), so the set's polls start over elsewhere.
        |||,
        expr: 'sum by (job, provider, task_set) (increase(%s[1h])) > %d\n' % [s('upload_lease_lost_total'), c.leaseLossesPerHour],
        'for': '15m',
        labels: { severity: 'warning' },
        annotations: {
          summary: 'Leases of {{ $labels.provider }} set {{ $labels.task_set }} keep changing hands',
          description: 'Replicas lost {{ printf "%.0f" $value }} lease(s) of task set {{ $labels.task_set }} at provider '
                       + '{{ $labels.provider }} in the last hour (limit ' + c.leaseLossesPerHour + '): its polls are '
                       + 'cut short and start over on another replica.',
        },
      },
    ],
  }
