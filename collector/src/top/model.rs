//! What `top` shows, from two reads of `/metrics`: per-port (pod) traffic, OpenFlow flows,
//! drops and the datapath's health, as rates over the time between the reads. Pure: built from
//! parsed samples, unit-tested on captured bodies.

use super::prom::Sample;
use std::collections::BTreeMap;

/// The families `top` reads (everything else in the body is skipped unparsed).
pub fn wanted(name: &str) -> bool {
    name.starts_with("ovs_interface_")
        || name.starts_with("ebpf_port_")
        || name.starts_with("ovs_flow_")
        || name.starts_with("ovs_datapath_")
        || name == "ovs_coverage_total"
}

/// A port on a bridge, and the pod behind it when the daemon knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortKey {
    pub bridge: String,
    pub port: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PortCounters {
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub rx_bytes: f64,
    pub tx_bytes: f64,
    pub rx_packets: f64,
    pub tx_packets: f64,
    pub dropped: f64,
    /// Where the byte and packet counters came from: `ebpf` (`ebpf_port_*`) where the eBPF
    /// collector counts the port, else `ovsdb` (`ovs_interface_*`). Drops are OVSDB's.
    pub source: &'static str,
}

/// An OpenFlow flow as the openflow collector labels it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowKey {
    pub bridge: String,
    pub table: String,
    pub priority: String,
    pub cookie: String,
    pub matches: String,
    pub actions: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FlowCounters {
    pub packets: f64,
    pub bytes: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Health {
    pub hit: f64,
    pub missed: f64,
    pub lost: f64,
    pub flows: f64,
}

/// One read of `/metrics`, as `top` needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub ports: BTreeMap<PortKey, PortCounters>,
    pub flows: BTreeMap<FlowKey, FlowCounters>,
    /// Drop counters by what dropped: `datapath/port rx`, a coverage event (`drop_action_…`).
    pub drops: BTreeMap<String, f64>,
    /// Per datapath (`ovs-system`).
    pub health: BTreeMap<String, Health>,
}

impl Snapshot {
    pub fn from_samples(samples: &[Sample]) -> Snapshot {
        let mut s = Snapshot::default();
        // ovs_interface_* (OVSDB's statistics), and the eBPF collector's per-port counters
        // where it has them.
        let mut ebpf: BTreeMap<PortKey, PortCounters> = BTreeMap::new();
        for x in samples {
            let name = x.name.as_str();
            let l = |k: &str| x.label(k).unwrap_or("").to_owned();
            if let Some(field) = name.strip_prefix("ovs_interface_") {
                add_port(&mut s.ports, x, field, "ovsdb");
            } else if let Some(field) = name.strip_prefix("ebpf_port_") {
                add_port(&mut ebpf, x, field, "ebpf");
            } else if let Some(field) = name.strip_prefix("ovs_flow_") {
                let key = FlowKey {
                    bridge: l("bridge"),
                    table: l("table"),
                    priority: l("priority"),
                    cookie: l("cookie"),
                    matches: l("match"),
                    actions: l("actions"),
                };
                match field {
                    "packets_total" => s.flows.entry(key).or_default().packets += x.value,
                    "bytes_total" => s.flows.entry(key).or_default().bytes += x.value,
                    _ => {}
                }
            } else if name == "ovs_datapath_lookups_total" {
                let h = s.health.entry(l("datapath")).or_default();
                match x.label("result") {
                    Some("hit") => h.hit += x.value,
                    Some("missed") => h.missed += x.value,
                    Some("lost") => h.lost += x.value,
                    _ => {}
                }
            } else if name == "ovs_datapath_flows" {
                s.health.entry(l("datapath")).or_default().flows += x.value;
            } else if let Some(dir) = name
                .strip_prefix("ovs_datapath_port_")
                .and_then(|f| f.strip_suffix("_dropped_total"))
            {
                let dir = match dir {
                    "receive" => "rx",
                    "transmit" => "tx",
                    other => other,
                };
                *s.drops
                    .entry(format!("{} {} {dir}", l("datapath"), l("port")))
                    .or_default() += x.value;
            } else if name == "ovs_coverage_total"
                && let Some(event) = x.label("event")
                && (event.starts_with("drop_action_") || event.starts_with("datapath_drop_"))
            {
                *s.drops.entry(event.to_owned()).or_default() += x.value;
            }
        }
        // The eBPF collector's counts are per packet and read live; OVSDB's statistics lag
        // (ovs-vswitchd writes them every few seconds) and stay 0 for some port types. Its
        // drops and pod attribution stay.
        for (k, v) in ebpf {
            let p = s.ports.entry(k).or_default();
            p.rx_bytes = v.rx_bytes;
            p.tx_bytes = v.tx_bytes;
            p.rx_packets = v.rx_packets;
            p.tx_packets = v.tx_packets;
            p.source = v.source;
            if p.pod.is_none() {
                p.pod = v.pod;
                p.namespace = v.namespace;
            }
        }
        s
    }
}

