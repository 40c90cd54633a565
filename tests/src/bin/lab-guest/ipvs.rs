//! The IPVS scenario: virtual services of every kind the source reads (TCP, UDP, SCTP, IPv4,
//! IPv6, firewall marks, a persistent one, a quiesced real server) with real servers in their
//! own network namespaces and real connections from a client namespace; a second "ingress"
//! namespace with its own service, read through `--ipvs.netns`. Every counter and gauge the
//! daemon serves must equal `ipvsadm`'s for the same moment.
//!
//! ```text
//!  cl 10.30.0.2 ── director (root ns) ── rs1 10.10.1.2 / fd00:10:1::2   :8080 :8081 :5353 :9
//!                  kube-ipvs0: VIPs   └── rs2 10.10.2.2 / fd00:10:2::2   :8080 :5353 :8443
//!  ingress_sbox (own IPVS table): dummy0 10.255.0.5 ── rs3 10.20.0.2:80
//! ```

use crate::ipvsadm::{self, Counters, DestId, ServiceId};
use crate::{Daemon, Proc, emit_fixture, ip, ipvsadm_in, module_loaded, self_path, wait_for};
use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;
use testbed::prom::{self, Sample};

const INGRESS: &str = "ingress_sbox";
const INGRESS_PATH: &str = "/run/netns/ingress_sbox";

/// Connections the clients make per service (checked against ipvsadm before anything else).
const TCP4: usize = 24;
const HELD: usize = 2;
const TCP6: usize = 12;
const UDP4: usize = 20;
const INGRESS_TCP: usize = 10;

fn sysctl(netns: Option<&str>, key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    match netns {
        None => std::fs::write(&path, value).with_context(|| path.clone()),
        Some(ns) => ip(&[
            "netns",
            "exec",
            ns,
            "/bb/sysctl",
            "-w",
            &format!("{key}={value}"),
        ])
        .map(|_| ()),
    }
}

/// A real server namespace `name` linked to `parent` (None: the root namespace) by a veth.
fn real_server(name: &str, parent: Option<&str>, n: u8, v6: bool) -> Result<()> {
    let (host_if, base) = (format!("v{name}"), format!("10.{}.{}", 10 * (n / 3 + 1), n));
    ip(&["netns", "add", name])?;
    ip(&[
        "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", name,
    ])?;
    let pip = |args: &[&str]| -> Result<String> {
        match parent {
            None => ip(args),
            Some(p) => {
                let mut full = vec!["-n", p];
                full.extend_from_slice(args);
                ip(&full)
            }
        }
    };
    if let Some(p) = parent {
        ip(&["link", "set", &host_if, "netns", p])?;
    }
    pip(&["addr", "add", &format!("{base}.1/24"), "dev", &host_if])?;
    pip(&["link", "set", &host_if, "up"])?;
    let nip = |args: &[&str]| -> Result<String> {
        let mut full = vec!["-n", name];
        full.extend_from_slice(args);
        ip(&full)
    };
    nip(&["link", "set", "lo", "up"])?;
    nip(&["addr", "add", &format!("{base}.2/24"), "dev", "eth0"])?;
    nip(&["link", "set", "eth0", "up"])?;
    nip(&["route", "add", "default", "via", &format!("{base}.1")])?;
    if v6 {
        pip(&[
            "-6",
            "addr",
            "add",
            &format!("fd00:10:{n}::1/64"),
            "dev",
            &host_if,
            "nodad",
        ])?;
        nip(&[
            "-6",
            "addr",
            "add",
            &format!("fd00:10:{n}::2/64"),
            "dev",
            "eth0",
            "nodad",
        ])?;
        nip(&[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &format!("fd00:10:{n}::1"),
        ])?;
    }
    Ok(())
}

