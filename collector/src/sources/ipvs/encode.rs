//! Metrics of the `ipvs` source. `docs/ipvs.md` maps them to the seed exporter's
//! (ingress_ipvs_exporter) and to node_exporter's `node_ipvs_*`.
//!
//! A service is identified by `namespace`, `protocol`, `address`, `port` and `fwmark`; a
//! destination adds `destination_address` and `destination_port`. Every label is always
//! present: an address service has `fwmark="0"`; a firewall-mark service has `protocol=""`,
//! `port="0"` and the unspecified address of its family (`0.0.0.0` or `::`), since the kernel
//! keys those by (family, mark).

use super::parse::{AF_INET6, Destination, ServiceKey, Stats};
use super::{ServiceData, Snapshot};
use crate::exposition::{LabelArena, MetricType, Writer};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `IPPROTO_*` as the `protocol` label (the number for a protocol IPVS does not name).
pub fn protocol_name(p: u16) -> std::borrow::Cow<'static, str> {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        132 => "sctp".into(),
        n => n.to_string().into(),
    }
}

type Counter = (&'static str, &'static str, fn(&Stats) -> u64);

const SERVICE_COUNTERS: &[Counter] = &[
    (
        "ipvs_service_connections_total",
        "Connections scheduled by the IPVS virtual service.",
        |s| s.connections,
    ),
    (
        "ipvs_service_packets_in_total",
        "Packets from clients to the IPVS virtual service.",
        |s| s.packets_in,
    ),
    (
        "ipvs_service_packets_out_total",
        "Packets from the IPVS virtual service's real servers to clients.",
        |s| s.packets_out,
    ),
    (
        "ipvs_service_bytes_in_total",
        "Bytes from clients to the IPVS virtual service.",
        |s| s.bytes_in,
    ),
    (
        "ipvs_service_bytes_out_total",
        "Bytes from the IPVS virtual service's real servers to clients.",
        |s| s.bytes_out,
    ),
];

const DESTINATION_COUNTERS: &[Counter] = &[
    (
        "ipvs_destination_connections_total",
        "Connections IPVS scheduled to the real server.",
        |s| s.connections,
    ),
    (
        "ipvs_destination_packets_in_total",
        "Packets IPVS forwarded from clients to the real server.",
        |s| s.packets_in,
    ),
    (
        "ipvs_destination_packets_out_total",
        "Packets from the real server to clients through IPVS.",
        |s| s.packets_out,
    ),
    (
        "ipvs_destination_bytes_in_total",
        "Bytes IPVS forwarded from clients to the real server.",
        |s| s.bytes_in,
    ),
    (
        "ipvs_destination_bytes_out_total",
        "Bytes from the real server to clients through IPVS.",
        |s| s.bytes_out,
    ),
];

type Gauge = (&'static str, &'static str, fn(&Destination) -> i64);

const DESTINATION_GAUGES: &[Gauge] = &[
    (
        "ipvs_destination_active_connections",
        "Connections to the real server in the ESTABLISHED state (IPVS's ActiveConn).",
        |d| i64::from(d.active_connections),
    ),
    (
        "ipvs_destination_inactive_connections",
        "Connections to the real server in any other state (IPVS's InActConn).",
        |d| i64::from(d.inactive_connections),
    ),
    (
        "ipvs_destination_weight",
        "Weight of the real server in its service's scheduler (0: quiesced, takes no new connections).",
        |d| i64::from(d.weight),
    ),
];

fn service_labels(arena: &mut LabelArena, namespace: &str, key: &ServiceKey) {
    arena.label("namespace", namespace);
    match key {
        ServiceKey::Address {
            protocol,
            addr,
            port,
            ..
        } => {
            arena
                .label("protocol", &protocol_name(*protocol))
                .label("address", &addr.to_string())
                .label_u64("port", u64::from(*port))
                .label_u64("fwmark", 0);
        }
        ServiceKey::Fwmark { af, mark } => {
            let any = if *af == AF_INET6 {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            };
            arena
                .label("protocol", "")
                .label("address", &any.to_string())
                .label_u64("port", 0)
                .label_u64("fwmark", u64::from(*mark));
        }
    }
}

fn read(s: &Snapshot) -> impl Iterator<Item = (&str, &[ServiceData])> {
    s.namespaces.iter().filter_map(|n| {
        n.outcome
            .as_ref()
            .ok()
            .map(|v| (n.label.as_str(), v.as_slice()))
    })
}

