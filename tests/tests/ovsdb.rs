//! Root-only: the OVSDB source against a real ovsdb-server and ovs-vswitchd: pod attribution the
//! way OVN-Kubernetes, Antrea and Kube-OVN tag interfaces, ports that come and go while the
//! daemon runs, counters equal to `ovs-vsctl`, ovsdb-server restarting under the daemon, 10,000
//! interfaces, and a hung (SIGSTOPped) ovsdb-server noticed by the echo probe.

use anyhow::{Context, Result, bail};
use std::time::{Duration, Instant};
use testbed::daemon::Daemon;
use testbed::netns::Pod;
use testbed::ovs::Ovs;
use testbed::prom::{self, Sample};
use testbed::topology::Topology;

fn args(rundir: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        "--ovs.rundir".to_owned(),
        rundir.to_string_lossy().into_owned(),
    ];
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

fn find<'a>(samples: &'a [Sample], name: &str, want: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.name == name && want.iter().all(|(k, v)| s.label(k) == *v))
        .collect()
}

fn scrape(d: &Daemon) -> Result<Vec<Sample>> {
    let (status, body) = d.get("/metrics")?;
    if status != 200 {
        bail!("HTTP {status}: {body}");
    }
    prom::parse(&body)
}

/// Tags the three pods' interfaces as the three CNIs do (Antrea on the Port row).
fn tag_like_cnis(topo: &Topology) -> Result<()> {
    let (p0, p1, p2) = (&topo.pods[0], &topo.pods[1], &topo.pods[2]);
    topo.ovs.vsctl(&[
        "set",
        "Interface",
        &p0.host_if,
        "external_ids:iface-id=shop_web-0",
        "external_ids:iface-id-ver=0d4a8d3e-1b2c-4d5e-8f90-123456789abc",
        "external_ids:sandbox=5f1e2d3c4b5a",
        &format!("external_ids:attached_mac={}", p0.mac),
    ])?;
    topo.ovs.vsctl(&[
        "set",
        "Port",
        &p1.host_if,
        "external_ids:pod-name=api-7d9f8",
        "external_ids:pod-namespace=payments",
        "external_ids:container-id=9a8b7c6d",
        "external_ids:antrea-type=container",
    ])?;
    topo.ovs.vsctl(&[
        "set",
        "Interface",
        &p2.host_if,
        "external_ids:iface-id=db-0.storage",
        "external_ids:pod_name=db-0",
        "external_ids:pod_namespace=storage",
        "external_ids:vendor=kube-ovn",
    ])?;
    Ok(())
}

