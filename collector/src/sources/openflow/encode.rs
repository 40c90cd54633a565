//! Metrics of the `openflow` source. Names are fixed (dashboards rely on them); `docs/metrics.md`
//! maps them to the seed exporter's.

use super::{BridgeData, Snapshot};
use crate::exposition::{LabelArena, MetricType, Writer};
use crate::openflow::message::{PortStats, UNSUPPORTED};

type PortCounter = (&'static str, &'static str, fn(&PortStats) -> u64);

const PORT_COUNTERS: &[PortCounter] = &[
    (
        "ovs_port_rx_packets_total",
        "Packets received by the OpenFlow port.",
        |s| s.rx_packets,
    ),
    (
        "ovs_port_tx_packets_total",
        "Packets transmitted by the OpenFlow port.",
        |s| s.tx_packets,
    ),
    (
        "ovs_port_rx_bytes_total",
        "Bytes received by the OpenFlow port.",
        |s| s.rx_bytes,
    ),
    (
        "ovs_port_tx_bytes_total",
        "Bytes transmitted by the OpenFlow port.",
        |s| s.tx_bytes,
    ),
    (
        "ovs_port_rx_dropped_total",
        "Packets dropped on receive by the OpenFlow port.",
        |s| s.rx_dropped,
    ),
    (
        "ovs_port_tx_dropped_total",
        "Packets dropped on transmit by the OpenFlow port.",
        |s| s.tx_dropped,
    ),
    (
        "ovs_port_rx_errors_total",
        "Receive errors on the OpenFlow port.",
        |s| s.rx_errors,
    ),
    (
        "ovs_port_tx_errors_total",
        "Transmit errors on the OpenFlow port.",
        |s| s.tx_errors,
    ),
    (
        "ovs_port_rx_frame_errors_total",
        "Frame alignment errors on the OpenFlow port.",
        |s| s.rx_frame_err,
    ),
    (
        "ovs_port_rx_over_errors_total",
        "Receive overrun errors on the OpenFlow port.",
        |s| s.rx_over_err,
    ),
    (
        "ovs_port_rx_crc_errors_total",
        "CRC errors on the OpenFlow port.",
        |s| s.rx_crc_err,
    ),
    (
        "ovs_port_collisions_total",
        "Collisions on the OpenFlow port.",
        |s| s.collisions,
    ),
];

fn ok_bridges(s: &Snapshot) -> impl Iterator<Item = (&str, &BridgeData)> {
    s.bridges
        .iter()
        .filter_map(|b| b.outcome.as_ref().ok().map(|d| (b.bridge.as_str(), d)))
}

pub fn encode(s: &Snapshot, flow_actions: bool, w: &mut Writer) {
    w.family(
        "ovs_openflow_up",
        "1 if the bridge answered every OpenFlow request of this scrape, 0 if not (see the daemon's log for why).",
        MetricType::Gauge,
    );
    for b in &s.bridges {
        w.sample("ovs_openflow_up")
            .label("bridge", &b.bridge)
            .value_u64(u64::from(b.outcome.is_ok()));
    }

    if ok_bridges(s).any(|(_, d)| d.read_ports) {
        encode_ports(s, w);
    }
    if ok_bridges(s).any(|(_, d)| d.read_flows) {
        encode_flows(s, flow_actions, w);
    }
    if ok_bridges(s).any(|(_, d)| d.read_tables) {
        encode_tables(s, w);
    }
    if ok_bridges(s).any(|(_, d)| d.read_groups) {
        encode_groups(s, w);
    }
}

fn encode_ports(s: &Snapshot, w: &mut Writer) {
    for (name, help, get) in PORT_COUNTERS {
        w.family(name, help, MetricType::Counter);
        for (bridge, d) in ok_bridges(s) {
            for p in &d.ports {
                let v = get(&p.stats);
                if v == UNSUPPORTED {
                    continue;
                }
                let mut smp = w
                    .sample(name)
                    .label("bridge", bridge)
                    .label("port", &p.name)
                    .label_u64("ofport", u64::from(p.stats.port_no));
                if let Some(pod) = d.pods.get(&p.name) {
                    smp = smp
                        .label("pod", &pod.pod)
                        .label("namespace", &pod.namespace);
                }
                smp.value_u64(v);
            }
        }
    }
}

