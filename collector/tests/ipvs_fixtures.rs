//! The IPVS codec on netlink replies captured from a real kernel in the lab
//! (`DPC_UPDATE_FIXTURES=1 cargo xtask lab ipvs` refreshes them): a whole read of a namespace with
//! TCP, UDP, SCTP, IPv6, firewall-mark, persistent and quiesced services, decoded and checked
//! against `ipvsadm`'s view of the same moment; then every truncation and byte flip of every
//! datagram, which must decode to an error or a value, never a panic.

mod common;

use common::ipvs::{datagrams, fixture, replay};
use dataplane_collector::exposition::Writer;
use dataplane_collector::netlink::{self, DumpItem, genl};
use dataplane_collector::registry::Source;
use dataplane_collector::sources::ipvs::parse::{self, ParseError};
use dataplane_collector::sources::ipvs::{Config, IpvsSource, NamespaceData, Snapshot, describe};
use std::collections::BTreeMap;

/// `ipvsadm` lines by service head (`TCP 10.96.0.10:80`, `FWM 7 IPv6`): the service's words
/// after the head, and each destination's.
type Ipvsadm = BTreeMap<String, (Vec<String>, BTreeMap<String, Vec<String>>)>;

fn ipvsadm(name: &str) -> Ipvsadm {
    let text = String::from_utf8(fixture(name)).unwrap_or_default();
    let mut out: Ipvsadm = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines().skip(3) {
        let w: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        if w.first().is_some_and(|f| f == "->") {
            let entry = out.get_mut(&current).unwrap_or_else(|| panic!("{line}"));
            entry.1.insert(w[1].clone(), w[2..].to_vec());
        } else if !w.is_empty() {
            let head = if w[0] == "FWM" && w.get(2).is_some_and(|x| x == "IPv6") {
                3
            } else {
                2
            };
            current = w[..head].join(" ");
            out.insert(current.clone(), (w[head..].to_vec(), BTreeMap::new()));
        }
    }
    out
}

fn stats_words(s: &parse::Stats) -> Vec<String> {
    [
        s.connections,
        s.packets_in,
        s.packets_out,
        s.bytes_in,
        s.bytes_out,
    ]
    .iter()
    .map(u64::to_string)
    .collect()
}

#[test]
fn a_captured_read_equals_ipvsadm() {
    let services = replay(&datagrams()).unwrap_or_else(|e| panic!("{e}"));
    let stats = ipvsadm("ipvsadm-stats.txt");
    let list = ipvsadm("ipvsadm-list.txt");
    assert_eq!(services.len(), stats.len());
    assert!(
        services.len() >= 7,
        "the capture should hold every kind of service"
    );
    let mut kinds = std::collections::BTreeSet::new();
    for sd in &services {
        let head = describe(&sd.service.key);
        kinds.insert(head.split(' ').next().unwrap_or("").to_owned());
        let (svc_stats, dest_stats) = stats
            .get(&head)
            .unwrap_or_else(|| panic!("{head} not in ipvsadm"));
        assert_eq!(&stats_words(&sd.service.stats), svc_stats, "{head}");
        let (svc_list, dest_list) = &list[&head];
        assert_eq!(svc_list[0], sd.service.scheduler, "{head}");
        assert_eq!(
            svc_list.get(1).is_some_and(|w| w == "persistent"),
            sd.service.flags & 1 != 0,
            "{head}: persistence"
        );
        if sd.service.flags & 1 != 0 {
            assert_eq!(svc_list[2], sd.service.timeout.to_string());
        }
        assert_eq!(sd.destinations.len(), dest_stats.len(), "{head}");
        for d in &sd.destinations {
            let name = std::net::SocketAddr::new(d.addr, d.port).to_string();
            assert_eq!(
                &stats_words(&d.stats),
                &dest_stats[&name],
                "{head} -> {name}"
            );
            let l = &dest_list[&name];
            let fwd = ["Masq", "Local", "Tunnel", "Route"][d.forward as usize & 3];
            assert_eq!(l[0], fwd);
            assert_eq!(l[1], d.weight.to_string(), "{head} -> {name} weight");
            assert_eq!(l[2], d.active_connections.to_string());
            assert_eq!(l[3], d.inactive_connections.to_string());
        }
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        vec!["FWM", "SCTP", "TCP", "UDP"]
    );
    assert!(
        services.iter().any(|s| s.service.stats.connections > 0),
        "no traffic in the capture"
    );
}

