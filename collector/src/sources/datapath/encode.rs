//! Metrics of the `datapath` source. docs/metrics.md lists them with the names OVN-Kubernetes
//! (`ovs_vswitchd_*`), greenpau/ovs_exporter and digitalocean/openvswitch_exporter give the
//! same figures.
//!
//! A datapath is `datapath` (its name: `ovs-system`, `ovs-netdev`) and `type` (`system`: the
//! kernel's, `netdev`: userspace); a datapath port adds `port` (its name), `port_no` and
//! `port_type` (`system` for a plain device, as `ovs-dpctl show` has it, `internal`, `tap`,
//! `vxlan`...). A counter a device does not keep (`?` in `dpctl/show -s`) has no series.

use super::{Datapath, DpPort, PortStats, Snapshot, ZoneLimits};
use crate::exposition::{LabelArena, MetricType, Writer};

type PortCounter = (&'static str, &'static str, fn(&PortStats) -> Option<u64>);

const PORT_COUNTERS: &[PortCounter] = &[
    (
        "ovs_datapath_port_receive_packets_total",
        "Packets the datapath port received.",
        |s| s.rx_packets,
    ),
    (
        "ovs_datapath_port_receive_bytes_total",
        "Bytes the datapath port received.",
        |s| s.rx_bytes,
    ),
    (
        "ovs_datapath_port_receive_errors_total",
        "Receive errors on the datapath port.",
        |s| s.rx_errors,
    ),
    (
        "ovs_datapath_port_receive_dropped_total",
        "Packets dropped on receive at the datapath port.",
        |s| s.rx_dropped,
    ),
    (
        "ovs_datapath_port_transmit_packets_total",
        "Packets the datapath port sent.",
        |s| s.tx_packets,
    ),
    (
        "ovs_datapath_port_transmit_bytes_total",
        "Bytes the datapath port sent.",
        |s| s.tx_bytes,
    ),
    (
        "ovs_datapath_port_transmit_errors_total",
        "Transmit errors on the datapath port.",
        |s| s.tx_errors,
    ),
    (
        "ovs_datapath_port_transmit_dropped_total",
        "Packets dropped on transmit at the datapath port (for the userspace datapath's bridge port: packets to a bridge whose internal device is down or not read).",
        |s| s.tx_dropped,
    ),
];

fn dp_labels<'a>(w: crate::exposition::Sample<'a>, d: &Datapath) -> crate::exposition::Sample<'a> {
    w.label("datapath", &d.name).label("type", &d.kind)
}

fn port_labels(arena: &mut LabelArena, d: &Datapath, p: &DpPort) {
    arena
        .label("datapath", &d.name)
        .label("type", &d.kind)
        .label("port", &p.name)
        .label_u64("port_no", u64::from(p.number))
        .label("port_type", &p.kind);
    arena.finish();
}

