//! The eBPF source's kernel hooks, on a real kernel datapath and a real IPVS: the kprobes on
//! `ovs_vport_receive`, `ovs_dp_upcall` and `ip_vs_conn_new` (the host kernel of the project's
//! machine has no kprobes, no openvswitch.ko and no ip_vs, so only this scenario proves them).
//!
//! Topology, all in the guest's network namespace where the daemon runs:
//! ```text
//!   cl (10.30.0.2) ──veth── guest: IPVS 10.96.0.10 (:80 tcp, :53 udp; rr, masquerade)
//!                                 │ routes 10.244.9.0/24 via brk (10.244.9.1, OVS internal port)
//!                           OVS bridge brk, datapath_type=system (openvswitch.ko)
//!                            ├── vcpod ── cpod 10.244.9.10
//!                            ├── vepa  ── epa  10.244.9.11 (serves :8080)
//!                            └── vepb  ── epb  10.244.9.12 (serves :8080)
//! ```
//! `ip_vs` is loaded only after the daemon started (as kube-proxy loads it on a node where the
//! collector already runs): its hook must attach then; and unloaded at the end: its hook must go. Checks, on quiet counters read before
//! and after the traffic:
//! - per pod port, `ebpf_ovs_vport_received_packets_total` moved exactly as the veth's
//!   `rx_packets` (sysfs), as the TC program's `ebpf_port_rx_packets_total` and as OVS's own
//!   `ovs_port_rx_packets_total`;
//! - the upcalls counted on all ports moved exactly as the datapath's `missed` (`ovs-dpctl show`);
//! - `ebpf_ipvs_new_connections_total` equals `ipvsadm`'s connection count per real server.

use crate::ipvsadm::{self, DestId, ServiceId};
use crate::{Daemon, Proc, ip, module_loaded, self_path, wait_for};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;
use testbed::netns::Pod;
use testbed::ovs::Ovs;
use testbed::prom::{self, Sample};

const BR: &str = "brk";
const VIP: &str = "10.96.0.10";
const TCP_CONNS: u64 = 12;
const UDP_CONNS: u64 = 8;

fn find<'a>(s: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    s.iter()
        .find(|x| x.name == name && labels.iter().all(|(k, v)| x.label(k) == *v))
}

fn value(s: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    find(s, name, labels).map_or(0.0, |x| x.value)
}

fn sysfs_counter(dev: &str, counter: &str) -> Result<u64> {
    let p = format!("/sys/class/net/{dev}/statistics/{counter}");
    std::fs::read_to_string(&p)
        .with_context(|| format!("read {p}"))?
        .trim()
        .parse()
        .with_context(|| format!("parse {p}"))
}

/// `missed:` of `ovs-dpctl show`: packets the kernel datapath sent up as misses.
fn dp_missed() -> Result<u64> {
    let out = crate::run("/usr/bin/ovs-dpctl", &["show"])?;
    out.split_whitespace()
        .find_map(|w| w.strip_prefix("missed:"))
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no missed: in ovs-dpctl show:\n{out}"))
}

/// What the kernel says, next to what the daemon served, read while nothing moves.
struct Quiet {
    rx: BTreeMap<String, u64>,
    missed: u64,
    samples: Vec<Sample>,
}