#[test]
fn the_captured_read_encodes_to_the_documented_series() {
    let services = replay(&datagrams()).unwrap_or_else(|e| panic!("{e}"));
    let snap = Snapshot {
        namespaces: vec![NamespaceData {
            label: "/run/netns/test".to_owned(),
            outcome: Ok(services),
        }],
    };
    let src = IpvsSource::new(Config::default());
    let mut w = Writer::new();
    src.encode(&snap, &mut w);
    let text = w.into_string();
    // The numbers, from ipvsadm's view of the same moment.
    let stats = ipvsadm("ipvsadm-stats.txt");
    let (tcp, tcp_dests) = &stats["TCP 10.96.0.10:80"];
    let svc =
        r#"namespace="/run/netns/test",protocol="tcp",address="10.96.0.10",port="80",fwmark="0""#;
    let dest = |addr: &str, port: u16| {
        format!("{svc},destination_address=\"{addr}\",destination_port=\"{port}\"")
    };
    for line in [
        format!("ipvs_services{{namespace=\"/run/netns/test\"}} {}", stats.len()),
        format!("ipvs_service_connections_total{{{svc}}} {}", tcp[0]),
        format!("ipvs_service_bytes_out_total{{{svc}}} {}", tcp[4]),
        format!("ipvs_destination_weight{{{}}} 0", dest("10.10.1.2", 8081)),
        format!(
            "ipvs_destination_packets_in_total{{{}}} {}",
            dest("10.10.2.2", 8080),
            tcp_dests["10.10.2.2:8080"][1]
        ),
        r#"ipvs_destinations{namespace="/run/netns/test",protocol="",address="::",port="0",fwmark="7"} 1"#.to_owned(),
        r#"ipvs_service_info{namespace="/run/netns/test",protocol="sctp",address="10.96.0.12",port="9",fwmark="0",scheduler="sh"} 1"#.to_owned(),
    ] {
        assert!(text.contains(&format!("{line}\n")), "missing {line}\n{text}");
    }
}

/// Decodes everything in `d` the way a read would; returns whether all of it decoded.
fn decode_all(d: &[u8]) -> bool {
    let mut ok = true;
    for m in netlink::messages(d) {
        let Ok(m) = m else {
            ok = false;
            continue;
        };
        match netlink::dump_item(m, m.seq) {
            Ok(Some(DumpItem::Data(m))) => {
                let r = match m.payload.first() {
                    Some(1) if m.msg_type == genl::GENL_ID_CTRL => {
                        genl::parse_family(&m).map(|_| ()).map_err(ParseError::from)
                    }
                    Some(1) => parse::parse_service(&m).map(|_| ()),
                    Some(5) => parse::parse_destination(&m, parse::AF_INET).map(|_| ()),
                    _ => Ok(()),
                };
                ok &= r.is_ok();
            }
            Ok(_) => {}
            Err(_) => ok = false,
        }
    }
    ok
}

#[test]
fn every_truncation_and_byte_flip_of_the_capture_is_handled() {
    let all = datagrams();
    for d in &all {
        assert!(decode_all(d), "the capture itself must decode");
        let first_len = u32::from_ne_bytes([d[0], d[1], d[2], d[3]]) as usize;
        for cut in 0..d.len() {
            let ok = decode_all(&d[..cut]);
            // Cutting into the first message always shows as an error.
            if cut > 0 && cut < first_len {
                assert!(
                    !ok,
                    "a datagram cut at {cut} of {first_len} decoded cleanly"
                );
            }
        }
        for i in 0..d.len() {
            for bit in [0x01u8, 0x10, 0x80, 0xff] {
                let mut b = d.clone();
                b[i] ^= bit;
                let _ = decode_all(&b);
            }
        }
    }
}
