//! Root-only: the eBPF source on the host kernel, against a real Open vSwitch (userspace
//! datapath, in the host's namespace so the daemon can attach to its vports).
//!
//! The tests in this file run one at a time (they share the host namespace and check what is
//! left in the kernel).

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use testbed::daemon::Daemon;
use testbed::netns::Pod;
use testbed::ovs::Ovs;
use testbed::prom::{self, Sample};
use testbed::topology::Topology;

static SERIAL: Mutex<()> = Mutex::new(());

fn args(rundir: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        "--ovs.rundir".to_owned(),
        rundir.to_string_lossy().into_owned(),
        "--collector.disable-defaults".to_owned(),
        "--collector.ebpf".to_owned(),
        "--ebpf.max-flow-series=0".to_owned(),
    ];
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

fn scrape(d: &Daemon) -> Result<Vec<Sample>> {
    let (status, body) = d.get("/metrics")?;
    if status != 200 {
        bail!("HTTP {status}: {body}");
    }
    prom::parse(&body)
}

fn find<'a>(s: &'a [Sample], name: &str, want: &[(&str, &str)]) -> Vec<&'a Sample> {
    s.iter()
        .filter(|x| x.name == name && want.iter().all(|(k, v)| x.label(k) == *v))
        .collect()
}

fn one(s: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let f = find(s, name, want);
    (f.len() == 1).then(|| f[0].value)
}