#[test]
fn pods_are_attributed_and_ports_come_and_go() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let topo = Topology::build(Ovs::start()?, 3)?;
    tag_like_cnis(&topo)?;
    topo.traffic(1)?;
    let b = topo.bridge.as_str();
    let d = Daemon::start(&args(
        topo.ovs.rundir(),
        &["--ovs.external-id-label", "antrea-type=antrea_type"],
    ))?;
    let s = scrape(&d)?;
    assert_eq!(
        find(&s, "ovs_ovsdb_up", &[]).first().map(|x| x.value),
        Some(1.0)
    );

    let expect = [
        (&topo.pods[0], "shop", "web-0", "ovn-kubernetes"),
        (&topo.pods[1], "payments", "api-7d9f8", "antrea"),
        (&topo.pods[2], "storage", "db-0", "kube-ovn"),
    ];
    for (pod, ns, name, cni) in expect {
        let info = find(&s, "ovs_interface_info", &[("interface", &pod.host_if)]);
        assert_eq!(info.len(), 1, "{}", pod.host_if);
        let i = info[0];
        assert_eq!(
            (i.label("namespace"), i.label("pod"), i.label("cni")),
            (ns, name, cni)
        );
        assert_eq!(i.label("bridge"), b);
        assert_eq!(i.label("mac").len(), 17, "mac_in_use of the host side");
        assert!(!i.label("ofport").is_empty());
        // The same labels directly on the OpenFlow port series and the interface counters.
        for metric in [
            "ovs_port_rx_packets_total",
            "ovs_interface_rx_packets_total",
        ] {
            let series = find(&s, metric, &[("port", &pod.host_if)]);
            assert_eq!(series.len(), 1, "{metric} {}", pod.host_if);
            assert_eq!(
                (series[0].label("namespace"), series[0].label("pod")),
                (ns, name),
                "{metric}"
            );
        }
    }
    let ovn = find(&s, "ovs_interface_info", &[("pod", "web-0")]);
    assert_eq!(
        ovn[0].label("pod_uid"),
        "0d4a8d3e-1b2c-4d5e-8f90-123456789abc"
    );
    assert_eq!(ovn[0].label("container_id"), "5f1e2d3c4b5a");
    let antrea = find(&s, "ovs_interface_info", &[("pod", "api-7d9f8")]);
    assert_eq!(antrea[0].label("antrea_type"), "container");
    assert_eq!(antrea[0].label("container_id"), "9a8b7c6d");
    // The bridge's own port has no pod.
    let local = find(&s, "ovs_interface_info", &[("interface", b)]);
    assert_eq!(
        (local[0].label("pod"), local[0].label("type")),
        ("", "internal")
    );

    // `sum by (namespace, pod)` works without a join: each pod has exactly its port's traffic.
    let rx: f64 = find(
        &s,
        "ovs_port_rx_bytes_total",
        &[("namespace", "shop"), ("pod", "web-0")],
    )
    .iter()
    .map(|x| x.value)
    .sum();
    assert!(rx > 0.0);

    // A port added while the daemon runs is in the very next scrape, and gone after removal.
    let tag = testbed::topology::unique_tag();
    let host_if = format!("v{tag}x");
    let extra = Pod::create(
        &format!("dpc-{tag}-extra"),
        topo.ovs.switch_netns(),
        &host_if,
        "10.244.0.99",
        "02:00:00:00:00:99",
    )?;
    topo.ovs.vsctl(&[
        "add-port",
        b,
        &host_if,
        "--",
        "set",
        "Interface",
        &host_if,
        "external_ids:iface-id=late_newcomer-1",
        "external_ids:iface-id-ver=1111",
    ])?;
    let s = scrape(&d)?;
    let info = find(&s, "ovs_interface_info", &[("interface", &host_if)]);
    assert_eq!(
        info.len(),
        1,
        "new port missing from the first scrape after it was added"
    );
    assert_eq!(info[0].label("pod"), "newcomer-1");
    assert_eq!(
        find(&s, "ovs_port_rx_packets_total", &[("port", &host_if)]).len(),
        1
    );
    assert_eq!(
        find(&s, "ovs_port_rx_packets_total", &[("port", &host_if)])[0].label("namespace"),
        "late"
    );

    topo.ovs.vsctl(&["del-port", b, &host_if])?;
    let s = scrape(&d)?;
    assert!(
        s.iter()
            .all(|x| x.label("interface") != host_if && x.label("port") != host_if),
        "series of a removed port are still served"
    );
    drop(extra);
    Ok(())
}

/// Per interface (sorted by name): its statistics, sorted by key.
type Statistics = Vec<(String, Vec<(String, i64)>)>;

/// `ovs-vsctl --format=json list interface` as name → statistics.
fn vsctl_statistics(ovs: &Ovs) -> Result<Statistics> {
    let out = ovs.vsctl(&[
        "--format=json",
        "--columns=name,statistics",
        "list",
        "interface",
    ])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let mut rows = Vec::new();
    for row in v["data"].as_array().context("data")? {
        let name = row[0].as_str().context("name")?.to_owned();
        let mut stats = Vec::new();
        for pair in row[1][1].as_array().context("statistics map")? {
            stats.push((
                pair[0].as_str().context("key")?.to_owned(),
                pair[1].as_i64().context("value")?,
            ));
        }
        stats.sort();
        rows.push((name, stats));
    }
    rows.sort();
    Ok(rows)
}

