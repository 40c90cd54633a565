//! Root-only: drops counted by the `kfree_skb` program on the host kernel, against a real Open
//! vSwitch (userspace datapath, in the host's namespace) and pods in namespaces. Each drop is
//! induced a known number of times and must be counted exactly, under the reason the running
//! kernel names it, on the pod's device and attributed to the pod through the veth's OVS port.
//!
//! The tests in this file run one at a time (they share the host's namespace and its kernel).

use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::MetadataExt as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use testbed::daemon::Daemon;
use testbed::netns::Pod;
use testbed::ovs::Ovs;
use testbed::prom::{self, Sample};
use testbed::topology::Topology;

static SERIAL: Mutex<()> = Mutex::new(());

const NS: &str = "drops";

fn scrape(d: &Daemon) -> Result<Vec<Sample>> {
    let (status, body) = d.get("/metrics")?;
    if status != 200 {
        bail!("HTTP {status}: {body}");
    }
    prom::parse(&body)
}

/// Names each pod the way Kube-OVN tags its interface, so drops carry the pod's name.
fn tag_pods(topo: &Topology) -> Result<()> {
    for (i, p) in topo.pods.iter().enumerate() {
        topo.ovs.vsctl(&[
            "set",
            "interface",
            &p.host_if,
            &format!("external_ids:pod_name=pod{i}"),
            &format!("external_ids:pod_namespace={NS}"),
        ])?;
    }
    Ok(())
}

