// Everything under mixin/generated/: `jsonnet -S -m mixin/generated mixin/generated.jsonnet`
// (mixin/generate.sh).
local mixin = import 'mixin.libsonnet';
local yaml(v) = std.manifestYamlDoc(v, indent_array_in_object=true, quote_keys=false) + '\n';
{
  'prometheus_alerts.yaml': yaml(mixin.prometheusAlerts),
  'prometheus_rules.yaml': yaml(mixin.prometheusRules),
} + {
  ['dashboards/' + name]: std.manifestJsonEx(mixin.grafanaDashboards[name], '  ') + '\n'
  for name in std.objectFields(mixin.grafanaDashboards)
}