fn encode_flows(s: &Snapshot, flow_actions: bool, w: &mut Writer) {
    #[derive(Clone, Copy, PartialEq)]
    enum Value {
        Packets,
        Bytes,
        Duration,
    }
    let families = [
        (
            "ovs_flow_packets_total",
            "Packets that matched the OpenFlow flow entry.",
            MetricType::Counter,
            Value::Packets,
        ),
        (
            "ovs_flow_bytes_total",
            "Bytes that matched the OpenFlow flow entry.",
            MetricType::Counter,
            Value::Bytes,
        ),
        (
            "ovs_flow_duration_seconds",
            "Time since the OpenFlow flow entry was installed.",
            MetricType::Gauge,
            Value::Duration,
        ),
    ];
    // Each flow's labels are rendered once and written into all three families.
    let arenas: Vec<(&str, &BridgeData, LabelArena)> = ok_bridges(s)
        .map(|(bridge, d)| {
            // Sized exactly up front: growing a 10 MB buffer by doubling would copy it and
            // hold both copies at once.
            let fixed =
                r#"bridge="",table="255",priority="65535",cookie="0xffffffffffffffff",match="""#
                    .len()
                    + bridge.len()
                    + if flow_actions {
                        r#","actions="""#.len()
                    } else {
                        0
                    };
            let text: usize = d
                .flows
                .iter()
                .map(|f| f.match_text.len() + f.actions.map_or(0, str::len))
                .sum();
            let mut arena = LabelArena::with_capacity(d.flows.len(), fixed * d.flows.len() + text);
            for f in d.flows.iter() {
                arena
                    .label("bridge", bridge)
                    .label_u64("table", u64::from(f.table_id))
                    .label_u64("priority", u64::from(f.priority))
                    .label_hex("cookie", f.cookie)
                    .label("match", f.match_text);
                if flow_actions {
                    arena.label("actions", f.actions.unwrap_or(""));
                }
                arena.finish();
            }
            (bridge, d, arena)
        })
        .collect();
    for (name, help, kind, value) in families {
        w.family(name, help, kind);
        for (bridge, d, arena) in &arenas {
            for (i, f) in d.flows.iter().enumerate() {
                let smp = w.sample(name).labels_raw(arena.get(i));
                match value {
                    Value::Packets => smp.value_u64(f.packets),
                    Value::Bytes => smp.value_u64(f.bytes),
                    Value::Duration => smp.value_duration(f.duration_sec, f.duration_nsec),
                }
            }
            // Folded flows: one series per (table, cookie), match="*", no priority.
            if value != Value::Duration {
                for f in &d.folded {
                    let smp = w
                        .sample(name)
                        .label("bridge", bridge)
                        .label_u64("table", u64::from(f.table_id))
                        .label_hex("cookie", f.cookie)
                        .label("match", "*");
                    smp.value_u64(if value == Value::Packets {
                        f.packets
                    } else {
                        f.bytes
                    });
                }
            }
            if w.is_closed() {
                return;
            }
        }
    }
    w.family(
        "ovs_flow_series_folded",
        "Flows of the bridge past --ovs.max-flow-series, summed into match=\"*\" series per (table, cookie).",
        MetricType::Gauge,
    );
    for (bridge, d) in ok_bridges(s) {
        if d.read_flows {
            w.sample("ovs_flow_series_folded")
                .label("bridge", bridge)
                .value_u64(d.folded_count);
        }
    }
}

