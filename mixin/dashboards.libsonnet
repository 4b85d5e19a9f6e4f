// Grafana dashboards. scripts/gen-dashboards.py writes dashboards/*.json;
// the mixin applies _config to them: the `job` variable lists only the jobs
// matching _config.selector, and each alert's dashboard_url points at these
// uids. scripts/gen-mixin.sh --check verifies that the default _config
// reproduces the checked-in files.
{
  local c = $._config,
  local files = {
    'nhi-exporter.json': importstr '../dashboards/nhi-exporter.json',
    'nhi-exposure.json': importstr '../dashboards/nhi-exposure.json',
    'nhi-identities.json': importstr '../dashboards/nhi-identities.json',
    'nhi-outcomes.json': importstr '../dashboards/nhi-outcomes.json',
  },
  local jobQuery = 'label_values(nhi_exporter_build_info{%s}, job)' % c.selector,
  local withSelector(d) = d {
    templating+: {
      list: [
        if v.name == 'job' then v {
          definition: jobQuery,
          query+: { query: jobQuery },
        } else v
        for v in super.list
      ],
    },
  },

  grafanaDashboards+:: {
    [name]: withSelector(std.parseJson(files[name]))
    for name in std.objectFields(files)
  },
}
