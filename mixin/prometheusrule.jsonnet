// deploy/monitoring/prometheusrule.yaml: the mixin's alerts and recording rules as a
// Prometheus Operator PrometheusRule (mixin/generate.sh).
local mixin = import 'mixin.libsonnet';
'# Generated from mixin/ by mixin/generate.sh: do not edit.\n' +
std.manifestYamlDoc({
  apiVersion: 'monitoring.coreos.com/v1',
  kind: 'PrometheusRule',
  metadata: {
    name: 'dataplane-collector',
    namespace: 'dataplane-collector',
    labels: { 'app.kubernetes.io/name': 'dataplane-collector' },
  },
  spec: {
    groups: mixin.prometheusRules.groups + mixin.prometheusAlerts.groups,
  },
}, indent_array_in_object=true, quote_keys=false) + '\n'