fn setup() -> Result<()> {
    sysctl(None, "net.ipv4.ip_forward", "1")?;
    sysctl(None, "net.ipv6.conf.all.forwarding", "1")?;
    // The VIPs live on a dummy device, as kube-proxy's IPVS mode does it.
    ip(&["link", "add", "kube-ipvs0", "type", "dummy"])?;
    ip(&["link", "set", "kube-ipvs0", "up"])?;
    for vip in [
        "10.96.0.10/32",
        "10.96.0.11/32",
        "10.96.0.12/32",
        "10.96.0.13/32",
    ] {
        ip(&["addr", "add", vip, "dev", "kube-ipvs0"])?;
    }
    ip(&[
        "-6",
        "addr",
        "add",
        "fd00:96::10/128",
        "dev",
        "kube-ipvs0",
        "nodad",
    ])?;
    real_server("rs1", None, 1, true)?;
    real_server("rs2", None, 2, true)?;
    // The client namespace: traffic arrives at the director from outside, as in LVS-NAT.
    ip(&["netns", "add", "cl"])?;
    ip(&[
        "link", "add", "vcl", "type", "veth", "peer", "name", "eth0", "netns", "cl",
    ])?;
    ip(&["addr", "add", "10.30.0.1/24", "dev", "vcl"])?;
    ip(&["-6", "addr", "add", "fd00:30::1/64", "dev", "vcl", "nodad"])?;
    ip(&["link", "set", "vcl", "up"])?;
    ip(&["-n", "cl", "link", "set", "lo", "up"])?;
    ip(&["-n", "cl", "addr", "add", "10.30.0.2/24", "dev", "eth0"])?;
    ip(&[
        "-n",
        "cl",
        "-6",
        "addr",
        "add",
        "fd00:30::2/64",
        "dev",
        "eth0",
        "nodad",
    ])?;
    ip(&["-n", "cl", "link", "set", "eth0", "up"])?;
    ip(&["-n", "cl", "route", "add", "default", "via", "10.30.0.1"])?;
    ip(&[
        "-n",
        "cl",
        "-6",
        "route",
        "add",
        "default",
        "via",
        "fd00:30::1",
    ])?;

    let a = |args: &[&str]| ipvsadm_in(None, args).map(|_| ());
    a(&["-A", "-t", "10.96.0.10:80", "-s", "rr"])?;
    a(&[
        "-a",
        "-t",
        "10.96.0.10:80",
        "-r",
        "10.10.1.2:8080",
        "-m",
        "-w",
        "1",
    ])?;
    a(&[
        "-a",
        "-t",
        "10.96.0.10:80",
        "-r",
        "10.10.2.2:8080",
        "-m",
        "-w",
        "2",
    ])?;
    // Quiesced: weight 0, takes no new connections.
    a(&[
        "-a",
        "-t",
        "10.96.0.10:80",
        "-r",
        "10.10.1.2:8081",
        "-m",
        "-w",
        "0",
    ])?;
    a(&["-A", "-u", "10.96.0.11:53", "-s", "wrr"])?;
    a(&[
        "-a",
        "-u",
        "10.96.0.11:53",
        "-r",
        "10.10.1.2:5353",
        "-m",
        "-w",
        "3",
    ])?;
    a(&[
        "-a",
        "-u",
        "10.96.0.11:53",
        "-r",
        "10.10.2.2:5353",
        "-m",
        "-w",
        "1",
    ])?;
    a(&["-A", "-t", "[fd00:96::10]:80", "-s", "rr"])?;
    a(&[
        "-a",
        "-t",
        "[fd00:96::10]:80",
        "-r",
        "[fd00:10:1::2]:8080",
        "-m",
    ])?;
    a(&[
        "-a",
        "-t",
        "[fd00:96::10]:80",
        "-r",
        "[fd00:10:2::2]:8080",
        "-m",
    ])?;
    a(&[
        "--add-service",
        "--sctp-service",
        "10.96.0.12:9",
        "-s",
        "sh",
    ])?;
    a(&[
        "-a",
        "--sctp-service",
        "10.96.0.12:9",
        "-r",
        "10.10.1.2:9",
        "-m",
    ])?;
    a(&["-A", "-t", "10.96.0.13:443", "-s", "rr", "-p", "300"])?;
    a(&["-a", "-t", "10.96.0.13:443", "-r", "10.10.2.2:8443", "-m"])?;
    a(&["-A", "-f", "7", "-s", "rr"])?;
    a(&["-a", "-f", "7", "-r", "10.10.1.2", "-m"])?;
    a(&["-A", "-f", "7", "-6", "-s", "rr"])?;
    a(&["-a", "-f", "7", "-6", "-r", "[fd00:10:2::2]:0", "-m"])?;

    // A second namespace with its own IPVS table, like Docker Swarm's ingress_sbox.
    ip(&["netns", "add", INGRESS])?;
    ip(&["-n", INGRESS, "link", "set", "lo", "up"])?;
    sysctl(Some(INGRESS), "net.ipv4.ip_forward", "1")?;
    ip(&["-n", INGRESS, "link", "add", "dummy0", "type", "dummy"])?;
    ip(&[
        "-n",
        INGRESS,
        "addr",
        "add",
        "10.255.0.5/32",
        "dev",
        "dummy0",
    ])?;
    ip(&["-n", INGRESS, "link", "set", "dummy0", "up"])?;
    real_server("rs3", Some(INGRESS), 3, false)?;
    let b = |args: &[&str]| ipvsadm_in(Some(INGRESS), args).map(|_| ());
    b(&["-A", "-t", "10.255.0.5:8080", "-s", "rr"])?;
    b(&["-a", "-t", "10.255.0.5:8080", "-r", "10.20.3.2:80", "-m"])?;
    Ok(())
}