fn quiet(daemon: &Daemon, ports: &[&str]) -> Result<Quiet> {
    let read = || -> Result<(BTreeMap<String, u64>, u64)> {
        let mut rx = BTreeMap::new();
        for p in ports {
            rx.insert((*p).to_owned(), sysfs_counter(p, "rx_packets")?);
        }
        Ok((rx, dp_missed()?))
    };
    for _ in 0..30 {
        let before = read()?;
        let samples = prom::parse(&daemon.metrics()?)?;
        let after = read()?;
        // OVS's port stats reach OpenFlow through vswitchd: also wait for those to agree.
        let ofp_settled = ports.iter().all(|p| {
            value(&samples, "ovs_port_rx_packets_total", &[("port", p)]) as u64 == after.0[*p]
        });
        if before == after && ofp_settled {
            return Ok(Quiet {
                rx: after.0,
                missed: after.1,
                samples,
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!("the counters never settled")
}

fn in_netns(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("/usr/bin/ip");
    c.args(["netns", "exec", ns]).args(args);
    c
}

/// Takes away what the scenario adds outside its pods' namespaces, whatever the outcome, so the
/// next scenarios start from a clean guest.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        // (ipvsadm's family lookup would load ip_vs again.)
        if module_loaded("ip_vs") {
            let _ = crate::run("/usr/sbin/ipvsadm", &["-C"]);
        }
        for l in ["kube-ipvs0", "vcl"] {
            let _ = ip(&["link", "del", l]);
        }
        let _ = ip(&["netns", "del", "cl"]);
        let _ = crate::run("/usr/bin/ovs-dpctl", &["del-dp", "ovs-system"]);
        let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", "0\n");
    }
}

fn setup(ovs: &Ovs) -> Result<Vec<Pod>> {
    ovs.vsctl(&[
        "add-br",
        BR,
        "--",
        "set",
        "bridge",
        BR,
        "datapath_type=system",
        "fail_mode=secure",
    ])?;
    wait_for(
        "the bridge's management socket",
        Duration::from_secs(20),
        || Ok(ovs.mgmt(BR).exists().then_some(())),
    )?;
    // IPv4 only: no router solicitations or MLD reports from the bridge's own port.
    std::fs::write(format!("/proc/sys/net/ipv6/conf/{BR}/disable_ipv6"), "1\n")?;
    ip(&["addr", "add", "10.244.9.1/24", "dev", BR])?;
    ip(&["link", "set", BR, "up"])?;
    let mut pods = Vec::new();
    for (ns, host_if, n) in [
        ("cpod", "vcpod", 10u8),
        ("epa", "vepa", 11),
        ("epb", "vepb", 12),
    ] {
        let pod = Pod::create(
            ns,
            None,
            host_if,
            &format!("10.244.9.{n}"),
            &format!("02:00:00:00:09:{n:02x}"),
        )?;
        pod.exec_ip(&["route", "replace", "default", "via", "10.244.9.1"])?;
        ovs.vsctl(&["add-port", BR, host_if])?;
        pods.push(pod);
    }
    ovs.add_flow(BR, "priority=0,actions=NORMAL")?;
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1\n")?;
    // The client, outside the bridge: its packets reach IPVS in the guest's namespace.
    let _ = ip(&["netns", "del", "cl"]);
    ip(&["netns", "add", "cl"])?;
    ip(&[
        "link", "add", "vcl", "type", "veth", "peer", "name", "eth0", "netns", "cl",
    ])?;
    ip(&["addr", "add", "10.30.0.1/24", "dev", "vcl"])?;
    ip(&["link", "set", "vcl", "up"])?;
    for args in [
        &["link", "set", "lo", "up"][..],
        &["addr", "add", "10.30.0.2/24", "dev", "eth0"],
        &["link", "set", "eth0", "up"],
        &["route", "add", "default", "via", "10.30.0.1"],
    ] {
        let mut full = vec!["-n", "cl"];
        full.extend_from_slice(args);
        ip(&full)?;
    }
    // The service address lives on a dummy device, as kube-proxy's kube-ipvs0.
    ip(&["link", "add", "kube-ipvs0", "type", "dummy"])?;
    ip(&["addr", "add", &format!("{VIP}/32"), "dev", "kube-ipvs0"])?;
    Ok(pods)
}

fn hooks(s: &[Sample]) -> BTreeMap<String, f64> {
    s.iter()
        .filter(|x| x.name == "ebpf_hook_available")
        .map(|x| (x.label("hook").to_owned(), x.value))
        .collect()
}

fn load_ipvs() -> Result<()> {
    for m in ["ip_vs", "ip_vs_rr"] {
        crate::run("/usr/sbin/modprobe", &[m])?;
        if !module_loaded(m) {
            bail!("modprobe {m} left no /sys/module/{m}");
        }
    }
    let vip = |port: u16| format!("{VIP}:{port}");
    for (proto, port) in [("-t", 80), ("-u", 53)] {
        crate::run("/usr/sbin/ipvsadm", &["-A", proto, &vip(port), "-s", "rr"])?;
        for rs in ["10.244.9.11:8080", "10.244.9.12:8080"] {
            crate::run(
                "/usr/sbin/ipvsadm",
                &["-a", proto, &vip(port), "-r", rs, "-m"],
            )?;
        }
    }
    Ok(())
}

pub fn run() -> Result<()> {
    if !module_loaded("openvswitch") {
        bail!("the openvswitch module is not loaded");
    }
    if module_loaded("ip_vs") {
        bail!("ip_vs is already loaded: this scenario loads it after the daemon starts");
    }
    let _cleanup = Cleanup;
    let ovs = Ovs::start_in_host_netns()?;
    let pods = setup(&ovs)?;
    let rundir = ovs.rundir().to_string_lossy().into_owned();
    let daemon = Daemon::start(
        9300,
        &[
            "--ovs.rundir",
            &rundir,
            "--collector.disable-defaults",
            "--collector.ebpf",
            "--collector.openflow",
            "--collector.ovsdb",
            "--collector.ipvs",
            "--ebpf.max-flow-series=0",
        ],
    )?;
    let ports: Vec<&str> = pods.iter().map(|p| p.host_if.as_str()).collect();
    // Before ip_vs: the OVS hooks and every port attached, the IPVS hook unavailable.
    let s = wait_for("the hooks and the ports", Duration::from_secs(30), || {
        let s = prom::parse(&daemon.metrics()?)?;
        let h = hooks(&s);
        let attached = ports.iter().all(|p| {
            find(
                &s,
                "ebpf_port_rx_packets_total",
                &[("bridge", BR), ("port", p)],
            )
            .is_some()
        });
        Ok((h.get("ovs_vport_receive") == Some(&1.0)
            && h.get("ovs_dp_upcall") == Some(&1.0)
            && attached)
            .then_some(s))
    })
    .with_context(|| std::fs::read_to_string(&daemon.log).unwrap_or_default())?;
    let h = hooks(&s);
    if h.get("ip_vs_conn_new") != Some(&0.0) {
        bail!("without ip_vs, ebpf_hook_available{{hook=\"ip_vs_conn_new\"}} is {h:?}");
    }
    let clsact = value(&s, "ebpf_attached_ports", &[("mode", "clsact")]);
    println!(
        "ebpf-kernel: kprobes on ovs_vport_receive and ovs_dp_upcall, {clsact} ports on clsact (no TCX in this kernel), no ip_vs yet"
    );

    load_ipvs()?;
    wait_for("the ip_vs_conn_new kprobe", Duration::from_secs(20), || {
        let s = prom::parse(&daemon.metrics()?)?;
        Ok((hooks(&s).get("ip_vs_conn_new") == Some(&1.0)).then_some(()))
    })
    .with_context(|| std::fs::read_to_string(&daemon.log).unwrap_or_default())?;
    println!("ebpf-kernel: ip_vs loaded after the daemon: its kprobe attached");

    let _servers: Vec<Proc> = ["epa", "epb"]
        .iter()
        .map(|ns| {
            Proc::spawn_until(
                &format!("server in {ns}"),
                &mut in_netns(ns, &[&self_path().to_string_lossy(), "serve", "8080"]),
                "ready",
            )
        })
        .collect::<Result<_>>()?;
    // Every neighbour resolved first, so the traffic below is all the traffic.
    pods[0].ping("10.244.9.11", 2)?;
    pods[0].ping("10.244.9.12", 2)?;
    let base = quiet(&daemon, &ports)?;

    pods[0].ping("10.244.9.11", 20)?;
    crate::run(
        "/usr/bin/ip",
        &[
            "netns",
            "exec",
            "cl",
            &self_path().to_string_lossy(),
            "clients",
            "tcp",
            &format!("{VIP}:80"),
            &TCP_CONNS.to_string(),
            "udp",
            &format!("{VIP}:53"),
            &UDP_CONNS.to_string(),
        ],
    )?;
    let now = quiet(&daemon, &ports)?;

    let mut diffs = Vec::new();
    for p in &ports {
        let d = |q: &Quiet, name: &str| value(&q.samples, name, &[("bridge", BR), ("port", p)]);
        let sysfs = now.rx[*p] - base.rx[*p];
        let kprobe = d(&now, "ebpf_ovs_vport_received_packets_total")
            - d(&base, "ebpf_ovs_vport_received_packets_total");
        let tc = d(&now, "ebpf_port_rx_packets_total") - d(&base, "ebpf_port_rx_packets_total");
        let ofp = d(&now, "ovs_port_rx_packets_total") - d(&base, "ovs_port_rx_packets_total");
        println!(
            "ebpf-kernel: {p}: {sysfs} packets received (sysfs); kprobe {kprobe}, tc {tc}, OpenFlow {ofp}"
        );
        if sysfs == 0 {
            diffs.push(format!("{p}: no traffic"));
        }
        for (what, v) in [("kprobe", kprobe), ("tc", tc), ("OpenFlow", ofp)] {
            if v != sysfs as f64 {
                diffs.push(format!("{p}: {what} counted {v}, sysfs {sysfs}"));
            }
        }
    }
    let sum = |q: &Quiet| -> f64 {
        q.samples
            .iter()
            .filter(|x| x.name == "ebpf_ovs_upcalls_total")
            .map(|x| x.value)
            .sum()
    };
    let upcalls = sum(&now) - sum(&base);
    let missed = now.missed - base.missed;
    println!("ebpf-kernel: {upcalls} upcalls counted, {missed} datapath misses (ovs-dpctl show)");
    if missed == 0 || upcalls != missed as f64 {
        diffs.push(format!(
            "upcalls: counted {upcalls}, ovs-dpctl missed {missed}"
        ));
    }

    // IPVS: every new connection per real server, against ipvsadm (on its 2 s timer).
    let stats = wait_for(
        "ipvsadm's connection counts",
        Duration::from_secs(20),
        || {
            let st = ipvsadm::parse_stats(&crate::run(
                "/usr/sbin/ipvsadm",
                &["-Ln", "--stats", "--exact"],
            )?)?;
            let total: u64 = st.values().map(|s| s.counters.conns).sum();
            Ok((total == TCP_CONNS + UDP_CONNS).then_some(st))
        },
    )?;
    let s = prom::parse(&daemon.metrics()?)?;
    for (svc, st) in &stats {
        let ServiceId {
            protocol,
            address,
            port,
            ..
        } = svc;
        for (
            DestId {
                address: da,
                port: dp,
            },
            c,
        ) in &st.dests
        {
            let got = value(
                &s,
                "ebpf_ipvs_new_connections_total",
                &[
                    ("protocol", protocol),
                    ("address", address),
                    ("port", &port.to_string()),
                    ("destination_address", da),
                    ("destination_port", &dp.to_string()),
                ],
            );
            println!(
                "ebpf-kernel: {protocol} {address}:{port} -> {da}:{dp}: {got} new connections counted, ipvsadm {}",
                c.conns
            );
            if got != c.conns as f64 || c.conns == 0 {
                diffs.push(format!(
                    "{protocol} {address}:{port} -> {da}:{dp}: counted {got}, ipvsadm {}",
                    c.conns
                ));
            }
        }
    }
    // Unloading ip_vs takes its hook away, with nothing left behind (and leaves the kernel as
    // the `ipvs-absent` scenario needs it).
    crate::run("/usr/sbin/ipvsadm", &["-C"])?;
    for m in ["ip_vs_rr", "ip_vs"] {
        crate::run("/bb/rmmod", &[m])?;
    }
    wait_for(
        "the ip_vs_conn_new kprobe to go",
        Duration::from_secs(20),
        || {
            let s = prom::parse(&daemon.metrics()?)?;
            Ok((hooks(&s).get("ip_vs_conn_new") == Some(&0.0)
                && find(&s, "ebpf_ipvs_new_connections_total", &[]).is_none())
            .then_some(()))
        },
    )?;
    println!("ebpf-kernel: ip_vs unloaded: its kprobe detached, its series gone");

    // Drops, on the kernel datapath: UDP to a closed port in pod epa (counted exactly, under
    // NO_SOCKET, on its eth0 and, through the veth's peer, its OVS port), and UDP an OpenFlow
    // rule drops (what this kernel reports for it is printed: before the openvswitch module's
    // drop reasons, the datapath frees such packets as consumed).
    if hooks(&s).get("kfree_skb") != Some(&1.0) {
        diffs.push(format!(
            "the kfree_skb hook is not attached: {:?}",
            hooks(&s)
        ));
    }
    ovs.add_flow(
        BR,
        "priority=100,cookie=0xd0,udp,nw_dst=10.244.9.12,tp_dst=9999,actions=drop",
    )?;
    let drops = |s: &[Sample]| -> BTreeMap<String, f64> {
        s.iter()
            .filter(|x| x.name == "ebpf_drops_total")
            .map(|x| {
                let k = format!(
                    "reason={} subsystem={} device={} port={} protocol={} direction={}",
                    x.label("reason"),
                    x.label("subsystem"),
                    x.label("device"),
                    x.label("port"),
                    x.label("protocol"),
                    x.label("direction")
                );
                (k, x.value)
            })
            .collect()
    };
    let before = drops(&prom::parse(&daemon.metrics()?)?);
    let me = self_path().to_string_lossy().into_owned();
    crate::run(
        "/usr/bin/ip",
        &[
            "netns",
            "exec",
            "cpod",
            &me,
            "clients",
            "send",
            "10.244.9.11:9998",
            "3",
            "send",
            "10.244.9.12:9999",
            "5",
        ],
    )?;
    let after = wait_for("the drops counted", Duration::from_secs(20), || {
        let now = drops(&prom::parse(&daemon.metrics()?)?);
        let closed =
            "reason=NO_SOCKET subsystem=core device=eth0 port=vepa protocol=udp direction=rx";
        let n =
            now.get(closed).copied().unwrap_or(0.0) - before.get(closed).copied().unwrap_or(0.0);
        Ok((n >= 3.0).then_some((now, n)))
    })
    .with_context(|| std::fs::read_to_string(&daemon.log).unwrap_or_default())?;
    let (after, closed) = after;
    for (k, v) in &after {
        let d = v - before.get(k).copied().unwrap_or(0.0);
        if d != 0.0 {
            println!("ebpf-kernel: drops: {k}: {d}");
        }
    }
    if closed != 3.0 {
        diffs.push(format!(
            "UDP to a closed port: {closed} NO_SOCKET drops counted, 3 sent"
        ));
    }
    drop(daemon);
    if !diffs.is_empty() {
        bail!("the kprobes' counts differ:\n  {}", diffs.join("\n  "));
    }
    Ok(())
}
