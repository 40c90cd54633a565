// What the alerts, rules and dashboards select on. Override in your own mixin:
//   (import 'dataplane-collector-mixin/mixin.libsonnet') + { _config+:: { selector: 'job="x"' } }
{
  _config+:: {
    // The collector's job: deploy/monitoring/*monitor.yaml set jobLabel so that it is
    // "dataplane-collector" under the Prometheus Operator too.
    selector: 'job="dataplane-collector"',
    // The label naming the node (deploy/monitoring and deploy/prometheus add it).
    nodeLabel: 'node',
    // Where the runbook lives; each alert links to <runbookBase>#<alert in lower case>.
    runbookBase: 'https://github.com/dataplane-collector/dataplane-collector/blob/main/mixin/runbook.md',
    // Fraction of a connection-tracking table that counts as "nearly full".
    conntrackFullRatio: 0.9,
    dashboardTags: ['dataplane-collector'],
    grafanaTimezone: 'utc',
  },
}