fn in_netns(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("/usr/bin/ip");
    c.args(["netns", "exec", ns]).arg(self_path()).args(args);
    c
}

/// One namespace as ipvsadm shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Table {
    list: BTreeMap<ServiceId, ipvsadm::ListedService>,
    stats: BTreeMap<ServiceId, ipvsadm::StatsService>,
    list_text: String,
    stats_text: String,
}

fn table(netns: Option<&str>) -> Result<Table> {
    let list_text = ipvsadm_in(netns, &["-Ln", "--exact"])?;
    let stats_text = ipvsadm_in(netns, &["-Ln", "--stats", "--exact"])?;
    Ok(Table {
        list: ipvsadm::parse_list(&list_text)?,
        stats: ipvsadm::parse_stats(&stats_text)?,
        list_text,
        stats_text,
    })
}

fn tcp4() -> ServiceId {
    ServiceId {
        protocol: "tcp".into(),
        address: "10.96.0.10".into(),
        port: 80,
        fwmark: 0,
    }
}

fn conns(t: &Table, id: &ServiceId) -> u64 {
    t.stats.get(id).map_or(0, |s| s.counters.conns)
}

/// Compares what the daemon serves for namespace `label` with ipvsadm's table; returns every
/// difference.
fn compare(samples: &[Sample], label: &str, t: &Table) -> Vec<String> {
    let mut diffs = Vec::new();
    let ns_samples: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name.starts_with("ipvs_") && s.label("namespace") == label)
        .collect();
    let find = |name: &str, id: &ServiceId, dest: Option<&DestId>, extra: Option<(&str, &str)>| {
        let port = id.port.to_string();
        let mark = id.fwmark.to_string();
        let dport = dest.map(|d| d.port.to_string());
        let found: Vec<f64> = ns_samples
            .iter()
            .filter(|s| {
                s.name == name
                    && s.label("protocol") == id.protocol
                    && s.label("address") == id.address
                    && s.label("port") == port
                    && s.label("fwmark") == mark
                    && dest.is_none_or(|d| {
                        s.label("destination_address") == d.address
                            && Some(s.label("destination_port")) == dport.as_deref()
                    })
                    && extra.is_none_or(|(k, v)| s.label(k) == v)
            })
            .map(|s| s.value)
            .collect();
        match found.as_slice() {
            [v] => Some(*v),
            _ => None,
        }
    };
    let mut other = Vec::new();
    let mut check = |what: String, got: Option<f64>, want: f64| {
        if got != Some(want) {
            diffs.push(format!("{what}: served {got:?}, ipvsadm {want}"));
        }
    };
    let services = ns_samples
        .iter()
        .find(|s| s.name == "ipvs_services")
        .map(|s| s.value);
    check(
        format!("ipvs_services{{namespace={label:?}}}"),
        services,
        t.list.len() as f64,
    );
    for (id, listed) in &t.list {
        let s = format!("{id:?}");
        check(
            format!("{s} scheduler"),
            find(
                "ipvs_service_info",
                id,
                None,
                Some(("scheduler", &listed.scheduler)),
            ),
            1.0,
        );
        check(
            format!("{s} destinations"),
            find("ipvs_destinations", id, None, None),
            listed.dests.len() as f64,
        );
        let Some(stats) = t.stats.get(id) else {
            other.push(format!("{s}: in ipvsadm -Ln but not in --stats"));
            continue;
        };
        let c = |name: &str, v: u64| (name.to_owned(), v as f64);
        let counters = |prefix: &str, k: &Counters| {
            vec![
                c(&format!("{prefix}_connections_total"), k.conns),
                c(&format!("{prefix}_packets_in_total"), k.in_pkts),
                c(&format!("{prefix}_packets_out_total"), k.out_pkts),
                c(&format!("{prefix}_bytes_in_total"), k.in_bytes),
                c(&format!("{prefix}_bytes_out_total"), k.out_bytes),
            ]
        };
        for (name, want) in counters("ipvs_service", &stats.counters) {
            check(format!("{s} {name}"), find(&name, id, None, None), want);
        }
        for (dest, d) in &listed.dests {
            let ds = format!("{s} -> {}:{}", dest.address, dest.port);
            check(
                format!("{ds} weight"),
                find("ipvs_destination_weight", id, Some(dest), None),
                d.weight as f64,
            );
            check(
                format!("{ds} active"),
                find("ipvs_destination_active_connections", id, Some(dest), None),
                d.active as f64,
            );
            check(
                format!("{ds} inactive"),
                find(
                    "ipvs_destination_inactive_connections",
                    id,
                    Some(dest),
                    None,
                ),
                d.inactive as f64,
            );
            let Some(dc) = stats.dests.get(dest) else {
                other.push(format!("{ds}: in ipvsadm -Ln but not in --stats"));
                continue;
            };
            for (name, want) in counters("ipvs_destination", dc) {
                check(
                    format!("{ds} {name}"),
                    find(&name, id, Some(dest), None),
                    want,
                );
            }
        }
    }
    diffs.extend(other);
    // Nothing served that ipvsadm does not show.
    let served: BTreeSet<(String, String, String, String)> = ns_samples
        .iter()
        .filter(|s| s.name == "ipvs_service_connections_total")
        .map(|s| {
            (
                s.label("protocol").to_owned(),
                s.label("address").to_owned(),
                s.label("port").to_owned(),
                s.label("fwmark").to_owned(),
            )
        })
        .collect();
    let shown: BTreeSet<(String, String, String, String)> = t
        .list
        .keys()
        .map(|k| {
            (
                k.protocol.clone(),
                k.address.clone(),
                k.port.to_string(),
                k.fwmark.to_string(),
            )
        })
        .collect();
    if served != shown {
        diffs.push(format!(
            "namespace {label:?}: served services {served:?}, ipvsadm shows {shown:?}"
        ));
    }
    let dests_served = ns_samples
        .iter()
        .filter(|s| s.name == "ipvs_destination_connections_total")
        .count();
    let dests_shown: usize = t.list.values().map(|l| l.dests.len()).sum();
    if dests_served != dests_shown {
        diffs.push(format!(
            "namespace {label:?}: {dests_served} destinations served, ipvsadm shows {dests_shown}"
        ));
    }
    diffs
}