#[test]
fn interface_counters_equal_ovs_vsctl() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let topo = Topology::build(Ovs::start()?, 3)?;
    topo.traffic(3)?;
    // OVS writes statistics to the database every 5 s: wait until a full period passes
    // without change, so both readers see the same moment.
    let start = Instant::now();
    let mut last = vsctl_statistics(&topo.ovs)?;
    loop {
        std::thread::sleep(Duration::from_secs(6));
        let now = vsctl_statistics(&topo.ovs)?;
        if now == last
            && now
                .iter()
                .any(|(_, s)| s.iter().any(|(k, v)| k == "rx_packets" && *v > 0))
        {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("interface statistics did not settle");
        }
        last = now;
    }
    let d = Daemon::start(&args(topo.ovs.rundir(), &[]))?;
    let s = scrape(&d)?;
    let theirs = vsctl_statistics(&topo.ovs)?;
    assert_eq!(theirs, last, "statistics moved during the comparison");
    let mut compared = 0;
    for (iface, stats) in &theirs {
        for (key, value) in stats {
            let (name, extra) = dataplane_collector::sources::ovsdb::encode::series_for(key);
            let ours: Vec<&Sample> = s
                .iter()
                .filter(|x| x.name == name && x.label("interface") == iface)
                .filter(|x| extra.as_ref().is_none_or(|(k, v)| x.label(k) == v))
                .collect();
            assert_eq!(ours.len(), 1, "{iface} {key}: {ours:?}");
            assert_eq!(ours[0].value, *value as f64, "{iface} {key}");
            compared += 1;
        }
    }
    assert!(compared >= 4 * 8, "only {compared} counters compared");
    Ok(())
}

#[test]
fn ovsdb_server_restart_reports_down_then_recovers() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let mut topo = Topology::build(Ovs::start()?, 3)?;
    let b = topo.bridge.clone();
    let d = Daemon::start(&args(topo.ovs.rundir(), &["--scrape.timeout", "3s"]))?;
    let s = scrape(&d)?;
    assert_eq!(
        find(&s, "ovs_ovsdb_up", &[]).first().map(|x| x.value),
        Some(1.0)
    );
    assert!(!find(&s, "ovs_interface_info", &[]).is_empty());

    topo.ovs.kill_ovsdb()?;
    let s = scrape(&d)?;
    assert_eq!(
        find(&s, "ovs_ovsdb_up", &[]).first().map(|x| x.value),
        Some(0.0)
    );
    assert_eq!(
        find(
            &s,
            "dataplane_collector_scrape_success",
            &[("collector", "ovsdb")]
        )
        .first()
        .map(|x| x.value),
        Some(0.0)
    );
    assert!(
        find(&s, "ovs_interface_info", &[]).is_empty(),
        "stale rows served while down"
    );
    // (ovs-vswitchd itself stops answering OpenFlow while its database is gone; the OpenFlow
    // source reports that bridge down rather than hanging the scrape.)
    assert!(find(&s, "ovs_openflow_up", &[("bridge", &b)]).len() == 1);

    topo.ovs.start_ovsdb()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = scrape(&d)?;
        let up = find(&s, "ovs_ovsdb_up", &[]).first().map(|x| x.value);
        if up == Some(1.0) && !find(&s, "ovs_interface_info", &[("bridge", &b)]).is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!("did not recover after ovsdb-server restarted");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    find(samples, name, want).first().map(|x| x.value)
}

/// Only the ovsdb collector: the database alone, no ovs-vswitchd behind the bulk bridges.
fn ovsdb_only_args(rundir: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut v = vec!["--collector.disable-defaults", "--collector.ovsdb"];
    v.extend_from_slice(extra);
    args(rundir, &v)
}

