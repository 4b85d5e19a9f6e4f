// Recording rules, named level:metric:operations (Prometheus convention):
// level = the labels kept (`instance`: one series per exporter, aggregated
// by job and instance; `instance_le` keeps the histogram bucket; `window`
// stays where the input has one), metric = the exporter's metric name,
// operations = what was applied.
// Ratios with a zero denominator and quantiles of empty windows are absent.
{
  local c = $._config,
  local m(name) = '%s{%s}' % [name, c.selector],
  local by = 'sum by (job, instance)',
  local ratio(num) = '%s (%s)\n  / (%s (%s) > 0)\n' % [by, m(num), by, m('nhi_identities')],
  local rec(record, expr) = { record: record, expr: expr },

  prometheusRules+:: {
    groups+: [
      {
        name: 'nhi-exporter.recording.inventory',
        rules: [
          rec('instance:nhi_identities:sum', '%s (%s)' % [by, m('nhi_identities')]),
          rec('instance:nhi_human_identities:sum', '%s (%s)' % [by, m('nhi_human_identities')]),
          rec('instance:nhi_identities_per_human:ratio', '%s (%s)\n  / (%s (%s) > 0)\n' % [by, m('nhi_identities'), by, m('nhi_human_identities')]),
          rec('instance:nhi_identities_governed:ratio', ratio('nhi_identities_governed')),
          rec('instance:nhi_identities_owned:ratio', ratio('nhi_identities_owned')),
          rec('instance:nhi_identities_unused:ratio', ratio('nhi_unused_identities')),
          rec('instance:nhi_standing_privileged_identities:sum', '%s (%s)' % [by, m('nhi_standing_privileged_identities')]),
          rec('instance:nhi_standing_privileged_identities:ratio', ratio('nhi_standing_privileged_identities')),
        ],
      },
      {
        name: 'nhi-exporter.recording.remediation',
        rules: [
          // Closure ratio minus reduction ratio per window: positive = tickets
          // close faster than secrets stop working (compliance theatre).
          rec('instance:nhi_theatre_gap:ratio', '%s - %s' % [m('nhi_closure_ratio'), m('nhi_exposure_reduction_ratio')]),
        ],
      },
      {
        name: 'nhi-exporter.recording.quantiles',
        rules: std.flattenArrays([
          [
            rec('instance_le:nhi_%s_seconds_bucket:increase7d' % h, 'sum by (job, instance, le) (increase(%s[7d]))' % m('nhi_%s_seconds_bucket' % h)),
            rec('instance:nhi_%s_seconds:p50_7d' % h, 'histogram_quantile(0.5, instance_le:nhi_%s_seconds_bucket:increase7d) >= 0' % h),
            rec('instance:nhi_%s_seconds:p90_7d' % h, 'histogram_quantile(0.9, instance_le:nhi_%s_seconds_bucket:increase7d) >= 0' % h),
          ]
          for h in ['time_to_revoke', 'time_to_close']
        ]),
      },
    ],
  },
}