/// Starts the daemon (the eBPF source alone) and waits until the drop program is attached.
/// Without the eBPF object the test is skipped, or fails where root tests are required.
fn daemon(topo: &Topology) -> Result<Option<Daemon>> {
    let args: Vec<String> = [
        "--ovs.rundir",
        &topo.ovs.rundir().to_string_lossy(),
        "--collector.disable-defaults",
        "--collector.ebpf",
        "--ebpf.drops-max-series=0",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let d = Daemon::start(&args)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = scrape(&d)?;
        let get = |name: &str, k: &str, v: &str| {
            s.iter()
                .find(|x| x.name == name && x.label(k) == v)
                .map(|x| x.value)
        };
        if get("dataplane_collector_source_available", "collector", "ebpf") == Some(0.0) {
            let msg = "the eBPF programs are not available (cargo xtask build-ebpf, root, BPF)";
            assert!(std::env::var("DPC_REQUIRE_ROOT_TESTS").is_err(), "{msg}");
            eprintln!("SKIPPED: {msg}");
            return Ok(None);
        }
        if get("ebpf_hook_available", "hook", "kfree_skb") == Some(1.0) {
            return Ok(Some(d));
        }
        if Instant::now() > deadline {
            bail!("the kfree_skb hook is not attached");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Drops of this test's pods: (pod, device, reason, protocol, direction) → count.
type Drops = BTreeMap<(String, String, String, String, String), u64>;

fn drops_of_pods(s: &[Sample]) -> Drops {
    let mut out = Drops::new();
    for x in s
        .iter()
        .filter(|x| x.name == "ebpf_drops_total" && x.label("namespace") == NS)
    {
        let k = (
            x.label("pod").to_owned(),
            x.label("device").to_owned(),
            x.label("reason").to_owned(),
            x.label("protocol").to_owned(),
            x.label("direction").to_owned(),
        );
        *out.entry(k).or_default() += x.value as u64;
    }
    out
}

fn delta(after: &Drops, before: &Drops) -> Drops {
    after
        .iter()
        .filter_map(|(k, a)| {
            let d = a - before.get(k).copied().unwrap_or(0);
            (d != 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// The pods' drops once they stop changing (the userspace datapath forwards asynchronously):
/// two scrapes half a second apart that agree.
fn settled(d: &Daemon) -> Result<Drops> {
    let mut last = drops_of_pods(&scrape(d)?);
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(500));
        let now = drops_of_pods(&scrape(d)?);
        if now == last {
            return Ok(now);
        }
        last = now;
    }
    bail!("drop counters did not settle")
}

fn key(
    pod: &str,
    device: &str,
    reason: &str,
    proto: &str,
    dir: &str,
) -> (String, String, String, String, String) {
    (
        pod.to_owned(),
        device.to_owned(),
        reason.to_owned(),
        proto.to_owned(),
        dir.to_owned(),
    )
}

/// The switch side of the userspace datapath: the kernel's stack also sees every frame a
/// pod sends into its veth (OVS reads it from a packet socket) and, the frame not being for
/// the host, frees it as OTHERHOST. Those are real kernel drops on the host's veth, counted
/// as such; the assertions below are about the pod side, so they are left out here.
fn pod_side(d: Drops) -> Drops {
    d.into_iter()
        .filter(|((_, dev, ..), _)| dev == "eth0")
        .collect()
}

/// Runs `cmd` in the pod; fails with its output.
fn sh(pod: &Pod, prog: &str, args: &[&str]) -> Result<()> {
    pod.exec(prog, args).map(|_| ())
}

#[test]
fn each_induced_drop_is_counted_exactly_with_its_reason_and_pod() -> Result<()> {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !testbed::require_root_env() {
        return Ok(());
    }
    let topo = Topology::build(Ovs::start_in_host_netns()?, 3)?;
    tag_pods(&topo)?;
    let Some(d) = daemon(&topo)? else {
        return Ok(());
    };
    let (p0, p1) = (&topo.pods[0], &topo.pods[1]);

    // Clean traffic (both ways, ARP included): nothing dropped in the pods. Ping from an
    // ICMP datagram socket (ping_group_range lets root have one): a raw-socket ping's echo
    // replies reach the raw socket as a copy, and the kernel frees the original as NO_SOCKET
    // (no ICMP socket wanted it), which would be counted, rightly, as a drop.
    for p in [p0, p1] {
        sh(
            p,
            "sysctl",
            &["-qw", "net.ipv4.ping_group_range=0 2147483647"],
        )?;
    }
    let before = settled(&d)?;
    p0.ping(&p1.ip, 5)?;
    p1.ping(&p0.ip, 5)?;
    let clean = pod_side(delta(&settled(&d)?, &before));
    assert!(
        clean.is_empty(),
        "drops while traffic flowed cleanly: {clean:?}"
    );

    // UDP from pod 0, whose veth leaves the checksum to the "hardware": the userspace
    // datapath reads the frame from a packet socket and sends it on without filling the
    // checksum in, so pod 1's stack finds it bad. A real drop of this test bed, found by the
    // collector: counted as such.
    let before = settled(&d)?;
    p0.send_udp(&p1.ip, 7000, 3, 20)?;
    let got = pod_side(delta(&settled(&d)?, &before));
    let want: Drops = [(key("pod1", "eth0", "UDP_CSUM", "udp", "rx"), 3)].into();
    assert_eq!(
        got, want,
        "UDP with the checksum left to an offload nobody does"
    );
    // From here on pod 0 computes its checksums itself.
    sh(p0, "ethtool", &["-K", "eth0", "tx", "off"])?;

    // UDP to a port nobody listens on in pod 1.
    let before = settled(&d)?;
    p0.send_udp(&p1.ip, 7000, 7, 20)?;
    let got = pod_side(delta(&settled(&d)?, &before));
    let want: Drops = [(key("pod1", "eth0", "NO_SOCKET", "udp", "rx"), 7)].into();
    assert_eq!(got, want, "UDP to a closed port");

    // An nftables rule in pod 1 that drops one port.
    sh(p1, "nft", &["add", "table", "inet", "dpc"])?;
    sh(
        p1,
        "nft",
        &[
            "add",
            "chain",
            "inet",
            "dpc",
            "in",
            "{ type filter hook input priority 0; policy accept; }",
        ],
    )?;
    sh(
        p1,
        "nft",
        &[
            "add", "rule", "inet", "dpc", "in", "udp", "dport", "7001", "drop",
        ],
    )?;
    let before = settled(&d)?;
    p0.send_udp(&p1.ip, 7001, 5, 20)?;
    let got = pod_side(delta(&settled(&d)?, &before));
    let want: Drops = [(key("pod1", "eth0", "NETFILTER_DROP", "udp", "rx"), 5)].into();
    assert_eq!(got, want, "an nftables drop rule");

    // A tc drop on pod 1's device: a classic BPF filter in direct-action mode that returns
    // TC_ACT_SHOT for UDP to port 7002 (this kernel has no gact), and "continue" otherwise.
    sh(p1, "tc", &["qdisc", "add", "dev", "eth0", "clsact"])?;
    sh(
        p1,
        "tc",
        &[
            "filter",
            "add",
            "dev",
            "eth0",
            "ingress",
            "prio",
            "5",
            "bpf",
            "da",
            "bytecode",
            "9,40 0 0 12,21 0 6 2048,48 0 0 23,21 0 4 17,177 0 0 14,72 0 0 16,21 0 1 7002,6 0 0 2,6 0 0 4294967295",
        ],
    )?;
    let before = settled(&d)?;
    p0.send_udp(&p1.ip, 7002, 6, 20)?;
    let got = pod_side(delta(&settled(&d)?, &before));
    let want: Drops = [(key("pod1", "eth0", "TC_INGRESS", "udp", "rx"), 6)].into();
    assert_eq!(got, want, "a tc drop");

    // A packet pod 1 should forward to an address it has no route to.
    sh(p1, "sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
    p1.exec_ip(&["route", "del", "default"])?;
    p0.exec_ip(&["route", "add", "10.99.0.0/16", "via", &p1.ip])?;
    topo.ovs.add_flow(
        &topo.bridge,
        &format!(
            "table=1,priority=210,ip,nw_dst=10.99.0.0/16,actions=output:{}",
            topo.ofports[1]
        ),
    )?;
    let before = settled(&d)?;
    p0.send_udp("10.99.0.1", 7003, 4, 20)?;
    let got = pod_side(delta(&settled(&d)?, &before));
    let want: Drops = [(key("pod1", "eth0", "IP_INNOROUTES", "udp", "rx"), 4)].into();
    assert_eq!(got, want, "no route");
    Ok(())
}

/// The namespaces (inodes) of the keys in the newest DROPS map (this test's daemon's: the
/// tests of this file run one at a time, and a daemon's maps go with it).
fn drop_map_netns() -> Result<Vec<u32>> {
    let maps = testbed::bpftool(&["map", "show"])?;
    let id = maps
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["name"] == "DROPS")
        .filter_map(|m| m["id"].as_u64())
        .max()
        .context("no DROPS map in the kernel")?;
    let dump = testbed::bpftool(&["map", "dump", "id", &id.to_string()])?;
    let mut out = Vec::new();
    for e in dump.as_array().into_iter().flatten() {
        let key: Vec<u8> = e["key"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| {
                b.as_str()
                    .and_then(|h| u8::from_str_radix(h.trim_start_matches("0x"), 16).ok())
            })
            .collect();
        if key.len() == 16 {
            out.push(u32::from_le_bytes([key[4], key[5], key[6], key[7]]));
        }
    }
    Ok(out)
}

#[test]
fn fifty_pods_churned_leave_no_drop_entries_behind() -> Result<()> {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !testbed::require_root_env() {
        return Ok(());
    }
    let topo = Topology::build(Ovs::start_in_host_netns()?, 3)?;
    let Some(d) = daemon(&topo)? else {
        return Ok(());
    };
    let tag = testbed::topology::unique_tag();
    let mut pods = Vec::new();
    for i in 0..50 {
        let pod = Pod::create(
            &format!("dpc-{tag}-c{i}"),
            None,
            &format!("c{tag}p{i}"),
            &format!("10.245.{}.{}", i / 200, 2 + i % 200),
            &format!("02:00:00:01:00:{:02x}", i + 2),
        )?;
        topo.ovs.vsctl(&["add-port", &topo.bridge, &pod.host_if])?;
        // Into a closed port of the pod's own address: a NO_SOCKET drop in its namespace.
        pod.send_udp(&pod.ip, 7000, 2, 8)?;
        pods.push(pod);
    }
    let inodes: HashSet<u32> = pods
        .iter()
        .map(|p| {
            std::fs::metadata(format!("/run/netns/{}", p.netns))
                .map(|m| m.ino() as u32)
                .context("netns inode")
        })
        .collect::<Result<_>>()?;
    scrape(&d)?;
    let live = drop_map_netns()?
        .into_iter()
        .filter(|n| inodes.contains(n))
        .collect::<HashSet<_>>();
    assert_eq!(live.len(), 50, "every pod's drops are in the map");

    for pod in pods {
        topo.ovs.vsctl(&["del-port", &topo.bridge, &pod.host_if])?;
        drop(pod);
    }
    // The next scrape finds the namespaces gone and deletes their keys.
    scrape(&d)?;
    let left: Vec<u32> = drop_map_netns()?
        .into_iter()
        .filter(|n| inodes.contains(n))
        .collect();
    assert!(
        left.is_empty(),
        "{} keys of gone namespaces left",
        left.len()
    );
    Ok(())
}
