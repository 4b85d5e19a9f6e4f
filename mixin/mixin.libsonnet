// nhi-exporter monitoring mixin: prometheusAlerts, prometheusRules and
// grafanaDashboards, parameterised by _config (config.libsonnet).
(import 'config.libsonnet') +
(import 'alerts.libsonnet') +
(import 'rules.libsonnet') +
(import 'dashboards.libsonnet')