fn encode_tables(s: &Snapshot, w: &mut Writer) {
    // Open vSwitch reports all 255 tables; only tables in use are shown.
    let used = |t: &&crate::openflow::TableStats| {
        t.active_count > 0 || t.lookup_count > 0 || t.matched_count > 0
    };
    w.family(
        "ovs_table_active_flows",
        "Flow entries in the OpenFlow table (tables with no flows and no lookups are not shown).",
        MetricType::Gauge,
    );
    for (bridge, d) in ok_bridges(s) {
        for t in d.tables.iter().filter(used) {
            w.sample("ovs_table_active_flows")
                .label("bridge", bridge)
                .label_u64("table", u64::from(t.table_id))
                .value_u64(u64::from(t.active_count));
        }
    }
    w.family(
        "ovs_table_lookups_total",
        "Packets looked up in the OpenFlow table.",
        MetricType::Counter,
    );
    for (bridge, d) in ok_bridges(s) {
        for t in d.tables.iter().filter(used) {
            w.sample("ovs_table_lookups_total")
                .label("bridge", bridge)
                .label_u64("table", u64::from(t.table_id))
                .value_u64(t.lookup_count);
        }
    }
    w.family(
        "ovs_table_matches_total",
        "Packets that hit a flow entry in the OpenFlow table.",
        MetricType::Counter,
    );
    for (bridge, d) in ok_bridges(s) {
        for t in d.tables.iter().filter(used) {
            w.sample("ovs_table_matches_total")
                .label("bridge", bridge)
                .label_u64("table", u64::from(t.table_id))
                .value_u64(t.matched_count);
        }
    }
}

fn encode_groups(s: &Snapshot, w: &mut Writer) {
    let type_of = |g: &super::Group| g.desc.as_ref().map_or("unknown", |d| d.group_type.name());
    for (name, help) in [
        (
            "ovs_group_packets_total",
            "Packets processed by the OpenFlow group.",
        ),
        (
            "ovs_group_bytes_total",
            "Bytes processed by the OpenFlow group.",
        ),
    ] {
        w.family(name, help, MetricType::Counter);
        for (bridge, d) in ok_bridges(s) {
            for g in &d.groups {
                w.sample(name)
                    .label("bridge", bridge)
                    .label_u64("group_id", u64::from(g.stats.group_id))
                    .label("type", type_of(g))
                    .value_u64(if name == "ovs_group_packets_total" {
                        g.stats.packets
                    } else {
                        g.stats.bytes
                    });
            }
        }
    }
    w.family(
        "ovs_group_references",
        "Flow entries and groups that forward to the OpenFlow group.",
        MetricType::Gauge,
    );
    for (bridge, d) in ok_bridges(s) {
        for g in &d.groups {
            w.sample("ovs_group_references")
                .label("bridge", bridge)
                .label_u64("group_id", u64::from(g.stats.group_id))
                .label("type", type_of(g))
                .value_u64(u64::from(g.stats.ref_count));
        }
    }
    w.family(
        "ovs_group_duration_seconds",
        "Time since the OpenFlow group was installed.",
        MetricType::Gauge,
    );
    for (bridge, d) in ok_bridges(s) {
        for g in &d.groups {
            w.sample("ovs_group_duration_seconds")
                .label("bridge", bridge)
                .label_u64("group_id", u64::from(g.stats.group_id))
                .label("type", type_of(g))
                .value_duration(g.stats.duration_sec, g.stats.duration_nsec);
        }
    }
    for (name, help) in [
        (
            "ovs_group_bucket_packets_total",
            "Packets sent through the bucket of the OpenFlow group.",
        ),
        (
            "ovs_group_bucket_bytes_total",
            "Bytes sent through the bucket of the OpenFlow group.",
        ),
    ] {
        w.family(name, help, MetricType::Counter);
        for (bridge, d) in ok_bridges(s) {
            for g in &d.groups {
                for (i, (packets, bytes)) in g.stats.buckets.iter().enumerate() {
                    w.sample(name)
                        .label("bridge", bridge)
                        .label_u64("group_id", u64::from(g.stats.group_id))
                        .label_u64("bucket", i as u64)
                        .value_u64(if name == "ovs_group_bucket_packets_total" {
                            *packets
                        } else {
                            *bytes
                        });
                }
            }
        }
    }
    w.family(
        "ovs_group_bucket_weight",
        "Weight of the bucket in a select group.",
        MetricType::Gauge,
    );
    for (bridge, d) in ok_bridges(s) {
        for g in &d.groups {
            let Some(desc) = &g.desc else { continue };
            if desc.group_type != crate::openflow::GroupType::Select {
                continue;
            }
            for (i, b) in desc.buckets.iter().enumerate() {
                w.sample("ovs_group_bucket_weight")
                    .label("bridge", bridge)
                    .label_u64("group_id", u64::from(g.stats.group_id))
                    .label_u64("bucket", i as u64)
                    .value_u64(u64::from(b.weight));
            }
        }
    }
}