pub fn run() -> Result<()> {
    if !module_loaded("ip_vs") {
        bail!("the ip_vs module is not loaded");
    }
    setup()?;
    let _rs1 = Proc::spawn_until(
        "rs1 servers",
        &mut in_netns("rs1", &["serve", "8080", "8081", "5353", "9"]),
        "ready",
    )?;
    let _rs2 = Proc::spawn_until(
        "rs2 servers",
        &mut in_netns("rs2", &["serve", "8080", "5353", "8443"]),
        "ready",
    )?;
    let _rs3 = Proc::spawn_until(
        "rs3 servers",
        &mut in_netns("rs3", &["serve", "80"]),
        "ready",
    )?;

    // Real connections through IPVS (each client checks every reply arrived).
    let (tcp4n, tcp6n, udp4n, ingn) = (
        TCP4.to_string(),
        TCP6.to_string(),
        UDP4.to_string(),
        INGRESS_TCP.to_string(),
    );
    crate::run(
        "/usr/bin/ip",
        &[
            "netns",
            "exec",
            "cl",
            &self_path().to_string_lossy(),
            "clients",
            "tcp",
            "10.96.0.10:80",
            &tcp4n,
            "tcp",
            "[fd00:96::10]:80",
            &tcp6n,
            "udp",
            "10.96.0.11:53",
            &udp4n,
        ],
    )?;
    // From inside the ingress namespace: its own local clients (IPVS's LOCAL_OUT path).
    crate::run(
        "/usr/bin/ip",
        &[
            "netns",
            "exec",
            INGRESS,
            &self_path().to_string_lossy(),
            "clients",
            "tcp",
            "10.255.0.5:8080",
            &ingn,
        ],
    )?;
    // Two connections that stay open: IPVS counts them as active.
    let _held = Proc::spawn_until(
        "held connections",
        &mut in_netns("cl", &["hold", "10.96.0.10:80", &HELD.to_string()]),
        "ready",
    )?;
    println!("ipvs: traffic sent");

    // The estimator folds the per-CPU counters in every 2 s: wait until ipvsadm shows them all.
    let tcp6 = ServiceId {
        protocol: "tcp".into(),
        address: "fd00:96::10".into(),
        port: 80,
        fwmark: 0,
    };
    let udp4 = ServiceId {
        protocol: "udp".into(),
        address: "10.96.0.11".into(),
        port: 53,
        fwmark: 0,
    };
    let ing = ServiceId {
        protocol: "tcp".into(),
        address: "10.255.0.5".into(),
        port: 8080,
        fwmark: 0,
    };
    wait_for(
        "ipvsadm to count every connection",
        Duration::from_secs(15),
        || {
            let (root, ingress) = (table(None)?, table(Some(INGRESS))?);
            let got = (
                conns(&root, &tcp4()),
                conns(&root, &tcp6),
                conns(&root, &udp4),
                conns(&ingress, &ing),
            );
            let want = (
                (TCP4 + HELD) as u64,
                TCP6 as u64,
                UDP4 as u64,
                INGRESS_TCP as u64,
            );
            Ok((got == want).then_some(()))
        },
    )?;
    let root = table(None)?;
    println!(
        "ipvs: ipvsadm -Ln --exact (root namespace)\n{}",
        root.list_text
    );
    println!(
        "ipvs: ipvsadm -Ln --stats --exact (root namespace)\n{}",
        root.stats_text
    );
    // Sanity of the reference itself: the quiesced server got nothing, the held ones are active.
    let listed = root
        .list
        .get(&tcp4())
        .context("no TCP service in ipvsadm")?;
    let active: u64 = listed.dests.values().map(|d| d.active).sum();
    if active != HELD as u64 {
        bail!("ipvsadm shows {active} active connections, {HELD} are held open");
    }
    let quiesced = DestId {
        address: "10.10.1.2".into(),
        port: 8081,
    };
    if root
        .stats
        .get(&tcp4())
        .and_then(|s| s.dests.get(&quiesced))
        .map(|c| c.conns)
        != Some(0)
    {
        bail!("the weight-0 server received connections");
    }

    // The daemon: both namespaces by path; and another with no --ipvs.netns (its own, label "").
    let both = Daemon::start(
        9101,
        &[
            "--collector.disable-defaults",
            "--collector.ipvs",
            "--ipvs.netns",
            "/proc/1/ns/net",
            "--ipvs.netns",
            INGRESS_PATH,
        ],
    )?;
    let own = Daemon::start(9102, &["--collector.disable-defaults", "--collector.ipvs"])?;

    // Same moment: ipvsadm before and after the scrapes agree, so the scrapes saw that state.
    let mut last_diffs = Vec::new();
    for attempt in 0..10 {
        let before = (table(None)?, table(Some(INGRESS))?);
        let body_both = both.metrics()?;
        let body_own = own.metrics()?;
        let after = (table(None)?, table(Some(INGRESS))?);
        if before != after {
            println!("ipvs: counters moved during attempt {attempt}; again");
            std::thread::sleep(Duration::from_millis(700));
            continue;
        }
        let (root, ingress) = before;
        let s_both = prom::parse(&body_both)?;
        let s_own = prom::parse(&body_own)?;
        let mut diffs = Vec::new();
        diffs.extend(compare(&s_both, "/proc/1/ns/net", &root));
        diffs.extend(compare(&s_both, INGRESS_PATH, &ingress));
        diffs.extend(compare(&s_own, "", &root));
        // The ingress service is reported with its namespace's label, and only there.
        for s in s_both.iter().chain(&s_own) {
            if s.label("address") == "10.255.0.5" && s.label("namespace") != INGRESS_PATH {
                diffs.push(format!(
                    "ingress service under namespace {:?}",
                    s.label("namespace")
                ));
            }
        }
        for (body, what) in [(&body_both, "both"), (&body_own, "own")] {
            for line in [
                "dataplane_collector_scrape_success{collector=\"ipvs\"} 1",
                "dataplane_collector_source_available{collector=\"ipvs\"} 1",
            ] {
                if !body.contains(line) {
                    diffs.push(format!("{what}: missing {line}"));
                }
            }
        }
        for up in ["/proc/1/ns/net", INGRESS_PATH] {
            if !body_both.contains(&format!("ipvs_up{{namespace=\"{up}\"}} 1\n")) {
                diffs.push(format!("ipvs_up of {up} is not 1"));
            }
        }
        if diffs.is_empty() {
            crate::promtool_check(&body_both)?;
            let n = s_both
                .iter()
                .filter(|s| s.name.starts_with("ipvs_"))
                .count();
            println!(
                "ipvs: {} services, {} destinations in 2 namespaces: all {n} ipvs_* series equal ipvsadm's",
                root.list.len() + ingress.list.len(),
                root.list
                    .values()
                    .chain(ingress.list.values())
                    .map(|l| l.dests.len())
                    .sum::<usize>()
            );
            println!(
                "ipvs: sample:\n{}",
                body_both
                    .lines()
                    .filter(|l| l.contains("10.96.0.10") && !l.starts_with('#'))
                    .take(12)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            capture_fixtures()?;
            return Ok(());
        }
        last_diffs = diffs;
        break;
    }
    if last_diffs.is_empty() {
        bail!("ipvsadm never showed the same counters twice in a row");
    }
    bail!(
        "the daemon differs from ipvsadm:\n  {}",
        last_diffs.join("\n  ")
    )
}

/// The raw netlink replies of a whole read of the root namespace, with ipvsadm's view of the
/// same moment, for `collector/tests/ipvs_fixtures.rs`.
fn capture_fixtures() -> Result<()> {
    use dataplane_collector::netlink::{Protocol, Socket};
    use dataplane_collector::sources::ipvs::read_services;
    for _ in 0..10 {
        let before = table(None)?;
        let mut sock = Socket::open(Protocol::Generic, Duration::from_secs(5))?;
        sock.start_capture();
        let services = read_services(&mut sock)?;
        let datagrams = sock.take_capture();
        let after = table(None)?;
        if before != after {
            continue;
        }
        let bin = dataplane_collector::netlink::capture::encode(&datagrams);
        emit_fixture("ipvs/read.bin", &bin);
        emit_fixture("ipvs/ipvsadm-list.txt", before.list_text.as_bytes());
        emit_fixture("ipvs/ipvsadm-stats.txt", before.stats_text.as_bytes());
        println!(
            "ipvs: captured {} netlink datagrams ({} bytes) for {} services",
            datagrams.len(),
            bin.len(),
            services.len()
        );
        return Ok(());
    }
    bail!("could not capture a stable read")
}
