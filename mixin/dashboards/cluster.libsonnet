// The overview's row on replicas sharing state on Redis (--state.redis-url). These are each
// replica's own series: leases held are disjoint, so their sum over replicas is the cluster's;
// the other gauges are every replica's view of the same cluster, so the max (or min) is taken.
// Without --state.redis-url the series are absent and the panels show no data.
local g = import 'panels.libsonnet';

function(c, q) [
  g.stat('Replicas', 'Live replicas of the job as the replicas see them (upload_cluster_members; the largest view).',
         'short', 'max(%s)' % q('upload_cluster_members'), w=6),
  g.stat('Replicas without Redis', 'Replicas that cannot reach the Redis store (upload_store_up 0): they hold no lease.',
         'short', 'count(%s == 0) or vector(0)' % q('upload_store_up'), w=6) + { steps: g.oneIsBad },
  g.stat('Unowned units', 'Leasable units (task sets or partitions) with no live lease in the worst view of any '
                          + 'replica: nobody polls them. UploadClusterUnitsUnowned past %s.' % c.unitsUnownedFor,
         'short', 'max(%s)' % q('upload_cluster_units_unowned'), w=6) + { steps: g.oneIsBad },
  g.stat('Configurations', 'Distinct configuration hashes among the replicas of each job; more than one is '
                           + 'UploadClusterConfigMismatch past %s.' % c.configMismatchFor,
         'short', 'max(count by (job) (count by (job, hash) (%s)))' % q('upload_config_hash'), w=6)
  + { steps: [['green', null], ['orange', 2]] },
  g.panel(
    'timeseries',
    'Units: leasable, held, unowned',
    'Leasable units (task sets times partitions), the leases the replicas hold between them, and the '
    + 'units no live replica holds. Held should equal leasable.',
    'short',
    [
      ['max by (job) (%s)' % q('upload_cluster_units'), '{{job}} leasable'],
      ['sum by (job) (%s)' % q('upload_lease_held'), '{{job}} held'],
      ['max by (job) (%s)' % q('upload_cluster_units_unowned'), '{{job}} unowned'],
    ],
    w=12,
  ),
  g.panel(
    'timeseries',
    'Lease losses',
    'Leases lost per hour by task set, over its partitions and replicas: a replica that could not renew '
    + 'in time. Many is UploadLeasesFlapping.',
    'short',
    [['3600 * sum by (provider, task_set) (rate(%s[$__rate_interval]))' % q('upload_lease_lost_total'),
      '{{provider}}/{{task_set}}']],
    w=12,
  ),
]
