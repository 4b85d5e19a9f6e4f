// Knobs of the nhi-exporter monitoring mixin. Override any of them:
//   (import 'mixin.libsonnet') + { _config+:: { selector: 'job="nhi"' } }
// then regenerate (scripts/gen-mixin.sh writes the checked-in files from
// the defaults below).
{
  _config+:: {
    // Label matchers of the exporter's series (every rule uses them).
    selector: 'job="nhi-exporter"',
    // Labels that differ between replicas or restarts of one exporter:
    // alerts aggregate them away, so a restart under a new pod or address
    // continues the same alert instead of resolving it.
    instanceLabels: ['instance', 'pod'],
    // policy.windows of the exporter (the `window` label values).
    windows: ['7d', '30d', '90d'],
    // critical = act now (page); warning = a ticket for working hours.
    severities: { page: 'critical', ticket: 'warning' },
    runbookURLPattern: 'https://github.com/nhi-exporter/nhi-exporter/blob/main/docs/runbooks.md#%s',
    // Grafana base URL; the alert's dashboard_url is this + /d/<uid>.
    dashboardURL: 'http://grafana.example.com',
    // Security and trend alerts keep firing this long after their condition
    // disappeared (exporter restart, scrape gap, target gone from discovery).
    keepFiringFor: '1h',
    healthKeepFiringFor: '15m',

    thresholds: {
      liveWarningSeconds: 4 * 3600,
      liveCriticalSeconds: 24 * 3600,
      residualWarningSeconds: 3600,
      residualCriticalSeconds: 24 * 3600,
      unverifiedWarningSeconds: 30 * 86400,
      secretsRisingFor: '6h',
      secretsBurst: 10,
      timeToRevokeFactor: 1.25,
      timeToRevokeFloorSeconds: 3600,
      remediationStalledSeconds: 14 * 86400,
      reductionRatioDrop: 0.10,
      theatreGap: 0.5,
      standingPrivilegeRise: 0,
      postureDrop: 0.05,
      governedShareDrop: 0.02,
      trendFor: '1h',
      exporterDownFor: '10m',
      sourceDownFor: '15m',
      neverSucceededFor: '30m',
      // Stale: no success for max(this many seconds, this many intervals).
      staleWarningSeconds: 3600,
      staleWarningIntervals: 12,
      staleCriticalSeconds: 6 * 3600,
      staleCriticalIntervals: 72,
      reloadFailedFor: '5m',
    },
  },
}