/// Starts the daemon and waits until the programs are on `ports` vports. Without the eBPF
/// object (a build without `cargo xtask build-ebpf`) the test is skipped, or fails where root
/// tests are required.
fn daemon_attached(topo: &Topology, extra: &[&str], ports: usize) -> Result<Option<Daemon>> {
    let d = Daemon::start(&args(topo.ovs.rundir(), extra))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = scrape(&d)?;
        if one(
            &s,
            "dataplane_collector_source_available",
            &[("collector", "ebpf")],
        ) == Some(0.0)
        {
            let msg = "the eBPF programs are not available (cargo xtask build-ebpf, root, BPF)";
            assert!(std::env::var("DPC_REQUIRE_ROOT_TESTS").is_err(), "{msg}");
            eprintln!("SKIPPED: {msg}");
            return Ok(None);
        }
        let attached: f64 = find(&s, "ebpf_attached_ports", &[])
            .iter()
            .map(|x| x.value)
            .sum();
        if attached as usize >= ports {
            return Ok(Some(d));
        }
        if Instant::now() > deadline {
            bail!("only {attached} ports attached");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sysfs(iface: &str, counter: &str) -> Result<u64> {
    let p = format!("/sys/class/net/{iface}/statistics/{counter}");
    Ok(std::fs::read_to_string(&p)
        .with_context(|| p.clone())?
        .trim()
        .parse()?)
}

/// Per port: (rx packets, rx bytes, tx packets, tx bytes) from eBPF, sysfs and OVS.
type Readings = BTreeMap<String, [u64; 4]>;

fn readings(topo: &Topology, d: &Daemon) -> Result<(Readings, Readings, Readings)> {
    let s = scrape(d)?;
    let ofctl =
        testbed::ofctl::parse_ports(&topo.ovs.ofctl(&[], "dump-ports", &topo.bridge, &[])?)?;
    let mut ebpf = Readings::new();
    let mut sys = Readings::new();
    let mut ovs = Readings::new();
    for (pod, ofport) in topo.pods.iter().zip(&topo.ofports) {
        let p = pod.host_if.as_str();
        let e = |m: &str| one(&s, m, &[("port", p)]).map_or(u64::MAX, |v| v as u64);
        ebpf.insert(
            p.to_owned(),
            [
                e("ebpf_port_rx_packets_total"),
                e("ebpf_port_rx_bytes_total"),
                e("ebpf_port_tx_packets_total"),
                e("ebpf_port_tx_bytes_total"),
            ],
        );
        sys.insert(
            p.to_owned(),
            [
                sysfs(p, "rx_packets")?,
                sysfs(p, "rx_bytes")?,
                sysfs(p, "tx_packets")?,
                sysfs(p, "tx_bytes")?,
            ],
        );
        let o = ofctl.get(&ofport.to_string()).context("ovs port")?;
        let g = |k: &str| o.get(k).copied().flatten().unwrap_or(u64::MAX);
        ovs.insert(
            p.to_owned(),
            [g("rx_pkts"), g("rx_bytes"), g("tx_pkts"), g("tx_bytes")],
        );
    }
    Ok((ebpf, sys, ovs))
}

fn delta(after: &Readings, before: &Readings) -> Readings {
    after
        .iter()
        .map(|(k, a)| {
            let b = before.get(k).copied().unwrap_or_default();
            (k.clone(), std::array::from_fn(|i| a[i].wrapping_sub(b[i])))
        })
        .collect()
}

/// Sends `count` UDP datagrams of `payload` bytes from a fixed source port.
fn udp(pod: &Pod, dst: &str, sport: u16, dport: u16, count: u32, payload: usize) -> Result<()> {
    let script = format!(
        "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('',{sport}))\n\
         for _ in range({count}): s.sendto(b'x'*{payload},('{dst}',{dport}))\n"
    );
    pod.exec("python3", &["-c", &script]).map(|_| ())
}

#[test]
fn port_counters_equal_sysfs_and_ovs_and_flows_count_what_was_sent() -> Result<()> {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !testbed::require_root_env() {
        return Ok(());
    }
    let topo = Topology::build(Ovs::start_in_host_netns()?, 3)?;
    let Some(d) = daemon_attached(&topo, &[], 4)? else {
        return Ok(());
    };
    // Let ARP settle so the window below holds only our traffic.
    topo.pods[0].ping(&topo.pods[1].ip, 1)?;
    topo.pods[0].ping(&topo.pods[2].ip, 1)?;
    std::thread::sleep(Duration::from_millis(500));

    let (e0, s0, o0) = readings(&topo, &d)?;
    topo.traffic(2)?;
    let (n, payload) = (50u32, 100usize);
    udp(&topo.pods[0], &topo.pods[1].ip, 40001, 5000, n, payload)?;
    udp(
        &topo.pods[2],
        &topo.pods[0].ip,
        40002,
        6000,
        2 * n,
        2 * payload,
    )?;
    std::thread::sleep(Duration::from_millis(500));
    let (e1, s1, o1) = readings(&topo, &d)?;

    let (de, ds, dov) = (delta(&e1, &e0), delta(&s1, &s0), delta(&o1, &o0));
    assert_eq!(
        de, ds,
        "eBPF and sysfs counters differ for the same traffic"
    );
    assert_eq!(ds, dov, "sysfs and OVS port counters differ");
    let p0 = &topo.pods[0].host_if;
    assert!(de[p0][0] >= u64::from(n), "traffic did not show: {de:?}");

    // Per flow: exactly what was sent, on both ports it crossed.
    let s = scrape(&d)?;
    let frame = (14 + 20 + 8 + payload) as f64;
    let flow = |port: &str, dir: &str, src: &str, dst: &str, sport: &str, dport: &str| {
        let key = [
            ("port", port),
            ("direction", dir),
            ("protocol", "udp"),
            ("src", src),
            ("dst", dst),
            ("src_port", sport),
            ("dst_port", dport),
        ];
        (
            one(&s, "ebpf_flow_packets_total", &key),
            one(&s, "ebpf_flow_bytes_total", &key),
            find(&s, "ebpf_flow_packets_total", &key)
                .first()
                .map(|x| x.label("cookie").to_owned()),
        )
    };
    let (ip0, ip1, ip2) = (&topo.pods[0].ip, &topo.pods[1].ip, &topo.pods[2].ip);
    let (pk, by, cookie) = flow(p0, "rx", ip0, ip1, "40001", "5000");
    assert_eq!((pk, by), (Some(f64::from(n)), Some(f64::from(n) * frame)));
    // The rule that decided it: table 1's output to pod 1 (cookie 0x2002).
    assert_eq!(cookie.as_deref(), Some("0x2002"));
    let (pk, by, _) = flow(&topo.pods[1].host_if, "tx", ip0, ip1, "40001", "5000");
    assert_eq!((pk, by), (Some(f64::from(n)), Some(f64::from(n) * frame)));
    let frame2 = (14 + 20 + 8 + 2 * payload) as f64;
    let (pk, by, _) = flow(&topo.pods[2].host_if, "rx", ip2, ip0, "40002", "6000");
    assert_eq!(
        (pk, by),
        (Some(f64::from(2 * n)), Some(f64::from(2 * n) * frame2))
    );
    assert!(
        one(&s, "ebpf_flows_started_total", &[("port", p0.as_str())]).is_some_and(|v| v >= 1.0)
    );
    Ok(())
}

#[test]
fn ipv6_and_vlan_flows() -> Result<()> {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !testbed::require_root_env() {
        return Ok(());
    }
    let ovs = Ovs::start_in_host_netns()?;
    let br = format!("br{}", testbed::topology::unique_tag());
    ovs.add_bridge(&br)?;
    ovs.add_flow(&br, "priority=0,actions=NORMAL")?;
    let tag = testbed::topology::unique_tag();
    let a = Pod::create(
        &format!("dpc-{tag}-a"),
        None,
        &format!("v{tag}a"),
        "10.245.0.1",
        "02:00:00:00:01:01",
    )?;
    let b = Pod::create(
        &format!("dpc-{tag}-b"),
        None,
        &format!("v{tag}b"),
        "10.245.0.2",
        "02:00:00:00:01:02",
    )?;
    for p in [&a, &b] {
        ovs.vsctl(&["add-port", &br, &p.host_if])?;
    }
    a.enable_ipv6("fd00::1")?;
    b.enable_ipv6("fd00::2")?;
    let d = Daemon::start(&args(ovs.rundir(), &[]))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while find(&scrape(&d)?, "ebpf_attached_ports", &[])
        .iter()
        .map(|x| x.value)
        .sum::<f64>()
        < 3.0
    {
        if Instant::now() > deadline {
            bail!("not attached");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let v6 = "import socket\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\ns.bind(('',41000))\n\
              for _ in range(7): s.sendto(b'y'*50,('fd00::2',7000))\n";
    // Neighbour discovery may need a moment with DAD off; retry until a flow shows.
    a.exec("python3", &["-c", v6])?;
    // VLAN 100: frames written raw on the pod's interface (the host kernel here has no 8021q
    // module); the veth moves the tag into the skb, where TC reads it.
    let tagged_frame = format!(
        "import socket,struct\n\
         def csum(b):\n s=sum(struct.unpack('!10H',b))\n s=(s>>16)+(s&0xffff)\n s+=s>>16\n return (~s)&0xffff\n\
         payload=b'z'*20\n\
         udp=struct.pack('!HHHH',42000,8000,8+len(payload),0)+payload\n\
         ip=struct.pack('!BBHHHBBH4s4s',0x45,0,20+len(udp),0,0x4000,64,17,0,socket.inet_aton('10.246.0.1'),socket.inet_aton('10.246.0.2'))\n\
         ip=ip[:10]+struct.pack('!H',csum(ip))+ip[12:]\n\
         eth=bytes.fromhex('{}')+bytes.fromhex('{}')+struct.pack('!HHH',0x8100,100,0x0800)\n\
         s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind(('eth0',0))\n\
         for _ in range(9): s.send(eth+ip+udp)\n",
        b.mac.replace(':', ""),
        a.mac.replace(':', "")
    );
    a.exec("python3", &["-c", &tagged_frame])?;
    std::thread::sleep(Duration::from_millis(500));
    let s = scrape(&d)?;
    let v6flow = find(
        &s,
        "ebpf_flow_packets_total",
        &[
            ("port", &a.host_if),
            ("direction", "rx"),
            ("src", "fd00::1"),
            ("dst", "fd00::2"),
            ("protocol", "udp"),
            ("dst_port", "7000"),
        ],
    );
    assert_eq!(v6flow.len(), 1, "no IPv6 flow");
    assert_eq!(v6flow[0].value, 7.0);
    let bytes = one(
        &s,
        "ebpf_flow_bytes_total",
        &[
            ("port", &a.host_if),
            ("direction", "rx"),
            ("src", "fd00::1"),
            ("dst_port", "7000"),
        ],
    );
    assert_eq!(bytes, Some(7.0 * (14.0 + 40.0 + 8.0 + 50.0)));
    let tagged = find(
        &s,
        "ebpf_flow_packets_total",
        &[
            ("port", &a.host_if),
            ("direction", "rx"),
            ("src", "10.246.0.1"),
            ("dst_port", "8000"),
        ],
    );
    assert_eq!(tagged.len(), 1, "no VLAN flow");
    assert_eq!((tagged[0].value, tagged[0].label("vlan")), (9.0, "100"));
    Ok(())
}

/// The last `cookie 0x…` in `ovs-appctl ofproto/trace` output.
fn trace_cookie(ovs: &Ovs, bridge: &str, flow: &str) -> Result<String> {
    let out = ovs.appctl(&["ofproto/trace", bridge, flow])?;
    out.lines()
        .rev()
        .filter_map(|l| l.split("cookie ").nth(1))
        .map(|c| c.split_whitespace().next().unwrap_or("").to_owned())
        .next()
        .with_context(|| format!("no cookie in trace:\n{out}"))
}

#[test]
fn cookie_equals_ofproto_trace_through_goto_table_and_resubmit() -> Result<()> {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !testbed::require_root_env() {
        return Ok(());
    }
    let topo = Topology::build(Ovs::start_in_host_netns()?, 3)?;
    let b = &topo.bridge;
    let (p0, p1, p2) = (topo.ofports[0], topo.ofports[1], topo.ofports[2]);
    let (ip1, ip2) = (&topo.pods[1].ip, &topo.pods[2].ip);
    topo.ovs.ofctl(&[], "del-flows", b, &[])?;
    for f in [
        "table=0,priority=100,cookie=0xa1,arp,actions=NORMAL".to_owned(),
        format!("table=0,priority=90,cookie=0xa0,ip,in_port={p0},actions=goto_table:1"),
        "table=0,priority=0,cookie=0xa9,actions=drop".to_owned(),
        format!("table=1,priority=200,cookie=0xb1,ip,nw_dst={ip1},actions=resubmit(,2)"),
        "table=1,priority=100,cookie=0xb0,ip,actions=resubmit(,3)".to_owned(),
        format!("table=2,priority=300,cookie=0xc1,udp,tp_dst=5000,actions=output:{p1}"),
        format!("table=2,priority=200,cookie=0xc2,tcp,actions=output:{p1}"),
        "table=2,priority=100,cookie=0xc0,ip,actions=goto_table:4".to_owned(),
        format!("table=3,priority=100,cookie=0xd1,ip,nw_dst={ip2},actions=output:{p2}"),
        "table=3,priority=0,cookie=0xd0,actions=drop".to_owned(),
        format!("table=4,priority=10,cookie=0xe0,actions=output:{p1}"),
    ] {
        topo.ovs.add_flow(b, &f)?;
    }
    let Some(d) = daemon_attached(&topo, &[], 4)? else {
        return Ok(());
    };
    let pod0 = &topo.pods[0];
    pod0.neigh("10.244.0.77", testbed::topology::VIP_MAC)?;
    let flows = [
        (ip1.as_str(), "udp", 40100u16, 5000u16),
        (ip1.as_str(), "udp", 40101, 6000),
        (ip2.as_str(), "udp", 40102, 5000),
        ("10.244.0.77", "udp", 40103, 5000),
    ];
    for (dst, _, sport, dport) in flows {
        udp(pod0, dst, sport, dport, 3, 10)?;
    }
    pod0.exec(
        "python3",
        &[
            "-c",
            &format!(
                "import socket\ns=socket.socket()\ns.settimeout(0.5)\ns.bind(('',40104))\n\
         try: s.connect(('{ip1}',80))\nexcept Exception: pass\n"
            ),
        ],
    )?;
    std::thread::sleep(Duration::from_millis(300));
    let s = scrape(&d)?;
    let mut checked = 0;
    let mut all = flows.to_vec();
    all.push((ip1.as_str(), "tcp", 40104, 80));
    for (dst, proto, sport, dport) in all {
        let ours = find(
            &s,
            "ebpf_flow_packets_total",
            &[
                ("port", &pod0.host_if),
                ("direction", "rx"),
                ("protocol", proto),
                ("dst", dst),
                ("src_port", &sport.to_string()),
                ("dst_port", &dport.to_string()),
            ],
        );
        assert_eq!(ours.len(), 1, "flow to {dst}:{dport} missing");
        let trace = trace_cookie(
            &topo.ovs,
            b,
            &format!(
                "in_port={p0},{proto},dl_src={},dl_dst={},nw_src={},nw_dst={dst},{proto}_src={sport},{proto}_dst={dport}",
                pod0.mac, topo.pods[1].mac, pod0.ip
            ),
        )?;
        assert_eq!(
            ours[0].label("cookie"),
            trace,
            "flow to {dst}:{dport}/{proto}"
        );
        checked += 1;
    }
    assert_eq!(checked, 5);
    Ok(())
}

/// Our programs and maps in the kernel right now.
fn ours_in_kernel() -> Result<(usize, usize, usize)> {
    let names = |v: &serde_json::Value, wanted: &[&str]| {
        v.as_array().map_or(0, |a| {
            a.iter()
                .filter(|e| e["name"].as_str().is_some_and(|n| wanted.contains(&n)))
                .count()
        })
    };
    let progs = names(
        &testbed::bpftool(&["prog", "show"])?,
        &[
            "flow_ingress",
            "flow_egress",
            "port_ingress",
            "port_egress",
            "kfree_skb_btf",
            "kfree_skb_raw",
        ],
    );
    let maps = names(
        &testbed::bpftool(&["map", "show"])?,
        &[
            "PORTS",
            "FLOWS",
            "VPORTS",
            "EVENTS",
            "IPVS_CONNS",
            "OFFSETS",
            "CONFIG",
            "DROPS",
            "DROP_CONFIG",
        ],
    );
    let links = testbed::bpftool(&["link", "show"])?
        .as_array()
        // Older bpftool prints the type's number (BPF_LINK_TYPE_TCX is 11).
        .map_or(0, |a| {
            a.iter()
                .filter(|l| l["type"] == "tcx" || l["type"] == 11)
                .count()
        });
    Ok((progs, maps, links))
}

#[test]
fn pods_churn_without_leaks_or_stale_series() -> Result<()> {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !testbed::require_root_env() {
        return Ok(());
    }
    let topo = Topology::build(Ovs::start_in_host_netns()?, 3)?;
    let before = ours_in_kernel()?;
    let d = match daemon_attached(&topo, &[], 4)? {
        Some(d) => d,
        None => return Ok(()),
    };
    // Traffic keeps flowing between the long-lived pods while 50 pods come and go.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (p0, ip1) = (topo.pods[0].netns.clone(), topo.pods[1].ip.clone());
    let traffic = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = Command::new("ip")
                    .args([
                        "netns", "exec", &p0, "ping", "-q", "-c", "5", "-i", "0.02", &ip1,
                    ])
                    .output();
            }
        })
    };
    let tag = testbed::topology::unique_tag();
    let mut churned = Vec::new();
    for i in 0..50 {
        let name = format!("c{tag}{i}");
        let pod = Pod::create(
            &format!("dpc-{tag}-c{i}"),
            None,
            &name,
            &format!("10.247.0.{}", i + 2),
            &format!("02:00:00:00:02:{:02x}", i + 2),
        )?;
        topo.ovs.vsctl(&["add-port", &topo.bridge, &name])?;
        let _ = pod.ping(&topo.pods[0].ip, 1);
        churned.push(pod);
    }
    // All attached at some point...
    let deadline = Instant::now() + Duration::from_secs(30);
    while find(&scrape(&d)?, "ebpf_attached_ports", &[])
        .iter()
        .map(|x| x.value)
        .sum::<f64>()
        < 54.0
    {
        if Instant::now() > deadline {
            bail!("not all churned ports attached");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // ...then gone: ports deleted from OVS and their veths destroyed.
    for pod in churned.drain(..) {
        topo.ovs.vsctl(&["del-port", &topo.bridge, &pod.host_if])?;
        drop(pod);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = scrape(&d)?;
        let attached: f64 = find(&s, "ebpf_attached_ports", &[])
            .iter()
            .map(|x| x.value)
            .sum();
        let stale = s
            .iter()
            .filter(|x| x.label("port").starts_with(&format!("c{tag}")))
            .count();
        if attached == 4.0 && stale == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("{attached} ports attached, {stale} series of gone ports");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // No map entries left for the gone ports: two directions per remaining port at most.
    let ports = testbed::bpftool(&["map", "dump", "name", "PORTS"])?;
    let entries = ports.as_array().map_or(0, Vec::len);
    assert!(entries <= 8, "{entries} entries in PORTS for 4 ports");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = traffic.join();
    let during = ours_in_kernel()?;
    assert!(
        during.0 >= 2 && during.1 >= 5,
        "programs and maps while running: {during:?}"
    );
    drop(d); // SIGTERM-equivalent: the daemon shuts down and detaches
    // The kernel frees a program's maps after an RCU grace period: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = ours_in_kernel()?;
    while after != before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        after = ours_in_kernel()?;
    }
    if after != before {
        let fds: Vec<String> = std::fs::read_dir("/proc/self/fd")?
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .map(|p| p.display().to_string())
            .filter(|p| p.contains("bpf"))
            .collect();
        eprintln!("bpf fds still open in this process: {fds:?}");
    }
    assert_eq!(
        after, before,
        "programs, maps or links left behind (before {before:?}, after {after:?})"
    );
    Ok(())
}

/// `dataplane_collector_ebpf_map_full_total{map}`.
fn map_full(s: &[Sample], map: &str) -> f64 {
    one(
        s,
        "dataplane_collector_ebpf_map_full_total",
        &[("map", map)],
    )
    .unwrap_or(-1.0)
}

#[test]
fn a_full_ports_map_is_counted_not_silent() -> Result<()> {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !testbed::require_root_env() {
        return Ok(());
    }
    let topo = Topology::build(Ovs::start_in_host_netns()?, 3)?;
    // Room for 2 ports (4 PORTS entries) and 4 ports attached: the bridge's and 3 pods'.
    let Some(d) = daemon_attached(&topo, &["--ebpf.max-ports=2"], 4)? else {
        return Ok(());
    };
    let s = scrape(&d)?;
    // The daemon reserves both directions of each port when it attaches: 2 ports do not fit.
    let at_attach = map_full(&s, "PORTS");
    assert!(
        at_attach >= 4.0,
        "map_full{{PORTS}} {at_attach} after attach"
    );
    assert!(
        one(
            &s,
            "dataplane_collector_limit_exceeded_total",
            &[("limit", "ebpf_max_ports")]
        )
        .is_some_and(|v| v >= 2.0),
        "limit ebpf_max_ports not counted"
    );
    assert_eq!(map_full(&s, "FLOWS"), 0.0);
    // The flag reached the kernel: PORTS has 4 entries, and holds 4.
    let sized = testbed::bpftool(&["map", "show"])?
        .as_array()
        .is_some_and(|a| {
            a.iter()
                .any(|m| m["name"] == "PORTS" && m["max_entries"] == 4)
        });
    assert!(sized, "no PORTS map of 4 entries");

    // Every pod's veth carries n packets each way; at least one pod's port is not in the map,
    // and the programs fail to insert it on every one of its packets.
    let n = 20;
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        udp(&topo.pods[a], &topo.pods[b].ip, 40300, 5000, n, 10)?;
        udp(&topo.pods[b], &topo.pods[a].ip, 40301, 5001, n, 10)?;
    }
    std::thread::sleep(Duration::from_millis(300));
    let s = scrape(&d)?;
    let after = map_full(&s, "PORTS");
    assert!(
        after >= at_attach + f64::from(2 * n),
        "kernel-side failed inserts not counted: {at_attach} → {after}"
    );
    // Nothing broke: the scrape succeeds, and the per-flow counts are whole.
    assert_eq!(
        one(
            &s,
            "dataplane_collector_scrape_success",
            &[("collector", "ebpf")]
        ),
        Some(1.0)
    );
    let flow = one(
        &s,
        "ebpf_flow_packets_total",
        &[
            ("port", topo.pods[0].host_if.as_str()),
            ("direction", "rx"),
            ("src_port", "40300"),
            ("dst", topo.pods[1].ip.as_str()),
        ],
    );
    assert_eq!(flow, Some(f64::from(n)));
    Ok(())
}

/// A bpffs of the test's own, unmounted (and everything pinned in it released) on drop.
struct Bpffs(std::path::PathBuf);

impl Bpffs {
    fn mount() -> Result<Bpffs> {
        let dir =
            std::env::temp_dir().join(format!("dpc-bpffs-{}", testbed::topology::unique_tag()));
        std::fs::create_dir_all(&dir)?;
        let st = Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&dir)
            .status()?;
        if !st.success() {
            bail!("mount -t bpf {}", dir.display());
        }
        Ok(Bpffs(dir))
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The id of the link pinned at `path`, if there is one.
fn pinned_link_id(path: &std::path::Path) -> Option<u64> {
    testbed::bpftool(&["link", "show", "pinned", &path.to_string_lossy()])
        .ok()
        .and_then(|v| v["id"].as_u64())
}

#[test]
fn pin_dir_is_checked_and_swept_at_start() -> Result<()> {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !testbed::require_root_env() {
        return Ok(());
    }
    let fs = Bpffs::mount()?;
    let topo = Topology::build(Ovs::start_in_host_netns()?, 2)?;
    // The root of a bpffs is refused: other programs pin there.
    let root = format!("--ebpf.pin-path={}", fs.0.display());
    let d = Daemon::start(&args(topo.ovs.rundir(), &[&root]))?;
    let s = scrape(&d)?;
    assert_eq!(
        one(
            &s,
            "dataplane_collector_source_available",
            &[("collector", "ebpf")]
        ),
        Some(0.0),
        "a bpffs root accepted as pin path"
    );
    drop(d);
    // (A new bpffs may hold the kernel's own maps.debug and progs.debug.)
    assert!(!fs.0.join("PORTS").exists(), "maps pinned at the root");

    let dir = fs.0.join("dataplane-collector");
    let pin = format!("--ebpf.pin-path={}", dir.display());
    // A pod that goes away while the daemon is down.
    let tag = testbed::topology::unique_tag();
    let gone = Pod::create(
        &format!("dpc-{tag}-g"),
        None,
        &format!("g{tag}"),
        "10.244.0.50",
        "02:00:00:00:03:01",
    )?;
    topo.ovs.vsctl(&["add-port", &topo.bridge, &gone.host_if])?;
    let Some(d) = daemon_attached(&topo, &[&pin], 4)? else {
        return Ok(());
    };
    // Pinned links need TCX (clsact filters cannot be pinned): no silent fallback.
    let tcx = one(&scrape(&d)?, "ebpf_attached_ports", &[("mode", "tcx")]);
    assert!(tcx.is_some_and(|n| n >= 4.0), "TCX ports: {tcx:?}");
    let links = dir.join("links");
    let gone_pin = links.join(format!("ingress_{}", gone.host_if));
    let kept_pin = links.join(format!("ingress_{}", topo.pods[0].host_if));
    let gone_id = pinned_link_id(&gone_pin).context("the gone pod's link pinned")?;
    let kept_id = pinned_link_id(&kept_pin).context("pod 0's link pinned")?;
    // A stale pin of a veth that does not exist (another name for pod 0's live link).
    let fake = links.join("egress_vnonexistent0");
    testbed::bpftool(&[
        "link",
        "pin",
        "id",
        &kept_id.to_string(),
        &fake.to_string_lossy(),
    ])?;
    assert_eq!(pinned_link_id(&fake), Some(kept_id));
    // Counts to carry over the restart.
    udp(&topo.pods[0], &topo.pods[1].ip, 40400, 5000, 30, 10)?;
    std::thread::sleep(Duration::from_millis(300));
    let p0 = [("port", topo.pods[0].host_if.as_str())];
    let before = one(&scrape(&d)?, "ebpf_port_rx_packets_total", &p0).context("pod 0 rx")?;
    assert!(before >= 30.0);
    drop(d);
    assert!(
        gone_pin.exists() && kept_pin.exists(),
        "pins left by the daemon"
    );
    topo.ovs.vsctl(&["del-port", &topo.bridge, &gone.host_if])?;
    drop(gone);
    // The kernel keeps the gone veth's link, defunct, for as long as it is pinned.
    assert_eq!(pinned_link_id(&gone_pin), Some(gone_id));

    let Some(d) = daemon_attached(&topo, &[&pin], 3)? else {
        return Ok(());
    };
    assert!(!gone_pin.exists(), "the gone veth's link pin was not swept");
    assert!(!links.join(format!("egress_g{tag}")).exists());
    assert!(
        !fake.exists(),
        "the pin of a nonexistent veth was not swept"
    );
    assert!(
        testbed::bpftool(&["link", "show", "id", &gone_id.to_string()]).is_err(),
        "the gone veth's link is still in the kernel"
    );
    // The surviving port kept its pinned link, and its counts.
    assert_eq!(pinned_link_id(&kept_pin), Some(kept_id));
    let after = one(&scrape(&d)?, "ebpf_port_rx_packets_total", &p0).context("pod 0 rx")?;
    assert!(
        after >= before,
        "pod 0's counts did not survive: {before} → {after}"
    );
    let entries = |map: &str| -> Result<u64> {
        testbed::bpftool(&["map", "show", "pinned", &dir.join(map).to_string_lossy()])?["max_entries"]
            .as_u64()
            .context("max_entries")
    };
    assert_eq!(entries("PORTS")?, 8192);
    let ipvs_type = testbed::bpftool(&[
        "map",
        "show",
        "pinned",
        &dir.join("IPVS_CONNS").to_string_lossy(),
    ])?;
    assert_eq!(ipvs_type["type"], "lru_percpu_hash");
    drop(d);

    // A changed size: the pinned map is recreated at the new size, not reused.
    let Some(d) = daemon_attached(
        &topo,
        &[&pin, "--ebpf.max-ports=16", "--ebpf.max-flows=2048"],
        3,
    )?
    else {
        return Ok(());
    };
    assert_eq!(entries("PORTS")?, 32);
    assert_eq!(entries("VPORTS")?, 16);
    assert_eq!(entries("FLOWS")?, 2048);
    assert_eq!(entries("IPVS_CONNS")?, 65536);
    // Counting goes on, into the new map.
    udp(&topo.pods[0], &topo.pods[1].ip, 40401, 5000, 5, 10)?;
    std::thread::sleep(Duration::from_millis(300));
    let now = one(&scrape(&d)?, "ebpf_port_rx_packets_total", &p0).context("pod 0 rx")?;
    assert!(
        (5.0..before).contains(&now),
        "pod 0 rx {now} (before the resize {before})"
    );
    drop(d);
    drop(topo);
    Ok(())
}
