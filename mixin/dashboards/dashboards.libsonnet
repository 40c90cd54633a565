// grafanaDashboards: one file name -> Grafana dashboard JSON each.
local g = import 'g.libsonnet';
{
  local c = self._config,
  local n = c.nodeLabel,
  // The selectors every panel uses: the job, and the node variable.
  local s = '%s, %s=~"$node"' % [c.selector, n],
  local sp = s + ', namespace=~"$namespace", pod=~"$pod"',
  local ri = '$__rate_interval',
  local nodeVar = g.labelVar(n, 'dataplane_collector_build_info', c.selector),
  local dash(uid, title, description, vars, panels) =
    g.dashboard(uid, title, description, [nodeVar] + vars, panels, c.dashboardTags, c.grafanaTimezone),

  grafanaDashboards+:: {
    'dataplane-node-overview.json': dash(
      'dpc-node-overview',
      'Dataplane / Node overview',
      'Per-pod traffic (OVSDB interface statistics and eBPF port counters), the OVS datapath (lookups, upcalls, flows) and connection tracking of a node.',
      [
        g.labelVar('namespace', 'ovs_interface_rx_bytes_total', '%s, pod!=""' % s),
        g.labelVar('pod', 'ovs_interface_rx_bytes_total', '%s, namespace=~"$namespace", pod!=""' % s),
      ],
      [
        g.panel('Pod receive (OVSDB interface statistics)', [
          ['sum by (%s, namespace, pod) (rate(ovs_interface_rx_bytes_total{%s, pod!=""}[%s]))' % [n, sp, ri], '{{namespace}}/{{pod}}'],
        ], 'Bps', description='What the pods\' OVS interfaces received (ovs_interface_rx_bytes_total, from OVSDB Interface statistics).'),
        g.panel('Pod transmit (OVSDB interface statistics)', [
          ['sum by (%s, namespace, pod) (rate(ovs_interface_tx_bytes_total{%s, pod!=""}[%s]))' % [n, sp, ri], '{{namespace}}/{{pod}}'],
        ], 'Bps'),
        g.panel('Pod receive (eBPF)', [
          ['sum by (%s, namespace, pod) (rate(ebpf_port_rx_bytes_total{%s, pod!=""}[%s]))' % [n, sp, ri], '{{namespace}}/{{pod}}'],
        ], 'Bps', description='The eBPF TC programs\' per-port counters (docs/ebpf.md); empty when the eBPF collector is off.'),
        g.panel('Pod transmit (eBPF)', [
          ['sum by (%s, namespace, pod) (rate(ebpf_port_tx_bytes_total{%s, pod!=""}[%s]))' % [n, sp, ri], '{{namespace}}/{{pod}}'],
        ], 'Bps'),
        g.panel('Pod drops (OVSDB interface statistics)', [
          ['sum by (%s, namespace, pod) (rate(ovs_interface_rx_dropped_total{%s, pod!=""}[%s]) + rate(ovs_interface_tx_dropped_total{%s, pod!=""}[%s]))' % [n, sp, ri, sp, ri], '{{namespace}}/{{pod}}'],
        ], 'pps'),
        g.panel('Per-pod traffic, 5m (recorded)', [
          ['namespace_pod:ovs_port_rx_bytes:rate5m{%s=~"$node", namespace=~"$namespace", pod=~"$pod"}' % n, 'rx {{namespace}}/{{pod}}'],
          ['namespace_pod:ovs_port_tx_bytes:rate5m{%s=~"$node", namespace=~"$namespace", pod=~"$pod"}' % n, 'tx {{namespace}}/{{pod}}'],
        ], 'Bps', description='The OpenFlow port counters summed per pod by the recording rules.'),
        g.panel('Datapath lookups', [
          ['sum by (%s, datapath, result) (rate(ovs_datapath_lookups_total{%s}[%s]))' % [n, s, ri], '{{datapath}} {{result}}'],
        ], 'pps', description='hit: a datapath flow matched; missed: sent to ovs-vswitchd as an upcall; lost: could not be queued.'),
        g.panel('Datapath hit ratio, 5m (recorded)', [
          ['datapath:ovs_datapath_lookups_hit:ratio5m{%s=~"$node"}' % n, '{{datapath}}'],
        ], 'percentunit'),
        g.panel('Upcalls', [
          ['sum by (%s, datapath) (rate(ovs_datapath_lookups_total{%s, result="missed"}[%s]))' % [n, s, ri], 'missed {{datapath}}'],
          ['sum by (%s, datapath) (rate(ovs_datapath_lookups_total{%s, result="lost"}[%s]))' % [n, s, ri], 'lost {{datapath}}'],
          ['sum by (%s, result) (rate(ovs_pmd_upcalls_total{%s}[%s]))' % [n, s, ri], 'PMD {{result}}'],
        ], 'pps'),
        g.panel('Upcalls per port (eBPF)', [
          ['topk(10, sum by (%s, bridge, port) (rate(ebpf_ovs_upcalls_total{%s}[%s])))' % [n, s, ri], '{{bridge}} {{port}}'],
        ], 'pps'),
        g.panel('Datapath flows', [
          ['sum by (%s, datapath) (ovs_datapath_flows{%s})' % [n, s], 'flows {{datapath}}'],
          ['sum by (%s, datapath) (ovs_upcall_flows{%s})' % [n, s], 'revalidator flows {{datapath}}'],
          ['max by (%s, datapath) (ovs_upcall_flow_limit{%s})' % [n, s], 'flow limit {{datapath}}'],
        ]),
        g.panel('Conntrack fill', [
          ['instance:conntrack_entries:ratio{%s=~"$node"}' % n, 'kernel {{instance}}'],
          ['datapath:ovs_conntrack_connections:ratio{%s=~"$node"}' % n, 'OVS {{datapath}}'],
        ], 'percentunit', description='Entries over the table\'s maximum: the kernel (nf_conntrack) and the OVS userspace datapath.'),
        g.panel('Conntrack drops and failures', [
          ['sum by (%s) (rate(conntrack_drop_total{%s}[%s]))' % [n, s, ri], 'drop'],
          ['sum by (%s) (rate(conntrack_early_drop_total{%s}[%s]))' % [n, s, ri], 'early drop'],
          ['sum by (%s) (rate(conntrack_insert_failed_total{%s}[%s]))' % [n, s, ri], 'insert failed'],
        ], 'ops'),
        g.panel('Coverage: flow limit and netlink overflow', [
          ['sum by (%s, event) (rate(ovs_coverage_total{%s, event=~"upcall_flow_limit_hit|netlink_overflow"}[%s]))' % [n, s, ri], '{{event}}'],
        ], 'ops'),
      ]
    ),

    'dataplane-openflow.json': dash(
      'dpc-openflow',
      'Dataplane / OpenFlow',
      'OpenFlow rules of the node\'s bridges: the busiest cookies, tables and groups.',
      [],
      [
        g.panel('Top cookies by packets', [
          ['topk(10, sum by (%s, bridge, cookie) (rate(ovs_flow_packets_total{%s}[%s])))' % [n, s, ri], '{{bridge}} {{cookie}}'],
        ], 'pps'),
        g.panel('Top cookies by bytes', [
          ['topk(10, sum by (%s, bridge, cookie) (rate(ovs_flow_bytes_total{%s}[%s])))' % [n, s, ri], '{{bridge}} {{cookie}}'],
        ], 'Bps'),
        g.panel('Cookies, 5m (recorded)', [
          ['topk(20, bridge_cookie:ovs_flow_packets:rate5m{%s=~"$node"})' % n, '{{bridge}} {{cookie}}'],
        ], 'pps', kind='table', instant=true),
        g.panel('Table lookups', [
          ['sum by (%s, bridge, table) (rate(ovs_table_lookups_total{%s}[%s]))' % [n, s, ri], '{{bridge}} table {{table}}'],
        ], 'ops'),
        g.panel('Table matches, 5m (recorded)', [
          ['bridge_table:ovs_table_matches:rate5m{%s=~"$node"}' % n, '{{bridge}} table {{table}}'],
        ], 'ops'),
        g.panel('Active flows per table', [
          ['sum by (%s, bridge, table) (ovs_table_active_flows{%s})' % [n, s], '{{bridge}} table {{table}}'],
        ]),
        g.panel('Group packets', [
          ['sum by (%s, bridge, group_id, type) (rate(ovs_group_packets_total{%s}[%s]))' % [n, s, ri], '{{bridge}} group {{group_id}} ({{type}})'],
        ], 'pps'),
        g.panel('Group bucket packets', [
          ['sum by (%s, bridge, group_id, bucket) (rate(ovs_group_bucket_packets_total{%s}[%s]))' % [n, s, ri], '{{bridge}} group {{group_id}} bucket {{bucket}}'],
        ], 'pps', description='A select group\'s buckets should share the traffic.'),
        g.panel('Flow series folded', [
          ['sum by (%s, bridge) (ovs_flow_series_folded{%s})' % [n, s], '{{bridge}}'],
        ], description='Flows beyond --ovs.max-flow-series, summed into one series per table.'),
      ]
    ),

    'dataplane-ipvs.json': dash(
      'dpc-ipvs',
      'Dataplane / IPVS',
      'IPVS virtual services and real servers (docs/ipvs.md).',
      [],
      [
        g.panel('Virtual services', [
          ['sum by (%s, instance) (ipvs_services{%s})' % [n, s], '{{instance}}'],
        ], kind='stat', width=6),
        g.panel('Real servers', [
          ['sum by (%s, instance) (ipvs_destinations{%s})' % [n, s], '{{instance}}'],
        ], kind='stat', width=6),
        g.panel('New connections by service', [
          ['topk(10, sum by (%s, protocol, address, port) (rate(ipvs_service_connections_total{%s}[%s])))' % [n, s, ri], '{{protocol}} {{address}}:{{port}}'],
        ], 'cps'),
        g.panel('Service bytes', [
          ['topk(10, sum by (%s, protocol, address, port) (rate(ipvs_service_bytes_in_total{%s}[%s])))' % [n, s, ri], 'in {{protocol}} {{address}}:{{port}}'],
          ['topk(10, sum by (%s, protocol, address, port) (rate(ipvs_service_bytes_out_total{%s}[%s])))' % [n, s, ri], 'out {{protocol}} {{address}}:{{port}}'],
        ], 'Bps'),
        g.panel('Active connections by real server', [
          ['topk(10, sum by (%s, address, port, destination_address, destination_port) (ipvs_destination_active_connections{%s}))' % [n, s], '{{address}}:{{port}} → {{destination_address}}:{{destination_port}}'],
        ]),
        g.panel('Inactive connections by real server', [
          ['topk(10, sum by (%s, address, port, destination_address, destination_port) (ipvs_destination_inactive_connections{%s}))' % [n, s], '{{address}}:{{port}} → {{destination_address}}:{{destination_port}}'],
        ]),
        g.panel('New connections (eBPF, ip_vs_conn_new)', [
          ['topk(10, sum by (%s, protocol, address, port, destination_address, destination_port) (rate(ebpf_ipvs_new_connections_total{%s}[%s])))' % [n, s, ri], '{{address}}:{{port}} → {{destination_address}}:{{destination_port}}'],
        ], 'cps'),
      ]
    ),

    'dataplane-sriov.json': dash(
      'dpc-sriov',
      'Dataplane / SR-IOV',
      'SR-IOV physical functions, their VFs\' counters and the pods the kubelet gave them to (docs/sriov.md).',
      [],
      [
        g.panel('VFs per PF', [
          ['sum by (%s, pf) (sriov_pf_vfs{%s})' % [n, s], '{{pf}} VFs'],
          ['sum by (%s, pf) (sriov_pf_vfs_max{%s})' % [n, s], '{{pf}} max'],
        ]),
        g.panel('VF receive', [
          ['sum by (%s, pf, vf) (rate(sriov_vf_rx_bytes_total{%s}[%s]))' % [n, s, ri], '{{pf}} VF {{vf}}'],
        ], 'Bps'),
        g.panel('VF transmit', [
          ['sum by (%s, pf, vf) (rate(sriov_vf_tx_bytes_total{%s}[%s]))' % [n, s, ri], '{{pf}} VF {{vf}}'],
        ], 'Bps'),
        g.panel('VF errors and drops', [
          ['sum by (%s, pf, vf) (rate(sriov_vf_tx_errors_total{%s}[%s]))' % [n, s, ri], 'tx errors {{pf}} VF {{vf}}'],
          ['sum by (%s, pf, vf) (rate(sriov_vf_rx_dropped_total{%s}[%s]))' % [n, s, ri], 'rx dropped {{pf}} VF {{vf}}'],
          ['sum by (%s, pf, vf) (rate(sriov_vf_tx_dropped_total{%s}[%s]))' % [n, s, ri], 'tx dropped {{pf}} VF {{vf}}'],
        ], 'pps'),
        g.panel('VF receive by pod', [
          ['sum by (%(n)s, namespace, pod) (rate(sriov_vf_rx_bytes_total{%(s)s}[%(ri)s]) * on (instance, pciAddr) group_left (namespace, pod) max by (instance, pciAddr, namespace, pod) (sriov_kubepoddevice{%(s)s}))' % { n: n, s: s, ri: ri }, '{{namespace}}/{{pod}}'],
        ], 'Bps', description='VF counters joined with the kubelet\'s pod-resources allocation (sriov_kubepoddevice) on the VF\'s PCI address.'),
        g.panel('Devices allocated to pods', [
          ['sriov_kubepoddevice{%s}' % s, ''],
        ], kind='table', instant=true),
      ]
    ),

    'dataplane-collector-health.json': dash(
      'dpc-collector-health',
      'Dataplane / Collector health',
      'Is each collector of each node scraping, how long it takes, and the bounds it hit.',
      [],
      [
        g.panel('Targets up', [
          ['sum(up{%s})' % s, 'up'],
          ['count(up{%s})' % s, 'targets'],
        ], kind='stat', width=6),
        g.panel('Failing collectors', [
          ['count(dataplane_collector_scrape_success{%(s)s} == 0 and on (%(n)s, instance, job, collector) dataplane_collector_source_available{%(s)s} == 1) or vector(0)' % { s: s, n: n }, 'failing'],
        ], kind='stat', width=6),
        g.panel('Collector version', [
          ['count by (version) (dataplane_collector_build_info{%s})' % s, '{{version}}'],
        ], kind='stat', width=12),
        g.panel('Scrape success per collector', [
          ['min by (collector) (dataplane_collector_scrape_success{%s})' % s, '{{collector}}'],
        ], description='1: the last scrape of this collector succeeded; 0: it failed (see dataplane_collector_source_available: an absent subsystem is not a failure).'),
        g.panel('Source available per collector', [
          ['min by (collector) (dataplane_collector_source_available{%s})' % s, '{{collector}}'],
        ]),
        g.panel('Scrape duration per collector', [
          ['max by (collector) (dataplane_collector_scrape_duration_seconds{%s})' % s, '{{collector}}'],
        ], 's'),
        g.panel('Limits exceeded', [
          ['sum by (%s, instance, limit) (rate(dataplane_collector_limit_exceeded_total{%s}[%s]))' % [n, s, ri], '{{instance}} {{limit}}'],
        ], 'ops', description='Inputs past their bound (docs/limits.md).'),
        g.panel('eBPF map full', [
          ['sum by (%s, instance, map) (rate(dataplane_collector_ebpf_map_full_total{%s}[%s]))' % [n, s, ri], '{{instance}} {{map}}'],
        ], 'ops'),
        g.panel('OVSDB connection', [
          ['min by (%s, instance) (dataplane_collector_ovsdb_connected{%s})' % [n, s], '{{instance}}'],
        ]),
      ]
    ),
  },
}
