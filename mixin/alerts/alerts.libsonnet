// Alerts. Each has a runbook section in mixin/runbook.md (anchor: the alert's name in lower
// case) and a promtool unit test in mixin/tests/<AlertName>.yaml (firing and not firing).
{
  local c = self._config,
  local alert(name, expr, forDur, severity, summary, description) = {
    alert: name,
    expr: expr,
    'for': forDur,
    labels: { severity: severity },
    annotations: {
      summary: summary,
      description: description,
      runbook_url: '%s#%s' % [c.runbookBase, std.asciiLower(name)],
    },
  },

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'dataplane-collector.alerts',
        rules: [
          alert(
            'DataplaneCollectorDown',
            'up{%s} == 0' % c.selector,
            '5m',
            'warning',
            'The dataplane collector on {{ $labels.instance }} cannot be scraped.',
            'Prometheus has failed to scrape {{ $labels.instance }} for 5 minutes: no data-plane metrics from that node.',
          ),
          alert(
            'DataplaneCollectorSourceFailing',
            'dataplane_collector_scrape_success{%(s)s} == 0 and on (%(n)s, instance, job, collector) dataplane_collector_source_available{%(s)s} == 1' % { s: c.selector, n: c.nodeLabel },
            '5m',
            'warning',
            'The {{ $labels.collector }} collector fails on {{ $labels.instance }}.',
            'The {{ $labels.collector }} source is present on {{ $labels.instance }} but its scrapes have failed for 5 minutes; its series are missing. The daemon log says why.',
          ),
          alert(
            'OVSDatapathLostUpcalls',
            'rate(ovs_datapath_lookups_total{%s, result="lost"}[5m]) > 0' % c.selector,
            '5m',
            'warning',
            'Datapath {{ $labels.datapath }} on {{ $labels.instance }} loses upcalls.',
            'Packets that missed the {{ $labels.datapath }} flow table could not be queued to ovs-vswitchd ({{ $value | humanize }}/s): they were dropped.',
          ),
          alert(
            'OVSFlowLimitHit',
            'increase(ovs_coverage_total{%s, event="upcall_flow_limit_hit"}[5m]) > 0' % c.selector,
            '5m',
            'warning',
            'ovs-vswitchd on {{ $labels.instance }} refuses datapath flows at its flow limit.',
            'ovs-vswitchd hit its datapath flow limit {{ $value | humanize }} times in 5 minutes: new flows are not installed and their packets take the slow path.',
          ),
          alert(
            'ConntrackTableNearlyFull',
            '(conntrack_entries{%(s)s} / conntrack_max_entries{%(s)s} > %(r)s) and conntrack_max_entries{%(s)s} > 0' % { s: c.selector, r: c.conntrackFullRatio },
            '5m',
            'warning',
            'The kernel conntrack table on {{ $labels.instance }} is {{ $value | humanizePercentage }} full.',
            'When nf_conntrack_max is reached the kernel drops new connections. The kernel conntrack table on {{ $labels.instance }} is {{ $value | humanizePercentage }} full.',
          ),
          alert(
            'OVSConntrackTableNearlyFull',
            '(ovs_conntrack_connections{%(s)s} / ovs_conntrack_max_connections{%(s)s} > %(r)s) and ovs_conntrack_max_connections{%(s)s} > 0' % { s: c.selector, r: c.conntrackFullRatio },
            '5m',
            'warning',
            'The userspace conntrack of {{ $labels.datapath }} on {{ $labels.instance }} is {{ $value | humanizePercentage }} full.',
            'When the userspace datapath conntrack reaches its maximum, ovs-vswitchd refuses new connections. {{ $labels.datapath }} on {{ $labels.instance }} is {{ $value | humanizePercentage }} full.',
          ),
          alert(
            'SRIOVVFErrors',
            'increase(sriov_vf_tx_errors_total{%(s)s}[10m]) > 0 or increase(sriov_vf_rx_dropped_total{%(s)s}[10m]) > 0 or increase(sriov_vf_tx_dropped_total{%(s)s}[10m]) > 0' % { s: c.selector },
            '10m',
            'warning',
            'VF {{ $labels.vf }} of {{ $labels.pf }} on {{ $labels.instance }} has errors or drops.',
            'VF {{ $labels.vf }} ({{ $labels.pciAddr }}) of {{ $labels.pf }} counted {{ $value | humanize }} transmit errors or drops in 10 minutes.',
          ),
          alert(
            'DataplaneCollectorEbpfMapFull',
            'increase(dataplane_collector_ebpf_map_full_total{%s}[5m]) > 0' % c.selector,
            '0m',
            'warning',
            'The eBPF map {{ $labels.map }} on {{ $labels.instance }} is full.',
            'The {{ $labels.map }} map refused {{ $value | humanize }} new entries in 5 minutes: the eBPF series undercount the traffic of new ports or flows.',
          ),
          alert(
            'DataplaneCollectorLimitExceeded',
            'increase(dataplane_collector_limit_exceeded_total{%s}[5m]) > 0' % c.selector,
            '0m',
            'warning',
            'The collector on {{ $labels.instance }} hit its {{ $labels.limit }} limit.',
            'An input went past the bound {{ $labels.limit }} ({{ $value | humanize }} times in 5 minutes; see docs/limits.md): the series it bounds are incomplete.',
          ),
        ],
      },
    ],
  },
}
