// Recording rules for the aggregations the dashboards draw over many series: the datapath hit
// ratio, per-pod traffic, per-cookie and per-table OpenFlow rates, table fill.
// Names follow level:metric:operations.
{
  local c = self._config,
  local n = c.nodeLabel,
  local rec(name, expr) = { record: name, expr: expr },

  prometheusRules+:: {
    groups+: [
      {
        name: 'dataplane-collector.rules',
        rules: [
          rec('datapath:ovs_datapath_lookups:rate5m',
              'sum by (%s, instance, datapath, type, result) (rate(ovs_datapath_lookups_total{%s}[5m]))' % [n, c.selector]),
          rec('datapath:ovs_datapath_lookups_hit:ratio5m',
              'sum without (result) (datapath:ovs_datapath_lookups:rate5m{result="hit"}) / sum without (result) (datapath:ovs_datapath_lookups:rate5m{result=~"hit|missed"})'),
          rec('namespace_pod:ovs_port_rx_bytes:rate5m',
              'sum by (%s, namespace, pod) (rate(ovs_port_rx_bytes_total{%s, pod!=""}[5m]))' % [n, c.selector]),
          rec('namespace_pod:ovs_port_tx_bytes:rate5m',
              'sum by (%s, namespace, pod) (rate(ovs_port_tx_bytes_total{%s, pod!=""}[5m]))' % [n, c.selector]),
          rec('namespace_pod:ovs_port_dropped:rate5m',
              'sum by (%(n)s, namespace, pod) (rate(ovs_port_rx_dropped_total{%(s)s, pod!=""}[5m]) + rate(ovs_port_tx_dropped_total{%(s)s, pod!=""}[5m]))' % { n: n, s: c.selector }),
          rec('namespace_pod:ebpf_port_rx_bytes:rate5m',
              'sum by (%s, namespace, pod) (rate(ebpf_port_rx_bytes_total{%s, pod!=""}[5m]))' % [n, c.selector]),
          rec('namespace_pod:ebpf_port_tx_bytes:rate5m',
              'sum by (%s, namespace, pod) (rate(ebpf_port_tx_bytes_total{%s, pod!=""}[5m]))' % [n, c.selector]),
          rec('bridge_cookie:ovs_flow_packets:rate5m',
              'sum by (%s, instance, bridge, cookie) (rate(ovs_flow_packets_total{%s}[5m]))' % [n, c.selector]),
          rec('bridge_table:ovs_table_lookups:rate5m',
              'sum by (%s, instance, bridge, table) (rate(ovs_table_lookups_total{%s}[5m]))' % [n, c.selector]),
          rec('bridge_table:ovs_table_matches:rate5m',
              'sum by (%s, instance, bridge, table) (rate(ovs_table_matches_total{%s}[5m]))' % [n, c.selector]),
          rec('instance:conntrack_entries:ratio',
              'conntrack_entries{%(s)s} / (conntrack_max_entries{%(s)s} > 0)' % { s: c.selector }),
          rec('datapath:ovs_conntrack_connections:ratio',
              'ovs_conntrack_connections{%(s)s} / (ovs_conntrack_max_connections{%(s)s} > 0)' % { s: c.selector }),
          rec('datapath:ovs_upcall_flows:ratio',
              'ovs_upcall_flows{%(s)s} / (ovs_upcall_flow_limit{%(s)s} > 0)' % { s: c.selector }),
        ],
      },
    ],
  },
}