pub fn encode(s: &Snapshot, w: &mut Writer) {
    w.family(
        "ipvs_up",
        "1 if IPVS was read in the network namespace in this scrape, 0 if not (see the daemon's log for why).",
        MetricType::Gauge,
    );
    for n in &s.namespaces {
        w.sample("ipvs_up")
            .label("namespace", &n.label)
            .value_u64(u64::from(n.outcome.is_ok()));
    }
    w.family(
        "ipvs_services",
        "IPVS virtual services in the network namespace.",
        MetricType::Gauge,
    );
    for (ns, services) in read(s) {
        w.sample("ipvs_services")
            .label("namespace", ns)
            .value_u64(services.len() as u64);
    }

    // Every service's and destination's labels, rendered once.
    let n_services: usize = read(s).map(|(_, v)| v.len()).sum();
    let n_dests: usize = read(s)
        .flat_map(|(_, v)| v.iter().map(|d| d.destinations.len()))
        .sum();
    let mut svc_labels = LabelArena::with_capacity(n_services, n_services * 96);
    let mut dest_labels = LabelArena::with_capacity(n_dests, n_dests * 150);
    for (ns, services) in read(s) {
        for sd in services {
            service_labels(&mut svc_labels, ns, &sd.service.key);
            svc_labels.finish();
            for d in &sd.destinations {
                service_labels(&mut dest_labels, ns, &sd.service.key);
                dest_labels
                    .label("destination_address", &d.addr.to_string())
                    .label_u64("destination_port", u64::from(d.port));
                dest_labels.finish();
            }
        }
    }
    let services = || read(s).flat_map(|(_, v)| v.iter()).enumerate();
    let destinations = || {
        read(s)
            .flat_map(|(_, v)| v.iter().flat_map(|sd| sd.destinations.iter()))
            .enumerate()
    };

    w.family(
        "ipvs_service_info",
        "An IPVS virtual service and its scheduler; always 1.",
        MetricType::Gauge,
    );
    for (i, sd) in services() {
        w.sample("ipvs_service_info")
            .labels_raw(svc_labels.get(i))
            .label("scheduler", &sd.service.scheduler)
            .value_u64(1);
    }
    w.family(
        "ipvs_destinations",
        "Real servers of the IPVS virtual service.",
        MetricType::Gauge,
    );
    for (i, sd) in services() {
        w.sample("ipvs_destinations")
            .labels_raw(svc_labels.get(i))
            .value_u64(sd.destinations.len() as u64);
    }
    for (name, help, get) in SERVICE_COUNTERS {
        w.family(name, help, MetricType::Counter);
        for (i, sd) in services() {
            w.sample(name)
                .labels_raw(svc_labels.get(i))
                .value_u64(get(&sd.service.stats));
        }
    }
    for (name, help, get) in DESTINATION_COUNTERS {
        w.family(name, help, MetricType::Counter);
        for (i, d) in destinations() {
            w.sample(name)
                .labels_raw(dest_labels.get(i))
                .value_u64(get(&d.stats));
        }
    }
    for (name, help, get) in DESTINATION_GAUGES {
        w.family(name, help, MetricType::Gauge);
        for (i, d) in destinations() {
            w.sample(name)
                .labels_raw(dest_labels.get(i))
                .value_i64(get(d));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::{AF_INET, Service};
    use super::super::{IpvsError, NamespaceData};
    use super::*;

    fn snapshot() -> Snapshot {
        let stats = |n: u64| Stats {
            connections: n,
            packets_in: n * 10,
            packets_out: n * 8,
            bytes_in: n * 1000,
            bytes_out: n * 4000,
        };
        let dest = |addr: &str, port, weight, n| Destination {
            addr: addr.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            port,
            forward: 0,
            weight,
            active_connections: 1,
            inactive_connections: 2,
            persistent_connections: 0,
            stats: stats(n),
        };
        Snapshot {
            namespaces: vec![
                NamespaceData {
                    label: "/run/netns/ingress_sbox".into(),
                    outcome: Ok(vec![
                        ServiceData {
                            service: Service {
                                key: ServiceKey::Address {
                                    af: AF_INET,
                                    protocol: 6,
                                    addr: "10.96.0.1"
                                        .parse()
                                        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                                    port: 80,
                                },
                                scheduler: "rr".into(),
                                flags: 0,
                                timeout: 0,
                                stats: stats(3),
                            },
                            destinations: vec![
                                dest("10.244.0.2", 8080, 1, 1),
                                dest("10.244.0.3", 8080, 0, 2),
                            ],
                        },
                        ServiceData {
                            service: Service {
                                key: ServiceKey::Fwmark {
                                    af: AF_INET6,
                                    mark: 260,
                                },
                                scheduler: "wrr".into(),
                                flags: 0,
                                timeout: 0,
                                stats: stats(0),
                            },
                            destinations: vec![dest("fd00::2", 0, 5, 0)],
                        },
                    ]),
                },
                NamespaceData {
                    label: "/run/netns/gone".into(),
                    outcome: Err(IpvsError::NamespaceAbsent {
                        path: "/run/netns/gone".into(),
                    }),
                },
            ],
        }
    }

    #[test]
    fn labels_and_values() {
        let mut w = Writer::new();
        encode(&snapshot(), &mut w);
        let text = w.into_string();
        let svc = r#"namespace="/run/netns/ingress_sbox",protocol="tcp",address="10.96.0.1",port="80",fwmark="0""#;
        let fw =
            r#"namespace="/run/netns/ingress_sbox",protocol="",address="::",port="0",fwmark="260""#;
        for line in [
            "ipvs_up{namespace=\"/run/netns/ingress_sbox\"} 1".to_owned(),
            "ipvs_up{namespace=\"/run/netns/gone\"} 0".to_owned(),
            "ipvs_services{namespace=\"/run/netns/ingress_sbox\"} 2".to_owned(),
            format!("ipvs_service_info{{{svc},scheduler=\"rr\"}} 1"),
            format!("ipvs_service_info{{{fw},scheduler=\"wrr\"}} 1"),
            format!("ipvs_destinations{{{svc}}} 2"),
            format!("ipvs_destinations{{{fw}}} 1"),
            format!("ipvs_service_connections_total{{{svc}}} 3"),
            format!("ipvs_service_packets_in_total{{{svc}}} 30"),
            format!("ipvs_service_packets_out_total{{{svc}}} 24"),
            format!("ipvs_service_bytes_in_total{{{svc}}} 3000"),
            format!("ipvs_service_bytes_out_total{{{svc}}} 12000"),
            format!(
                "ipvs_destination_connections_total{{{svc},destination_address=\"10.244.0.3\",destination_port=\"8080\"}} 2"
            ),
            format!(
                "ipvs_destination_bytes_out_total{{{svc},destination_address=\"10.244.0.3\",destination_port=\"8080\"}} 8000"
            ),
            format!(
                "ipvs_destination_weight{{{svc},destination_address=\"10.244.0.3\",destination_port=\"8080\"}} 0"
            ),
            format!(
                "ipvs_destination_weight{{{fw},destination_address=\"fd00::2\",destination_port=\"0\"}} 5"
            ),
            format!(
                "ipvs_destination_active_connections{{{svc},destination_address=\"10.244.0.2\",destination_port=\"8080\"}} 1"
            ),
            format!(
                "ipvs_destination_inactive_connections{{{svc},destination_address=\"10.244.0.2\",destination_port=\"8080\"}} 2"
            ),
        ] {
            assert!(
                text.contains(&format!("{line}\n")),
                "missing {line}\n{text}"
            );
        }
        assert!(
            !text.contains("gone\",protocol"),
            "no series for an unread namespace"
        );
        // Each family once, counters end in _total.
        for l in text.lines().filter(|l| l.starts_with("# TYPE")) {
            if l.ends_with("counter") {
                assert!(
                    l.split(' ').nth(2).is_some_and(|n| n.ends_with("_total")),
                    "{l}"
                );
            }
        }
        assert_eq!(text.matches("# TYPE ipvs_destination_weight ").count(), 1);
    }

    #[test]
    fn empty_namespace_still_reports_up_and_zero_services() {
        let s = Snapshot {
            namespaces: vec![NamespaceData {
                label: String::new(),
                outcome: Ok(vec![]),
            }],
        };
        let mut w = Writer::new();
        encode(&s, &mut w);
        let text = w.into_string();
        assert!(text.contains("ipvs_up{namespace=\"\"} 1\n"));
        assert!(text.contains("ipvs_services{namespace=\"\"} 0\n"));
    }
}
