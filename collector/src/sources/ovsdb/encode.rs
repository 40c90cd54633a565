//! Metrics of the `ovsdb` source: every Interface's `statistics`, link and admin state, link
//! resets, MTU and speed, and an info series with the pod it belongs to.

use super::Snapshot;
use super::attribution::Attribution;
use crate::exposition::{LabelArena, MetricType, Writer};
use crate::ovsdb::InterfaceView;

/// `statistics` keys with a metric of their own: (key, metric, help).
const STATS: &[(&str, &str, &str)] = &[
    (
        "rx_packets",
        "ovs_interface_rx_packets_total",
        "Packets received by the interface.",
    ),
    (
        "tx_packets",
        "ovs_interface_tx_packets_total",
        "Packets transmitted by the interface.",
    ),
    (
        "rx_bytes",
        "ovs_interface_rx_bytes_total",
        "Bytes received by the interface.",
    ),
    (
        "tx_bytes",
        "ovs_interface_tx_bytes_total",
        "Bytes transmitted by the interface.",
    ),
    (
        "rx_dropped",
        "ovs_interface_rx_dropped_total",
        "Packets dropped on receive.",
    ),
    (
        "tx_dropped",
        "ovs_interface_tx_dropped_total",
        "Packets dropped on transmit.",
    ),
    (
        "rx_errors",
        "ovs_interface_rx_errors_total",
        "Receive errors.",
    ),
    (
        "tx_errors",
        "ovs_interface_tx_errors_total",
        "Transmit errors.",
    ),
    (
        "rx_frame_err",
        "ovs_interface_rx_frame_errors_total",
        "Frame alignment errors on receive.",
    ),
    (
        "rx_over_err",
        "ovs_interface_rx_over_errors_total",
        "Receive overrun errors.",
    ),
    (
        "rx_crc_err",
        "ovs_interface_rx_crc_errors_total",
        "CRC errors on receive.",
    ),
    (
        "collisions",
        "ovs_interface_collisions_total",
        "Collisions.",
    ),
    (
        "rx_missed_errors",
        "ovs_interface_rx_missed_errors_total",
        "Packets the device missed on receive.",
    ),
    (
        "rx_multicast_packets",
        "ovs_interface_rx_multicast_packets_total",
        "Multicast packets received.",
    ),
    (
        "tx_multicast_packets",
        "ovs_interface_tx_multicast_packets_total",
        "Multicast packets transmitted.",
    ),
    (
        "rx_broadcast_packets",
        "ovs_interface_rx_broadcast_packets_total",
        "Broadcast packets received.",
    ),
    (
        "tx_broadcast_packets",
        "ovs_interface_tx_broadcast_packets_total",
        "Broadcast packets transmitted.",
    ),
    (
        "rx_undersized_errors",
        "ovs_interface_rx_undersized_errors_total",
        "Undersized packets received.",
    ),
    (
        "rx_oversize_errors",
        "ovs_interface_rx_oversize_errors_total",
        "Oversized packets received.",
    ),
    (
        "rx_fragmented_errors",
        "ovs_interface_rx_fragmented_errors_total",
        "Fragmented packets received.",
    ),
    (
        "rx_jabber_errors",
        "ovs_interface_rx_jabber_errors_total",
        "Jabber packets received.",
    ),
    (
        "upcall_packets",
        "ovs_interface_upcall_packets_total",
        "Packets the userspace datapath sent up to ovs-vswitchd (the slow path).",
    ),
    (
        "upcall_errors",
        "ovs_interface_upcall_errors_total",
        "Upcalls that failed.",
    ),
];

/// The size buckets OVS reports as `rx_<lo>_to_<hi>_packets` / `tx_…` (DPDK and some drivers).
fn size_bucket(key: &str) -> Option<(&'static str, &str)> {
    let (dir, rest) = if let Some(r) = key.strip_prefix("rx_") {
        ("rx", r)
    } else if let Some(r) = key.strip_prefix("tx_") {
        ("tx", r)
    } else {
        return None;
    };
    let range = rest.strip_suffix("_packets")?;
    let (lo, hi) = range.split_once("_to_")?;
    (lo.bytes().all(|b| b.is_ascii_digit())
        && (hi == "max" || hi.bytes().all(|b| b.is_ascii_digit())))
    .then_some((dir, range))
}

/// `statistics` key → its place in [`STATS`].
fn stat_index() -> &'static std::collections::HashMap<&'static str, usize> {
    static INDEX: std::sync::OnceLock<std::collections::HashMap<&'static str, usize>> =
        std::sync::OnceLock::new();
    INDEX.get_or_init(|| {
        STATS
            .iter()
            .enumerate()
            .map(|(i, (k, _, _))| (*k, i))
            .collect()
    })
}

#[cfg(test)]
fn known(key: &str) -> bool {
    STATS.iter().any(|(k, _, _)| *k == key) || size_bucket(key).is_some()
}

