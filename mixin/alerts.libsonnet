// Alerting rules. Every alert aggregates the per-replica labels away
// (_config.instanceLabels), so a restart or a new pod continues the same
// alert; security and trend alerts keep firing through scrape gaps
// (keep_firing_for); ages and previous-window values come from the
// exporter's store, so no rule needs Prometheus to hold days of one instance.
{
  local c = $._config,
  local t = c.thresholds,
  local sel(extra='') = '{%s}' % std.join(', ', [c.selector] + (if extra == '' then [] else [extra])),
  local m(name, extra='') = name + sel(extra),
  local agg(e) = 'max without (%s) (%s)' % [std.join(', ', c.instanceLabels), e],
  local n(x) = std.toString(x),
  // One rule per alert over every configured window: `window` stays a label.
  local wsel = 'window=~"%s"' % std.join('|', c.windows),
  // Thresholds in descriptions go through Prometheus' own humanize
  // functions, so the number in the text is the number in the expression
  // (also when the Helm chart substitutes its values).
  local pct(x) = '{{ %s | humanizePercentage }}' % n(x),
  local dur(s) = '{{ %s | humanizeDuration }}' % n(s),
  local alert(name, sev, area, expr, summary, description, forDur=null, keep=c.keepFiringFor, dashboard='nhi-outcomes') = {
    alert: name,
    expr: expr,
    labels: { severity: c.severities[sev], area: area },
    annotations: {
      summary: summary,
      description: description,
      runbook_url: c.runbookURLPattern % std.asciiLower(name),
      dashboard_url: '%s/d/%s' % [c.dashboardURL, dashboard],
    },
  } + (if forDur != null then { 'for': forDur } else {})
    + (if keep != null then { keep_firing_for: keep } else {}),

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'nhi-exporter.exposure',
        rules: [
          alert(
            'NHILiveSecretExposed', b.sev, 'exposure',
            '%s > %s' % [agg(m('nhi_exposure_oldest_open_age_seconds', 'validity="live"')), n(b.age)],
            'A live secret has been exposed for {{ $value | humanizeDuration }}',
            'The oldest open exposure whose secret still works (job {{ $labels.job }}) has been open for {{ $value | humanizeDuration }} (threshold %s). Revoke or rotate the secret, then close the findings. OWASP NHI2 Secret Leakage; NIST CSF 2.0 RS.MI-01, RS.MI-02.' % dur(b.age),
            forDur='5m', dashboard='nhi-exposure',
          )
          for b in [{ sev: 'ticket', age: t.liveWarningSeconds }, { sev: 'page', age: t.liveCriticalSeconds }]
        ] + [
          alert(
            'NHIResidualExposures', b.sev, 'exposure',
            '%s > %s' % [agg(m('nhi_residual_exposure_oldest_age_seconds')), n(b.age)],
            'A closed exposure has still had a working secret for {{ $value | humanizeDuration }}',
            'An exposure of job {{ $labels.job }} has had all its findings closed while its secret still works for {{ $value | humanizeDuration }} (threshold %s): the ticket was closed, the risk was not. nhi_residual_exposures says how many. OWASP NHI2 Secret Leakage; NIST CSF 2.0 RS.MI-02, GV.OV-03.' % dur(b.age),
            dashboard='nhi-exposure',
          )
          for b in [{ sev: 'ticket', age: t.residualWarningSeconds }, { sev: 'page', age: t.residualCriticalSeconds }]
        ] + [
          alert(
            'NHIUnverifiedExposureAging', 'ticket', 'exposure',
            '%s > %s' % [agg(m('nhi_exposure_oldest_open_age_seconds', 'validity="unknown"')), n(t.unverifiedWarningSeconds)],
            'An exposed secret nobody verified has been open for {{ $value | humanizeDuration }}',
            'The oldest open exposure of job {{ $labels.job }} whose secret no scanner or inventory could verify has been open for {{ $value | humanizeDuration }} (threshold %s). Treat it as live: rotate it, or verify it and close the findings. OWASP NHI2 Secret Leakage; NIST CSF 2.0 RS.MI-02.' % dur(t.unverifiedWarningSeconds),
            forDur='5m', dashboard='nhi-exposure',
          ),
        ] + [
          alert(
            'NHISecretsInCodeRising', 'ticket', 'exposure',
            '%s > 0' % agg(m('nhi_secrets_in_code_delta', wsel)),
            '{{ $value }} more secrets exposed in code than {{ $labels.window }} ago',
            'Distinct open exposures of job {{ $labels.job }} rose by {{ $value }} over the last {{ $labels.window }} and stayed up for %s: secrets leak faster than they are removed. OWASP NHI2 Secret Leakage; NIST CSF 2.0 RS.MI-02, GV.OV-03.' % t.secretsRisingFor,
            forDur=t.secretsRisingFor, dashboard='nhi-exposure',
          )
        ] + [
          alert(
            'NHISecretsInCodeBurst', 'page', 'exposure',
            '%s >= %s' % [agg(m('nhi_secrets_in_code_delta', 'window="%s"' % c.windows[0])), n(t.secretsBurst)],
            '{{ $value }} more secrets exposed in code than {{ $labels.window }} ago',
            'Distinct open exposures of job {{ $labels.job }} rose by {{ $value }} over the last {{ $labels.window }} (threshold %s): a burst of new leaks. Find the repositories and revoke. OWASP NHI2 Secret Leakage; NIST CSF 2.0 RS.MI-02, GV.OV-03.' % n(t.secretsBurst),
            forDur='15m', dashboard='nhi-exposure',
          ),
          alert(
            'NHIRemediationStalled', 'ticket', 'exposure',
            '(%s > %s)\n  and on (job) (sum by (job) (%s) > 0)' % [
              agg(m('nhi_exposure_revocation_idle_seconds')),
              n(t.remediationStalledSeconds),
              agg(m('nhi_exposed_secrets', 'validity=~"live|unknown"')),
            ],
            'No exposure confirmed revoked for {{ $value | humanizeDuration }} while exposures are open',
            'Job {{ $labels.job }} has open live or unverified exposures and no exposure was confirmed revoked for {{ $value | humanizeDuration }} (threshold %s): remediation has stopped, whatever the ticket count says. OWASP NHI2 Secret Leakage; NIST CSF 2.0 RS.MI-02, GV.OV-03.' % dur(t.remediationStalledSeconds),
          ),
        ] + [
          alert(
            'NHITimeToRevokeRegressing', 'ticket', 'exposure',
            '%s\n  > %s * %s\nand %s > %s' % [
              agg(m('nhi_time_to_revoke_median_seconds', wsel)),
              n(t.timeToRevokeFactor),
              agg(m('nhi_time_to_revoke_median_previous_seconds', wsel)),
              agg(m('nhi_time_to_revoke_median_seconds', wsel)),
              n(t.timeToRevokeFloorSeconds),
            ],
            'Median time to revoke over {{ $labels.window }} rose to {{ $value | humanizeDuration }}',
            'The exact median time from first detection to confirmed revocation over the last {{ $labels.window }} is {{ $value | humanizeDuration }} for job {{ $labels.job }}, more than %sx the median of the {{ $labels.window }} before (both computed by the exporter). OWASP NHI2 Secret Leakage; NIST CSF 2.0 RS.MI-02, GV.OV-03.' % n(t.timeToRevokeFactor),
            forDur=t.trendFor,
          )
        ] + [
          alert(
            'NHIExposureReductionFalling', 'ticket', 'exposure',
            '%s\n  < %s - %s' % [
              agg(m('nhi_exposure_reduction_ratio', wsel)),
              agg(m('nhi_exposure_reduction_ratio_previous', wsel)),
              n(t.reductionRatioDrop),
            ],
            'Exposure reduction ratio over {{ $labels.window }} fell to {{ $value | humanizePercentage }}',
            'The share of exposures confirmed revoked over the last {{ $labels.window }} is {{ $value | humanizePercentage }} for job {{ $labels.job }}, more than %s below the {{ $labels.window }} before. OWASP NHI2 Secret Leakage; NIST CSF 2.0 RS.MI-02.' % pct(t.reductionRatioDrop),
            forDur=t.trendFor,
          )
        ] + [
          alert(
            'NHIComplianceTheatreGap', 'ticket', 'exposure',
            '(%s\n  - %s) > %s\nand on (job) (sum by (job) (%s) > 0)' % [
              agg(m('nhi_closure_ratio', wsel)),
              agg(m('nhi_exposure_reduction_ratio', wsel)),
              n(t.theatreGap),
              agg(m('nhi_exposures_revoked_total')),
            ],
            'Findings close {{ $value | humanizePercentage }} points faster than exposures are revoked ({{ $labels.window }})',
            'Over the last {{ $labels.window }} the closure ratio of findings exceeds the exposure reduction ratio by {{ $value | humanizePercentage }} points (threshold %s) for job {{ $labels.job }}: tickets are closed without the secrets being revoked (activity, not outcome). Only where revocations can be confirmed at all. OWASP NHI2 Secret Leakage; NIST CSF 2.0 GV.OV-03.' % pct(t.theatreGap),
            forDur=t.trendFor,
          )
        ],
      },
      {
        name: 'nhi-exporter.posture',
        rules: [
          alert(
            'NHIStandingPrivilegeRising', 'ticket', 'privilege',
            '%s > %s' % [agg(m('nhi_standing_privileged_identities_change', wsel)), n(t.standingPrivilegeRise)],
            '{{ $value }} more standing privileged NHIs in {{ $labels.source }} than {{ $labels.window }} ago',
            'Source {{ $labels.source }} of job {{ $labels.job }} reports {{ $value }} more non-human identities holding admin-equivalent rights permanently than {{ $labels.window }} ago (computed by the exporter from its store; a newly added source starts at 0). OWASP NHI5 Overprivileged NHI; NIST CSF 2.0 PR.AA-05.',
            forDur=t.trendFor, dashboard='nhi-identities',
          )
        ] + [
          alert(
            'NHIGovernedShareFalling', 'ticket', 'governance',
            '%s < -%s' % [agg(m('nhi_posture_score_change', 'dimension="governance", ' + wsel)), n(t.governedShareDrop)],
            'Governed share of NHIs changed by {{ $value | humanizePercentage }} points in {{ $labels.window }}',
            'The share of NHIs inside a governed lifecycle (owned, credentials rotated or within max age, used within unused_after) of job {{ $labels.job }} changed by {{ $value | humanizePercentage }} points over the last {{ $labels.window }} (threshold -%s). OWASP NHI1 Improper Offboarding, NHI7 Long-Lived Secrets; NIST CSF 2.0 PR.AA-01, ID.AM-08.' % pct(t.governedShareDrop),
            forDur=t.trendFor, dashboard='nhi-identities',
          )
        ] + [
          alert(
            'NHIPostureScoreDropping', 'ticket', 'posture',
            '%s < -%s' % [agg(m('nhi_posture_score_change', 'dimension!~"governance|exposure", ' + wsel)), n(t.postureDrop)],
            'NHI posture ({{ $labels.dimension }}) changed by {{ $value | humanizePercentage }} points in {{ $labels.window }}',
            'The {{ $labels.dimension }} posture score of job {{ $labels.job }} changed by {{ $value | humanizePercentage }} points over the last {{ $labels.window }} (threshold -%s). A slow drift shows in the longer windows first. OWASP NHI1, NHI2, NHI5, NHI7; NIST CSF 2.0 GV.OV-03.' % pct(t.postureDrop),
            forDur=t.trendFor,
          )
        ],
      },
      {
        name: 'nhi-exporter.health',
        rules: [
          alert(
            'NHIExporterDown', 'ticket', 'exporter',
            '%s == 0' % agg('up%s' % sel()),
            'nhi-exporter (job {{ $labels.job }}) cannot be scraped',
            'Prometheus has failed to scrape every target of job {{ $labels.job }} for %s. Every NHI KPI and alert is blind until it is back; security alerts that were firing keep firing for %s. NIST CSF 2.0 DE.CM-09, GV.OV-03.' % [t.exporterDownFor, c.keepFiringFor],
            forDur=t.exporterDownFor, keep=null, dashboard='nhi-exporter',
          ),
          alert(
            'NHIExporterAbsent', 'ticket', 'exporter',
            'absent(up%s)' % sel(),
            'No nhi-exporter target is discovered',
            'Prometheus has no target matching %s for %s: the exporter vanished from service discovery (uninstalled, renamed job, broken ServiceMonitor). Every NHI alert is blind. NIST CSF 2.0 DE.CM-09, GV.OV-03.' % [c.selector, t.exporterDownFor],
            forDur=t.exporterDownFor, keep=null, dashboard='nhi-exporter',
          ),
          alert(
            'NHISourceDown', 'ticket', 'exporter',
            '%s == 0\nand %s > 0' % [agg(m('nhi_source_up')), agg(m('nhi_source_last_success_timestamp_seconds'))],
            'Source {{ $labels.source }} ({{ $labels.source_type }}) is down',
            'The latest polls of source {{ $labels.source }} (type {{ $labels.source_type }}) of job {{ $labels.job }} have been failing for %s. Once it has not succeeded for policy.stale_after its data is dropped and KPIs under-count. NIST CSF 2.0 DE.CM-09, GV.OV-03.' % t.sourceDownFor,
            forDur=t.sourceDownFor, keep=c.healthKeepFiringFor, dashboard='nhi-exporter',
          ),
          alert(
            'NHISourceNeverSucceeded', 'ticket', 'exporter',
            '%s == 0' % agg(m('nhi_source_last_success_timestamp_seconds')),
            'Source {{ $labels.source }} ({{ $labels.source_type }}) has never polled successfully',
            'Source {{ $labels.source }} (type {{ $labels.source_type }}) of job {{ $labels.job }} has not completed one successful poll in %s: its data was never in the KPIs. Usually credentials, permissions or an address in the configuration. NIST CSF 2.0 DE.CM-09, PR.PS-01.' % t.neverSucceededFor,
            forDur=t.neverSucceededFor, keep=c.healthKeepFiringFor, dashboard='nhi-exporter',
          ),
        ] + [
          alert(
            'NHISourceStale', b.sev, 'exporter',
            '(time() - %s)\n  > %s' % [
              agg(m('nhi_source_last_success_timestamp_seconds') + ' > 0'),
              'clamp_min(%s * %s, %s)' % [agg(m('nhi_source_interval_seconds')), n(b.k), n(b.secs)],
            ],
            'Source {{ $labels.source }} has not succeeded for {{ $value | humanizeDuration }}',
            'Source {{ $labels.source }} (type {{ $labels.source_type }}) of job {{ $labels.job }} last polled successfully {{ $value | humanizeDuration }} ago (threshold: %s intervals, at least %s). Its data is no longer in the KPIs. NIST CSF 2.0 DE.CM-09, GV.OV-03.' % [n(b.k), dur(b.secs)],
            forDur='5m', keep=c.healthKeepFiringFor, dashboard='nhi-exporter',
          )
          for b in [
            { sev: 'ticket', secs: t.staleWarningSeconds, k: t.staleWarningIntervals },
            { sev: 'page', secs: t.staleCriticalSeconds, k: t.staleCriticalIntervals },
          ]
        ] + [
          alert(
            'NHIConfigReloadFailed', 'ticket', 'exporter',
            '%s == 0' % m('nhi_config_last_reload_successful'),
            'nhi-exporter {{ $labels.instance }} failed to reload its configuration',
            'The last configuration reload of {{ $labels.instance }} (job {{ $labels.job }}) failed; it keeps running the previous configuration, so config changes (new sources, policy) are not in effect. Per instance: a restart loads the configuration afresh (or refuses to start). NIST CSF 2.0 PR.PS-01.',
            forDur=t.reloadFailedFor, keep=c.healthKeepFiringFor, dashboard='nhi-exporter',
          ),
        ],
      },
    ],
  },
}
