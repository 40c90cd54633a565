// The dataplane-collector monitoring mixin (https://monitoring.mixins.dev layout):
// prometheusAlerts, prometheusRules and grafanaDashboards, configured by _config.
(import 'config.libsonnet') +
(import 'alerts/alerts.libsonnet') +
(import 'rules/rules.libsonnet') +
(import 'dashboards/dashboards.libsonnet')