pub fn encode(s: &Snapshot, w: &mut Writer) {
    let kernel = s.kernel.as_ref();
    let dps: Vec<&Datapath> = kernel
        .map(|k| k.datapaths.iter())
        .into_iter()
        .flatten()
        .chain(s.vswitchd.iter().map(|(d, _)| d))
        .collect();
    // The kernel's zone limits are its namespace's, shown with each kernel datapath as
    // `dpctl/ct-get-limits system@ovs-system` shows them.
    let mut zones: Vec<(&Datapath, &ZoneLimits)> = Vec::new();
    if let Some(k) = kernel
        && let Some(l) = &k.zone_limits
    {
        zones.extend(k.datapaths.iter().map(|d| (d, l)));
    }
    zones.extend(
        s.vswitchd
            .iter()
            .filter_map(|(d, l)| l.as_ref().map(|l| (d, l))),
    );

    // ---- datapaths ----
    w.family(
        "ovs_datapath_lookups_total",
        "Packets the datapath looked up in its flow table, by result: hit (a flow matched), missed (sent to ovs-vswitchd as an upcall), lost (could not be sent: the upcall queue was full).",
        MetricType::Counter,
    );
    for d in &dps {
        for (result, v) in [("hit", d.hit), ("missed", d.missed), ("lost", d.lost)] {
            dp_labels(w.sample("ovs_datapath_lookups_total"), d)
                .label("result", result)
                .value_u64(v);
        }
    }
    w.family(
        "ovs_datapath_flows",
        "Flows (megaflows) in the datapath.",
        MetricType::Gauge,
    );
    for d in &dps {
        dp_labels(w.sample("ovs_datapath_flows"), d).value_u64(d.flows);
    }
    w.family(
        "ovs_datapath_masks",
        "Masks (distinct wildcard patterns) in the kernel datapath's flow table; each lookup tries them in turn.",
        MetricType::Gauge,
    );
    for d in &dps {
        if let Some(v) = d.masks {
            dp_labels(w.sample("ovs_datapath_masks"), d).value_u64(v);
        }
    }
    w.family(
        "ovs_datapath_mask_hits_total",
        "Masks the kernel datapath tried in lookups that hit; divided by hit+missed lookups, the masks tried per packet.",
        MetricType::Counter,
    );
    for d in &dps {
        if let Some(v) = d.mask_hit {
            dp_labels(w.sample("ovs_datapath_mask_hits_total"), d).value_u64(v);
        }
    }
    w.family(
        "ovs_datapath_masks_cache_hits_total",
        "Lookups the kernel datapath's masks cache answered.",
        MetricType::Counter,
    );
    for d in &dps {
        if let Some(v) = d.cache_hit {
            dp_labels(w.sample("ovs_datapath_masks_cache_hits_total"), d).value_u64(v);
        }
    }
    w.family(
        "ovs_datapath_cache_size",
        "Entries of a datapath cache (the kernel's masks-cache).",
        MetricType::Gauge,
    );
    for d in &dps {
        for (cache, size) in &d.caches {
            dp_labels(w.sample("ovs_datapath_cache_size"), d)
                .label("cache", cache)
                .value_u64(*size);
        }
    }

    // ---- datapath ports ----
    let n_ports: usize = dps.iter().map(|d| d.ports.len()).sum();
    let mut labels = LabelArena::with_capacity(n_ports, n_ports * 96);
    let mut ports = Vec::with_capacity(n_ports);
    for d in &dps {
        for p in &d.ports {
            port_labels(&mut labels, d, p);
            ports.push(p);
        }
    }
    for (name, help, get) in PORT_COUNTERS {
        w.family(name, help, MetricType::Counter);
        for (i, p) in ports.iter().enumerate() {
            if let Some(v) = p.stats.as_ref().and_then(get) {
                w.sample(name).labels_raw(labels.get(i)).value_u64(v);
            }
        }
    }

    w.family(
        "ovs_datapath_port_upcalls_total",
        "Packets of the kernel datapath port sent to ovs-vswitchd as upcalls, by result (success, failure: the upcall could not be queued); Linux 6.6 and later.",
        MetricType::Counter,
    );
    for (i, p) in ports.iter().enumerate() {
        if let Some((ok, fail)) = p.upcalls {
            for (result, v) in [("success", ok), ("failure", fail)] {
                w.sample("ovs_datapath_port_upcalls_total")
                    .labels_raw(labels.get(i))
                    .label("result", result)
                    .value_u64(v);
            }
        }
    }

    w.family(
        "ovs_conntrack_zone_limit",
        "Connections a conntrack zone may hold (dpctl/ct-set-limits); zone=\"default\" is the limit of zones without their own, 0 meaning none.",
        MetricType::Gauge,
    );
    for (d, l) in &zones {
        {
            let (dp, kind) = (d.name.as_str(), d.kind.as_str());
            w.sample("ovs_conntrack_zone_limit")
                .label("datapath", dp)
                .label("type", kind)
                .label("zone", "default")
                .value_u64(l.default_limit);
            for (zone, limit, _) in &l.zones {
                w.sample("ovs_conntrack_zone_limit")
                    .label("datapath", dp)
                    .label("type", kind)
                    .label_u64("zone", u64::from(*zone))
                    .value_u64(*limit);
            }
        }
    }
    w.family(
        "ovs_conntrack_zone_connections",
        "Connections in a conntrack zone that has a limit.",
        MetricType::Gauge,
    );
    for (d, l) in &zones {
        {
            let (dp, kind) = (d.name.as_str(), d.kind.as_str());
            for (zone, _, count) in &l.zones {
                w.sample("ovs_conntrack_zone_connections")
                    .label("datapath", dp)
                    .label("type", kind)
                    .label_u64("zone", u64::from(*zone))
                    .value_u64(*count);
            }
        }
    }
}