fn add_port(
    ports: &mut BTreeMap<PortKey, PortCounters>,
    x: &Sample,
    field: &str,
    source: &'static str,
) {
    let counter = match field {
        "rx_bytes_total" | "tx_bytes_total" | "rx_packets_total" | "tx_packets_total"
        | "rx_dropped_total" | "tx_dropped_total" => field,
        _ => return,
    };
    let (Some(bridge), Some(port)) = (x.label("bridge"), x.label("port")) else {
        return;
    };
    let p = ports
        .entry(PortKey {
            bridge: bridge.to_owned(),
            port: port.to_owned(),
        })
        .or_default();
    p.source = source;
    if p.pod.is_none() {
        p.pod = x.label("pod").map(str::to_owned);
        p.namespace = x.label("namespace").map(str::to_owned);
    }
    match counter {
        "rx_bytes_total" => p.rx_bytes += x.value,
        "tx_bytes_total" => p.tx_bytes += x.value,
        "rx_packets_total" => p.rx_packets += x.value,
        "tx_packets_total" => p.tx_packets += x.value,
        _ => p.dropped += x.value,
    }
}

/// What the rows are ordered by (`s` cycles through them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Bytes per second, in and out.
    #[default]
    Bytes,
    /// Packets per second.
    Packets,
    /// Drops per second (flows: those that drop first).
    Drops,
    /// Bytes since the counters started.
    Total,
    /// By name (namespace/pod, bridge/port; flows by bridge, table, priority).
    Name,
}

impl SortKey {
    pub fn next(self) -> SortKey {
        match self {
            SortKey::Bytes => SortKey::Packets,
            SortKey::Packets => SortKey::Drops,
            SortKey::Drops => SortKey::Total,
            SortKey::Total => SortKey::Name,
            SortKey::Name => SortKey::Bytes,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SortKey::Bytes => "bytes/s",
            SortKey::Packets => "packets/s",
            SortKey::Drops => "drops/s",
            SortKey::Total => "total bytes",
            SortKey::Name => "name",
        }
    }
}