/// Where an OVS `statistics` key is served: the metric name and the extra label (if any) that
/// tells it apart. The encoder and the tests share this mapping.
pub fn series_for(key: &str) -> (&'static str, Option<(&'static str, String)>) {
    if let Some((_, name, _)) = STATS.iter().find(|(k, _, _)| *k == key) {
        return (name, None);
    }
    if let Some((dir, range)) = size_bucket(key) {
        let name = if dir == "rx" {
            "ovs_interface_rx_size_packets_total"
        } else {
            "ovs_interface_tx_size_packets_total"
        };
        return (name, Some(("size", range.to_owned())));
    }
    (
        "ovs_interface_statistic_total",
        Some(("statistic", key.to_owned())),
    )
}

/// Label sets: `bridge`, `port`, `interface`, then `pod` and `namespace` when known.
pub(super) fn labels(ifaces: &[(InterfaceView<'_>, Attribution)]) -> LabelArena {
    let mut arena = LabelArena::with_capacity(ifaces.len(), ifaces.len() * 96);
    for (v, a) in ifaces {
        arena
            .label("bridge", v.bridge)
            .label("port", v.port)
            .label("interface", &v.iface.name);
        if let Some(p) = &a.pod {
            arena.label("pod", &p.pod).label("namespace", &p.namespace);
        }
        arena.finish();
    }
    arena
}

pub fn encode(s: &Snapshot, w: &mut Writer) {
    w.family(
        "ovs_ovsdb_up",
        "1 if the collector is connected to ovsdb-server and monitoring it, 0 if not (see the daemon's log).",
        MetricType::Gauge,
    );
    w.sample("ovs_ovsdb_up")
        .value_u64(u64::from(s.state.is_some()));
    w.family(
        "dataplane_collector_ovsdb_connected",
        "1 while the monitor connection to ovsdb-server is up (the echo probe drops a connection to a hung server), whether or not this scrape could sync.",
        MetricType::Gauge,
    );
    w.sample("dataplane_collector_ovsdb_connected")
        .value_u64(u64::from(s.link.connected));
    if let Some(sync) = s.link.last_sync {
        w.family(
            "dataplane_collector_ovsdb_sync_duration_seconds",
            "How long the last full sync took: connecting, the monitor request and its initial rows applied.",
            MetricType::Gauge,
        );
        w.sample("dataplane_collector_ovsdb_sync_duration_seconds")
            .value_f64(sync.as_secs_f64());
    }
    let Some(state) = &s.state else { return };
    super::health::encode_config(w, state.replica.open_vswitch());
    let views = state.replica.interfaces();
    let ifaces: Vec<(InterfaceView<'_>, Attribution)> = views
        .into_iter()
        .map(|v| {
            let a = s
                .attributor
                .attribute(&v.iface.external_ids, v.port_external_ids);
            (v, a)
        })
        .collect();
    let arena = labels(&ifaces);

    // One pass over every interface's statistics sorts each value into its family (a hash
    // lookup per key, not a search of STATS per key per family): linear in the statistics.
    let index = stat_index();
    let mut per_stat: Vec<Vec<(usize, i64)>> = vec![Vec::new(); STATS.len()];
    let mut sizes: [Vec<(usize, &str, i64)>; 2] = [Vec::new(), Vec::new()];
    let mut other: Vec<(usize, &str, i64)> = Vec::new();
    for (i, (v, _)) in ifaces.iter().enumerate() {
        for (key, &val) in &v.iface.statistics {
            if let Some(&k) = index.get(key.as_str()) {
                per_stat[k].push((i, val));
            } else if let Some((dir, range)) = size_bucket(key) {
                sizes[usize::from(dir == "tx")].push((i, range, val));
            } else {
                other.push((i, key, val));
            }
        }
    }
    for ((_, name, help), samples) in STATS.iter().zip(&per_stat) {
        if samples.is_empty() {
            continue;
        }
        w.family(name, help, MetricType::Counter);
        for &(i, val) in samples {
            w.sample(name).labels_raw(arena.get(i)).value_i64(val);
        }
    }
    for (name, samples) in [
        "ovs_interface_rx_size_packets_total",
        "ovs_interface_tx_size_packets_total",
    ]
    .into_iter()
    .zip(&sizes)
    {
        if samples.is_empty() {
            continue;
        }
        w.family(
            name,
            "Packets by frame size; `size` is the range in bytes, as OVS names it (1_to_64 … 1523_to_max).",
            MetricType::Counter,
        );
        for &(i, range, val) in samples {
            w.sample(name)
                .labels_raw(arena.get(i))
                .label("size", range)
                .value_i64(val);
        }
    }
    if !other.is_empty() {
        w.family(
            "ovs_interface_statistic_total",
            "Other counters OVS reports for the interface (driver-specific), by their OVS name.",
            MetricType::Counter,
        );
        for &(i, key, val) in &other {
            w.sample("ovs_interface_statistic_total")
                .labels_raw(arena.get(i))
                .label("statistic", key)
                .value_i64(val);
        }
    }

    let state_value = |s: &Option<String>| match s.as_deref() {
        Some("up") => Some(1),
        Some("down") => Some(0),
        _ => None,
    };
    gauge(
        w,
        &ifaces,
        &arena,
        "ovs_interface_link_state",
        "1 if the interface's link is up, 0 if down.",
        |v| state_value(&v.iface.link_state),
    );
    gauge(
        w,
        &ifaces,
        &arena,
        "ovs_interface_admin_state",
        "1 if the interface is administratively up, 0 if down.",
        |v| state_value(&v.iface.admin_state),
    );
    let resets: Vec<Option<i64>> = ifaces.iter().map(|(v, _)| v.iface.link_resets).collect();
    if resets.iter().any(Option::is_some) {
        w.family(
            "ovs_interface_link_resets_total",
            "Times OVS saw the interface's link state change.",
            MetricType::Counter,
        );
        for (i, r) in resets.iter().enumerate() {
            if let Some(r) = r {
                w.sample("ovs_interface_link_resets_total")
                    .labels_raw(arena.get(i))
                    .value_i64(*r);
            }
        }
    }
    gauge(
        w,
        &ifaces,
        &arena,
        "ovs_interface_mtu",
        "MTU of the interface, in bytes.",
        |v| v.iface.mtu,
    );
    gauge(
        w,
        &ifaces,
        &arena,
        "ovs_interface_link_speed_bytes",
        "Negotiated link speed, in bytes per second.",
        |v| v.iface.link_speed.map(|bits| bits / 8),
    );

    w.family(
        "ovs_interface_info",
        "Always 1: the interface's type, OpenFlow port, MAC, and the pod it belongs to (from external_ids), for joins.",
        MetricType::Gauge,
    );
    for (i, (v, a)) in ifaces.iter().enumerate() {
        let mut smp = w
            .sample("ovs_interface_info")
            .labels_raw(arena.get(i))
            .label(
                "type",
                if v.iface.kind.is_empty() {
                    "system"
                } else {
                    &v.iface.kind
                },
            );
        if let Some(o) = v.iface.ofport.filter(|&o| o >= 0) {
            smp = smp.label_u64("ofport", o as u64);
        }
        if let Some(m) = &v.iface.mac_in_use {
            smp = smp.label("mac", m);
        }
        if let Some(p) = &a.pod {
            if let Some(uid) = &p.uid {
                smp = smp.label("pod_uid", uid);
            }
            if let Some(c) = &p.container_id {
                smp = smp.label("container_id", c);
            }
            smp = smp.label("cni", p.cni);
            if let Some(n) = &p.network {
                smp = smp.label("network", n);
            }
        }
        for (label, value) in &a.extra {
            smp = smp.label(label, value);
        }
        smp.value_u64(1);
    }
    super::health::encode_interfaces(w, &ifaces, &arena);
    let errors: Vec<(usize, &str)> = ifaces
        .iter()
        .enumerate()
        .filter_map(|(i, (v, _))| v.iface.error.as_deref().map(|e| (i, e)))
        .collect();
    if !errors.is_empty() {
        w.family(
            "ovs_interface_error_info",
            "Always 1, for interfaces OVS could not set up; `error` is OVS's message.",
            MetricType::Gauge,
        );
        for (i, e) in errors {
            let e: String = e.chars().take(256).collect();
            w.sample("ovs_interface_error_info")
                .labels_raw(arena.get(i))
                .label("error", &e)
                .value_u64(1);
        }
    }
}

fn gauge(
    w: &mut Writer,
    ifaces: &[(InterfaceView<'_>, Attribution)],
    arena: &LabelArena,
    name: &str,
    help: &str,
    get: impl Fn(&InterfaceView<'_>) -> Option<i64>,
) {
    let values: Vec<Option<i64>> = ifaces.iter().map(|(v, _)| get(v)).collect();
    if values.iter().all(Option::is_none) {
        return;
    }
    w.family(name, help, MetricType::Gauge);
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v {
            w.sample(name).labels_raw(arena.get(i)).value_i64(*v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_buckets() {
        assert_eq!(size_bucket("rx_1_to_64_packets"), Some(("rx", "1_to_64")));
        assert_eq!(
            size_bucket("tx_1523_to_max_packets"),
            Some(("tx", "1523_to_max"))
        );
        assert_eq!(size_bucket("rx_packets"), None);
        assert_eq!(size_bucket("rx_q0_packets"), None);
        assert!(known("rx_bytes"));
        assert!(!known("ovs_tx_failure_drops"));
    }
}