#[test]
fn ten_thousand_interfaces_sync_and_scrape() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    const N: usize = 10_000;
    let mut ovs = Ovs::start()?;
    ovs.kill_vswitchd()?;
    let t = Instant::now();
    ovs.add_interfaces_bulk("br-bulk", N)?;
    eprintln!(
        "{N} interfaces created in one transaction in {:?}",
        t.elapsed()
    );

    let t = Instant::now();
    let d = Daemon::start(&ovsdb_only_args(ovs.rundir(), &["--scrape.timeout", "30s"]))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let s = loop {
        let s = scrape(&d)?;
        if find(&s, "ovs_interface_info", &[]).len() >= N {
            break s;
        }
        if Instant::now() > deadline {
            bail!(
                "only {} interfaces served after 120 s",
                find(&s, "ovs_interface_info", &[]).len()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!(
        "daemon start to the first scrape with all {N} interfaces: {:?}; the daemon's own sync: {:?} s",
        t.elapsed(),
        value(&s, "dataplane_collector_ovsdb_sync_duration_seconds", &[])
    );
    assert_eq!(value(&s, "ovs_ovsdb_up", &[]), Some(1.0));
    assert_eq!(
        value(&s, "dataplane_collector_ovsdb_connected", &[]),
        Some(1.0)
    );
    assert_eq!(find(&s, "ovs_interface_info", &[]).len(), N);
    assert_eq!(
        find(&s, "ovs_interface_rx_bytes_total", &[("bridge", "br-bulk")]).len(),
        N
    );
    // Row 1234's rx_bytes is 1234 * 13 + 2 (see add_interfaces_bulk).
    assert_eq!(
        value(
            &s,
            "ovs_interface_rx_bytes_total",
            &[("interface", "p1234")]
        ),
        Some(16_044.0)
    );
    let web = find(&s, "ovs_interface_info", &[("interface", "p77")]);
    assert_eq!(
        (web[0].label("namespace"), web[0].label("pod")),
        ("ns27", "pod-77")
    );

    let t = Instant::now();
    let runs = 5;
    for _ in 0..runs {
        let s = scrape(&d)?;
        assert_eq!(find(&s, "ovs_interface_info", &[]).len(), N);
    }
    eprintln!(
        "scrape with {N} interfaces (debug-build test client parsing included): {:?} each",
        t.elapsed() / runs
    );
    // A change to one row among 10k is in the next scrape.
    ovs.vsctl(&[
        "--no-wait",
        "set",
        "Interface",
        "p9999",
        "statistics:rx_bytes=424242",
    ])?;
    let s = scrape(&d)?;
    assert_eq!(
        value(
            &s,
            "ovs_interface_rx_bytes_total",
            &[("interface", "p9999")]
        ),
        Some(424_242.0)
    );
    Ok(())
}

/// Sends `sig` to `pid` (`kill -SIG PID`).
fn signal(pid: u32, sig: &str) -> Result<()> {
    let st = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()?;
    if !st.success() {
        bail!("kill -{sig} {pid} failed");
    }
    Ok(())
}

/// Continues a stopped ovsdb-server whatever happens in the test.
struct Continue(u32);
impl Drop for Continue {
    fn drop(&mut self) {
        let _ = signal(self.0, "CONT");
    }
}

#[test]
fn hung_ovsdb_server_is_detected_and_recovers() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let mut ovs = Ovs::start()?;
    ovs.kill_vswitchd()?;
    ovs.add_interfaces_bulk("br-hang", 10)?;
    let d = Daemon::start(&ovsdb_only_args(
        ovs.rundir(),
        &["--ovs.db-probe-interval", "1s", "--scrape.timeout", "2s"],
    ))?;
    let s = scrape(&d)?;
    assert_eq!(value(&s, "ovs_ovsdb_up", &[]), Some(1.0));
    assert_eq!(
        value(&s, "dataplane_collector_ovsdb_connected", &[]),
        Some(1.0)
    );
    assert_eq!(find(&s, "ovs_interface_info", &[]).len(), 10);

    let pid = ovs.ovsdb_pid().context("ovsdb-server pid")?;
    signal(pid, "STOP")?;
    let guard = Continue(pid);
    // Every scrape while it is stopped fails the source and serves no rows; the echo probe
    // notices the silence and drops the connection.
    let t = Instant::now();
    let deadline = t + Duration::from_secs(60);
    loop {
        let s = scrape(&d)?;
        assert_eq!(value(&s, "ovs_ovsdb_up", &[]), Some(0.0));
        assert_eq!(
            value(
                &s,
                "dataplane_collector_scrape_success",
                &[("collector", "ovsdb")]
            ),
            Some(0.0)
        );
        assert!(
            find(&s, "ovs_interface_info", &[]).is_empty(),
            "stale rows served from a hung ovsdb-server"
        );
        if value(&s, "dataplane_collector_ovsdb_connected", &[]) == Some(0.0) {
            break;
        }
        if Instant::now() > deadline {
            bail!("a stopped ovsdb-server was never noticed");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("stopped ovsdb-server noticed after {:?}", t.elapsed());

    drop(guard);
    let t = Instant::now();
    let deadline = t + Duration::from_secs(60);
    loop {
        let s = scrape(&d)?;
        if value(&s, "ovs_ovsdb_up", &[]) == Some(1.0)
            && value(&s, "dataplane_collector_ovsdb_connected", &[]) == Some(1.0)
            && find(&s, "ovs_interface_info", &[]).len() == 10
        {
            assert_eq!(
                value(
                    &s,
                    "dataplane_collector_scrape_success",
                    &[("collector", "ovsdb")]
                ),
                Some(1.0)
            );
            break;
        }
        if Instant::now() > deadline {
            bail!("did not recover after ovsdb-server continued");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("recovered {:?} after SIGCONT", t.elapsed());
    Ok(())
}

/// Records the OVSDB session the golden `/metrics` test replays
/// (`collector/tests/fixtures/ovsdb/session.jsonl`, written with `DPC_UPDATE_FIXTURES=1`): a
/// real ovsdb-server and ovs-vswitchd with the bridge and ports of the OpenFlow demo capture
/// (`demo.port-desc.bin`: same names, same port numbers, as internal interfaces), tagged as
/// the three CNIs tag pods, then the collector's own monitor request and an echo barrier, each
/// line `{"from": "client"|"server", "message": ...}` in the order they went.
#[test]
fn records_the_golden_ovsdb_session() -> Result<()> {
    use dataplane_collector::ovsdb::proto;
    use std::io::{Read as _, Write as _};
    if !testbed::require_root_env() {
        return Ok(());
    }
    let fixtures =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../collector/tests/fixtures");
    let mut descs = Vec::new();
    for body in load_bodies(&fixtures.join("demo.port-desc.bin"))? {
        dataplane_collector::openflow::message::decode_port_descs(&body, &mut descs)
            .map_err(|e| anyhow::anyhow!("demo.port-desc.bin: {e}"))?;
    }
    let bridge = descs
        .iter()
        .find(|d| d.port_no == 0xfffe)
        .map(|d| d.name.clone())
        .context("no LOCAL port in demo.port-desc.bin")?;
    let mut ports: Vec<(u16, String)> = descs
        .iter()
        .filter(|d| d.port_no != 0xfffe)
        .map(|d| (d.port_no, d.name.clone()))
        .collect();
    ports.sort();
    assert_eq!(ports.len(), 3, "the demo has three pods: {ports:?}");

    let ovs = Ovs::start()?;
    ovs.add_bridge(&bridge)?;
    for (no, name) in &ports {
        ovs.vsctl(&[
            "add-port",
            &bridge,
            name,
            "--",
            "set",
            "Interface",
            name,
            "type=internal",
            &format!("ofport_request={no}"),
        ])?;
    }
    let (p0, p1, p2) = (&ports[0].1, &ports[1].1, &ports[2].1);
    ovs.vsctl(&[
        "set",
        "Interface",
        p0,
        "external_ids:iface-id=shop_web-0",
        "external_ids:iface-id-ver=0d4a8d3e-1b2c-4d5e-8f90-123456789abc",
        "external_ids:sandbox=5f1e2d3c4b5a",
    ])?;
    ovs.vsctl(&[
        "set",
        "Port",
        p1,
        "external_ids:pod-name=api-7d9f8",
        "external_ids:pod-namespace=payments",
        "external_ids:container-id=9a8b7c6d",
        "external_ids:antrea-type=container",
    ])?;
    ovs.vsctl(&[
        "set",
        "Interface",
        p2,
        "external_ids:iface-id=db-0.storage",
        "external_ids:pod_name=db-0",
        "external_ids:pod_namespace=storage",
    ])?;
    // Health: BFD on one pod port (no peer: down), CFM on another (no peer: a fault), a
    // geneve tunnel to 127.0.0.1 (egress `lo`, carrier up), and datapath settings.
    ovs.vsctl(&["set", "Interface", p0, "bfd:enable=true"])?;
    ovs.vsctl(&["set", "Interface", p2, "cfm_mpid=7"])?;
    let tunnel = "gnv0".to_owned();
    ovs.vsctl(&[
        "add-port",
        &bridge,
        &tunnel,
        "--",
        "set",
        "Interface",
        &tunnel,
        "type=geneve",
        "options:remote_ip=127.0.0.1",
        "ofport_request=10",
    ])?;
    ovs.vsctl(&[
        "set",
        "Open_vSwitch",
        ".",
        "other_config:flow-limit=150000",
        "other_config:max-idle=15000",
        "other_config:n-revalidator-threads=1",
    ])?;
    // Every port has its ofport and its statistics (ovs-vswitchd writes them every 5 s), and
    // the health columns are written.
    let deadline = Instant::now() + Duration::from_secs(20);
    for (name, column, want) in [
        (p0, "bfd_status:state", "down"),
        // No peer: CFM faults (`recv`) after 3.5 intervals.
        (p2, "cfm_fault", "true"),
        (&tunnel, "status:tunnel_egress_iface_carrier", "up"),
    ] {
        loop {
            let v = ovs.vsctl(&["--if-exists", "get", "Interface", name, column]);
            if v.unwrap_or_default().trim() == want {
                break;
            }
            if Instant::now() > deadline {
                bail!("{name}: {column} never written");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    for name in ports.iter().map(|(_, n)| n).chain([&bridge, &tunnel]) {
        loop {
            let ofport = ovs.vsctl(&["get", "Interface", name, "ofport"])?;
            let stats = ovs.vsctl(&["get", "Interface", name, "statistics"])?;
            if ofport.trim() != "[]" && stats.trim() != "{}" {
                break;
            }
            if Instant::now() > deadline {
                bail!("{name}: ofport {ofport}, statistics {stats}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    let mut sock = std::os::unix::net::UnixStream::connect(ovs.db_sock())?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut framer = proto::Framer::default();
    let mut transcript: Vec<serde_json::Value> = Vec::new();
    let mut exchange = |request: serde_json::Value| -> Result<()> {
        let id = request["id"].clone();
        sock.write_all(request.to_string().as_bytes())?;
        transcript.push(serde_json::json!({"from": "client", "message": request}));
        let mut buf = vec![0u8; 1 << 16];
        loop {
            while let Some(v) = framer.next_value().map_err(|e| anyhow::anyhow!("{e}"))? {
                let done = v["id"] == id;
                transcript.push(serde_json::json!({"from": "server", "message": v}));
                if done {
                    return Ok(());
                }
            }
            let n = sock.read(&mut buf)?;
            if n == 0 {
                bail!("ovsdb-server closed the session");
            }
            framer.push(&buf[..n]);
        }
    };
    exchange(proto::monitor_request(1))?;
    exchange(proto::echo_request("barrier"))?;

    let monitor = &transcript[1]["message"];
    assert!(monitor["error"].is_null(), "{monitor}");
    let result = &monitor["result"];
    let bridges: Vec<&str> = result["Bridge"]
        .as_object()
        .context("no Bridge rows")?
        .values()
        .filter_map(|r| r["new"]["name"].as_str())
        .collect();
    assert_eq!(bridges, [bridge.as_str()]);
    assert_eq!(
        result["Interface"].as_object().map(|o| o.len()),
        Some(5),
        "three ports, the tunnel and the bridge's own"
    );
    assert!(
        result["Open_vSwitch"]
            .as_object()
            .is_some_and(|o| o.len() == 1),
        "{result}"
    );
    if std::env::var("DPC_UPDATE_FIXTURES").is_ok_and(|v| v == "1") {
        let dir = fixtures.join("ovsdb");
        std::fs::create_dir_all(&dir)?;
        let lines: Vec<String> = transcript.iter().map(|v| v.to_string()).collect();
        std::fs::write(dir.join("session.jsonl"), lines.join("\n") + "\n")?;
    }
    Ok(())
}

/// The length-prefixed bodies of an OpenFlow fixture file.
fn load_bodies(path: &std::path::Path) -> Result<Vec<Vec<u8>>> {
    let bin = std::fs::read(path).with_context(|| path.display().to_string())?;
    let mut out = Vec::new();
    let mut rest = bin.as_slice();
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let body = rest.get(4..4 + len).context("a cut fixture")?;
        out.push(body.to_vec());
        rest = &rest[4 + len..];
    }
    Ok(out)
}