/// A port's row: its rates between the two reads (None on the first read, or after a counter
/// went backwards: a restarted switch or a recreated port).
#[derive(Debug, Clone, PartialEq)]
pub struct PortRow {
    pub key: PortKey,
    /// `namespace/pod`, or empty.
    pub pod: String,
    pub rx_bps: Option<f64>,
    pub tx_bps: Option<f64>,
    pub pps: Option<f64>,
    pub drops_ps: Option<f64>,
    pub total_bytes: f64,
    pub source: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlowRow {
    pub key: FlowKey,
    pub bps: Option<f64>,
    pub pps: Option<f64>,
    pub packets: f64,
    pub bytes: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DropRow {
    pub what: String,
    pub total: f64,
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthRow {
    pub datapath: String,
    pub hit_ps: Option<f64>,
    pub missed_ps: Option<f64>,
    pub lost_ps: Option<f64>,
    /// Hits of all lookups since the datapath started, 0..=1.
    pub hit_ratio: Option<f64>,
    pub lost: f64,
    pub flows: f64,
}

/// Everything on screen.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct View {
    pub ports: Vec<PortRow>,
    pub flows: Vec<FlowRow>,
    pub drops: Vec<DropRow>,
    pub health: Vec<HealthRow>,
}

/// `(cur - prev) / secs`; None without a previous read, or when the counter went backwards.
fn rate(prev: Option<f64>, cur: f64, secs: f64) -> Option<f64> {
    let prev = prev?;
    (secs > 0.0 && cur >= prev).then(|| (cur - prev) / secs)
}

fn add(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? + b?)
}

fn desc(a: Option<f64>, b: Option<f64>) -> std::cmp::Ordering {
    b.unwrap_or(-1.0).total_cmp(&a.unwrap_or(-1.0))
}

impl View {
    /// The view of `cur`, with rates against `prev` read `secs` earlier.
    pub fn new(prev: Option<&Snapshot>, cur: &Snapshot, secs: f64, sort: SortKey) -> View {
        let mut ports: Vec<PortRow> = cur
            .ports
            .iter()
            .map(|(k, c)| {
                let p = prev.and_then(|p| p.ports.get(k));
                let pod = match (&c.namespace, &c.pod) {
                    (Some(ns), Some(pod)) => format!("{ns}/{pod}"),
                    (None, Some(pod)) => pod.clone(),
                    _ => String::new(),
                };
                PortRow {
                    key: k.clone(),
                    pod,
                    rx_bps: rate(p.map(|p| p.rx_bytes), c.rx_bytes, secs),
                    tx_bps: rate(p.map(|p| p.tx_bytes), c.tx_bytes, secs),
                    pps: rate(
                        p.map(|p| p.rx_packets + p.tx_packets),
                        c.rx_packets + c.tx_packets,
                        secs,
                    ),
                    drops_ps: rate(p.map(|p| p.dropped), c.dropped, secs),
                    total_bytes: c.rx_bytes + c.tx_bytes,
                    source: c.source,
                }
            })
            .collect();
        let mut flows: Vec<FlowRow> = cur
            .flows
            .iter()
            .map(|(k, c)| {
                let p = prev.and_then(|p| p.flows.get(k));
                FlowRow {
                    key: k.clone(),
                    bps: rate(p.map(|p| p.bytes), c.bytes, secs),
                    pps: rate(p.map(|p| p.packets), c.packets, secs),
                    packets: c.packets,
                    bytes: c.bytes,
                }
            })
            .collect();
        let mut drops: Vec<DropRow> = cur
            .drops
            .iter()
            .map(|(what, &total)| DropRow {
                what: what.clone(),
                total,
                rate: rate(prev.and_then(|p| p.drops.get(what).copied()), total, secs),
            })
            .collect();
        let health = cur
            .health
            .iter()
            .map(|(dp, h)| {
                let p = prev.and_then(|p| p.health.get(dp));
                let all = h.hit + h.missed + h.lost;
                HealthRow {
                    datapath: dp.clone(),
                    hit_ps: rate(p.map(|p| p.hit), h.hit, secs),
                    missed_ps: rate(p.map(|p| p.missed), h.missed, secs),
                    lost_ps: rate(p.map(|p| p.lost), h.lost, secs),
                    hit_ratio: (all > 0.0).then(|| h.hit / all),
                    lost: h.lost,
                    flows: h.flows,
                }
            })
            .collect();
        ports.sort_by(|a, b| {
            let name = || (&a.pod, &a.key).cmp(&(&b.pod, &b.key));
            match sort {
                SortKey::Bytes => desc(add(a.rx_bps, a.tx_bps), add(b.rx_bps, b.tx_bps)),
                SortKey::Packets => desc(a.pps, b.pps),
                SortKey::Drops => desc(a.drops_ps, b.drops_ps),
                SortKey::Total => b.total_bytes.total_cmp(&a.total_bytes),
                SortKey::Name => name(),
            }
            .then_with(|| b.total_bytes.total_cmp(&a.total_bytes))
            .then_with(name)
        });
        flows.sort_by(|a, b| {
            let is_drop = |f: &FlowRow| f.key.actions == "drop";
            match sort {
                SortKey::Bytes => desc(a.bps, b.bps),
                SortKey::Packets => desc(a.pps, b.pps),
                SortKey::Drops => is_drop(b).cmp(&is_drop(a)).then(desc(a.pps, b.pps)),
                SortKey::Total => b.bytes.total_cmp(&a.bytes),
                SortKey::Name => a.key.cmp(&b.key),
            }
            .then_with(|| b.bytes.total_cmp(&a.bytes))
            .then_with(|| a.key.cmp(&b.key))
        });
        drops.sort_by(|a, b| {
            desc(a.rate, b.rate)
                .then(b.total.total_cmp(&a.total))
                .then_with(|| a.what.cmp(&b.what))
        });
        View {
            ports,
            flows,
            drops,
            health,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::prom;
    use super::*;

    /// Two reads of a node's `/metrics`, one second apart (captured from the golden run, the
    /// second with the counters moved).
    const BEFORE: &str = include_str!("../../tests/fixtures/top/before.txt");
    const AFTER: &str = include_str!("../../tests/fixtures/top/after.txt");

    fn snap(text: &str) -> Snapshot {
        Snapshot::from_samples(&prom::parse(text, wanted, 100_000).expect("parses"))
    }

    #[test]
    fn rates_between_two_reads() {
        let (a, b) = (snap(BEFORE), snap(AFTER));
        let v = View::new(Some(&a), &b, 2.0, SortKey::Bytes);
        let web = v
            .ports
            .iter()
            .find(|r| r.pod == "shop/web-0")
            .expect("web-0");
        assert_eq!(web.key.port, "v5efa2p0");
        assert_eq!(web.rx_bps, Some(1000.0));
        assert_eq!(web.tx_bps, Some(500.0));
        assert_eq!(web.pps, Some(10.0));
        assert_eq!(web.drops_ps, Some(1.5));
        assert_eq!(web.source, "ebpf");
        // Sorted by bytes/s: web-0 moved most.
        assert_eq!(v.ports[0].pod, "shop/web-0");
        // A flow with its cookie, and its rate.
        let f = &v.flows[0];
        assert_eq!(f.key.cookie, "0x2100");
        assert_eq!(f.bps, Some(5000.0));
        assert_eq!(f.pps, Some(50.0));
        // Drops: the datapath port's and the coverage reason.
        let d = &v.drops[0];
        assert_eq!(d.what, "drop_action_of_pipeline");
        assert_eq!(d.rate, Some(3.0));
        assert!(v.drops.iter().any(|d| d.what == "ovs-system vdp0 rx"));
        let h = v
            .health
            .iter()
            .find(|h| h.datapath == "ovs-system")
            .expect("ovs-system");
        assert_eq!(h.hit_ps, Some(10.0));
        assert_eq!(h.missed_ps, Some(1.0));
        assert_eq!(h.lost_ps, Some(0.0));
        assert_eq!(h.flows, 9.0);
    }

    #[test]
    fn first_read_and_counter_resets_have_no_rate() {
        let (a, b) = (snap(BEFORE), snap(AFTER));
        let v = View::new(None, &b, 1.0, SortKey::Bytes);
        assert!(v.ports.iter().all(|r| r.rx_bps.is_none()));
        assert!(!v.flows.is_empty() && v.flows.iter().all(|f| f.bps.is_none()));
        // Read backwards: every counter went down, as after a restart.
        let v = View::new(Some(&b), &a, 1.0, SortKey::Bytes);
        let web = v.ports.iter().find(|r| r.pod == "shop/web-0").expect("web");
        assert_eq!(web.rx_bps, None);
    }

    #[test]
    fn sort_keys_cycle_and_order_rows() {
        let (a, b) = (snap(BEFORE), snap(AFTER));
        let mut key = SortKey::default();
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(key.label());
            key = key.next();
        }
        assert_eq!(key, SortKey::Bytes);
        assert_eq!(seen.len(), 5);
        let by_name = View::new(Some(&a), &b, 1.0, SortKey::Name);
        let names: Vec<&str> = by_name.ports.iter().map(|r| r.pod.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        let by_drops = View::new(Some(&a), &b, 1.0, SortKey::Drops);
        assert_eq!(by_drops.flows[0].key.actions, "drop");
        let by_packets = View::new(Some(&a), &b, 1.0, SortKey::Packets);
        let pps: Vec<f64> = by_packets
            .ports
            .iter()
            .map(|r| r.pps.unwrap_or(-1.0))
            .collect();
        assert!(pps.windows(2).all(|w| w[0] >= w[1]), "{pps:?}");
        let by_total = View::new(Some(&a), &b, 1.0, SortKey::Total);
        let totals: Vec<f64> = by_total.flows.iter().map(|f| f.bytes).collect();
        assert!(totals.windows(2).all(|w| w[0] >= w[1]), "{totals:?}");
    }
}
