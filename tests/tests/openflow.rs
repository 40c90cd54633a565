//! Root-only: the OpenFlow source against a real Open vSwitch (userspace datapath) with real
//! traffic between network namespaces. Run with `cargo xtask test` (or as root with
//! `cargo test -p integration-tests`).

use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use testbed::daemon::Daemon;
use testbed::ofctl;
use testbed::ovs::Ovs;
use testbed::prom::{self, Sample};
use testbed::topology::Topology;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name && want.iter().all(|(k, v)| s.label(k) == *v))
        .collect();
    match found.as_slice() {
        [one] => Some(one.value),
        [] => None,
        many => panic!("{} series of {name} match {want:?}", many.len()),
    }
}

/// `promtool check metrics` on `text` (the shared helper, [`testbed::promtool`]).
pub fn promtool_check(text: &str) -> Result<()> {
    testbed::promtool::check_metrics(text).map_err(anyhow::Error::msg)
}

#[test]
fn counters_equal_ovs_ofctl_for_the_same_bridge() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let topo = Topology::build(Ovs::start()?, 3)?;
    topo.traffic(3)?;
    topo.settle()?;
    let b = topo.bridge.as_str();
    let rundir = topo.ovs.rundir().to_string_lossy().into_owned();
    let daemon = Daemon::start(&args(&[
        "--ovs.rundir",
        &rundir,
        "--ovs.max-flow-series",
        "0",
        "--ovs.flow-actions",
    ]))?;

    // A stray packet (an ARP refresh on the emulated kernel datapath) can move a flow counter
    // between the scrape and ovs-ofctl's read: use a scrape that ovs-ofctl's flow counters
    // agree with just before and just after.
    let mut attempt = 0;
    let (status, body, of_flows) = loop {
        attempt += 1;
        let before = ofctl::parse_flows(&topo.ovs.ofctl(&[], "dump-flows", b, &[])?)?;
        let (status, body) = daemon.get("/metrics")?;
        let after = ofctl::parse_flows(&topo.ovs.ofctl(&[], "dump-flows", b, &[])?)?;
        if before == after || attempt == 10 {
            break (status, body, after);
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert_eq!(status, 200);
    let of13_flows = ofctl::parse_flows(&topo.ovs.ofctl(
        &["-O", "OpenFlow13"],
        "dump-flows",
        b,
        &[],
    )?)?;
    let of_ports = ofctl::parse_ports(&topo.ovs.ofctl(&[], "dump-ports", b, &[])?)?;
    let names = ofctl::parse_port_names(&topo.ovs.ofctl(&[], "dump-ports-desc", b, &[])?);
    let of_groups = ofctl::parse_group_stats(&topo.ovs.ofctl(
        &["-O", "OpenFlow13"],
        "dump-group-stats",
        b,
        &[],
    )?)?;
    promtool_check(&body)?;
    let samples = prom::parse(&body)?;

    assert_eq!(
        value(&samples, "ovs_openflow_up", &[("bridge", b)]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "dataplane_collector_scrape_success",
            &[("collector", "openflow")]
        ),
        Some(1.0)
    );

    // Flows: the same set, the same counters, names and cookies included.
    assert!(of_flows.len() >= 8, "pipeline has {} flows", of_flows.len());
    let ours: BTreeSet<(String, String, String, String)> =
        prom::by_name(&samples, "ovs_flow_packets_total")
            .iter()
            .map(|s| {
                (
                    s.label("table").to_owned(),
                    s.label("priority").to_owned(),
                    s.label("cookie").to_owned(),
                    s.label("match").to_owned(),
                )
            })
            .collect();
    let theirs: BTreeSet<(String, String, String, String)> = of_flows
        .iter()
        .map(|f| {
            (
                f.table.to_string(),
                f.priority.to_string(),
                format!("{:#x}", f.cookie),
                f.matches.clone(),
            )
        })
        .collect();
    assert_eq!(ours, theirs, "flow identities differ");
    let mut traffic_seen = 0;
    for f in &of_flows {
        let key = [
            ("bridge", b),
            ("table", &f.table.to_string()),
            ("priority", &f.priority.to_string()),
            ("cookie", &format!("{:#x}", f.cookie)),
            ("match", f.matches.as_str()),
        ];
        assert_eq!(
            value(&samples, "ovs_flow_packets_total", &key),
            Some(f.packets as f64),
            "packets of {f:?}"
        );
        assert_eq!(
            value(&samples, "ovs_flow_bytes_total", &key),
            Some(f.bytes as f64),
            "bytes of {f:?}"
        );
        assert!(value(&samples, "ovs_flow_duration_seconds", &key).is_some());
        traffic_seen += f.packets;
    }
    assert!(traffic_seen > 100, "traffic did not reach the flows");
    // Actions, as ovs-ofctl -O OpenFlow13 writes them.
    for f in &of13_flows {
        let s = prom::by_name(&samples, "ovs_flow_packets_total")
            .into_iter()
            .find(|s| {
                s.label("table") == f.table.to_string()
                    && s.label("priority") == f.priority.to_string()
                    && s.label("match") == f.matches
            })
            .with_context(|| format!("no series for {f:?}"))?;
        assert_eq!(s.label("actions"), f.actions, "actions of {f:?}");
    }
    // Active flows per table.
    let mut per_table: BTreeMap<u8, usize> = BTreeMap::new();
    for f in &of_flows {
        *per_table.entry(f.table).or_default() += 1;
    }
    for (table, n) in per_table {
        assert_eq!(
            value(
                &samples,
                "ovs_table_active_flows",
                &[("bridge", b), ("table", &table.to_string())]
            ),
            Some(n as f64)
        );
    }

    // Ports: every counter, by name and number.
    let counters = [
        ("rx_pkts", "ovs_port_rx_packets_total"),
        ("rx_bytes", "ovs_port_rx_bytes_total"),
        ("rx_drop", "ovs_port_rx_dropped_total"),
        ("rx_errs", "ovs_port_rx_errors_total"),
        ("rx_frame", "ovs_port_rx_frame_errors_total"),
        ("rx_over", "ovs_port_rx_over_errors_total"),
        ("rx_crc", "ovs_port_rx_crc_errors_total"),
        ("tx_pkts", "ovs_port_tx_packets_total"),
        ("tx_bytes", "ovs_port_tx_bytes_total"),
        ("tx_drop", "ovs_port_tx_dropped_total"),
        ("tx_errs", "ovs_port_tx_errors_total"),
        ("tx_coll", "ovs_port_collisions_total"),
    ];
    assert_eq!(of_ports.len(), 4, "LOCAL and three pods");
    for (port, values) in &of_ports {
        let name = names
            .get(port)
            .with_context(|| format!("name of port {port}"))?;
        let ofport = if port == "LOCAL" {
            "65534".to_owned()
        } else {
            port.clone()
        };
        for (theirs, ours) in counters {
            let got = value(
                &samples,
                ours,
                &[("bridge", b), ("port", name), ("ofport", &ofport)],
            );
            let want = values.get(theirs).copied().flatten().map(|v| v as f64);
            assert_eq!(got, want, "{ours} of port {port} ({name})");
        }
    }
    for pod in &topo.pods {
        let rx = value(
            &samples,
            "ovs_port_rx_packets_total",
            &[("bridge", b), ("port", &pod.host_if)],
        );
        assert!(
            rx.is_some_and(|v| v > 0.0),
            "no traffic from {}",
            pod.host_if
        );
    }

    if std::env::var("DPC_UPDATE_FIXTURES").is_ok_and(|v| v == "1") {
        capture_fixtures(&topo)?;
    }

    // Groups.
    assert_eq!(of_groups.len(), 1);
    for g in &of_groups {
        let id = g.group_id.to_string();
        let key = [("bridge", b), ("group_id", id.as_str()), ("type", "select")];
        assert_eq!(
            value(&samples, "ovs_group_packets_total", &key),
            Some(g.packets as f64)
        );
        assert_eq!(
            value(&samples, "ovs_group_bytes_total", &key),
            Some(g.bytes as f64)
        );
        assert_eq!(
            value(&samples, "ovs_group_references", &key),
            Some(f64::from(g.ref_count))
        );
        assert_eq!(g.buckets.len(), 2);
        for (i, (p, by)) in g.buckets.iter().enumerate() {
            let bk = [
                ("bridge", b),
                ("group_id", id.as_str()),
                ("bucket", &i.to_string()),
            ];
            assert_eq!(
                value(&samples, "ovs_group_bucket_packets_total", &bk),
                Some(*p as f64)
            );
            assert_eq!(
                value(&samples, "ovs_group_bucket_bytes_total", &bk),
                Some(*by as f64)
            );
            assert!(*p > 0, "bucket {i} saw no traffic");
            assert_eq!(value(&samples, "ovs_group_bucket_weight", &bk), Some(100.0));
        }
    }
    Ok(())
}

/// Saves every multipart reply of the bridge as `collector/tests/fixtures/demo.<kind>.bin`
/// (length-prefixed bodies) for the collector's golden-file test, which replays them from a
/// fake switch.
fn capture_fixtures(topo: &Topology) -> Result<()> {
    use dataplane_collector::openflow::message::MultipartType as M;
    use dataplane_collector::openflow::{Client, Endpoint};
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../collector/tests/fixtures");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut c = Client::connect(&Endpoint::Unix(topo.ovs.mgmt(&topo.bridge)), deadline).await?;
        for (kind, name) in [
            (M::PortDesc, "port-desc"),
            (M::PortStats, "port-stats"),
            (M::Table, "table-stats"),
            (M::GroupDesc, "group-desc"),
            (M::Group, "group-stats"),
            (M::Flow, "flow-stats"),
        ] {
            let mut bin = Vec::new();
            c.multipart(kind, &mut |b| {
                bin.extend_from_slice(&(b.len() as u32).to_be_bytes());
                bin.extend_from_slice(b);
                Ok(())
            })
            .await?;
            std::fs::write(dir.join(format!("demo.{name}.bin")), &bin)?;
        }
        anyhow::Ok(())
    })
}

#[test]
fn seed_endpoints_targets_and_allowlist() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let topo = Topology::build(Ovs::start()?, 3)?;
    let b = topo.bridge.as_str();
    // The bridge also listens on TCP, as the seed's setup expects, on an address the host
    // reaches through a veth into the switch's namespace.
    let of_port = 20000 + (std::process::id() % 20000) as u16;
    let switch_ip = topo.ovs.link_to_host()?;
    topo.ovs
        .vsctl(&["set-controller", b, &format!("ptcp:{of_port}:{switch_ip}")])?;
    std::thread::sleep(std::time::Duration::from_millis(500));

    // A listener on an address that is NOT allowed: it must never see a connection.
    let trap = std::net::TcpListener::bind("127.0.0.2:0")?;
    trap.set_nonblocking(true)?;
    let trap_addr = trap.local_addr()?;

    let rundir = topo.ovs.rundir().to_string_lossy().into_owned();
    // Entries with the switch's port: without one only --ovs.target-port would be allowed.
    let allowed = format!("127.0.0.1/32:1,10.0.0.0/8:{of_port},10.250.0.0/16:{of_port}");
    let daemon = Daemon::start(&args(&[
        "--ovs.rundir",
        &rundir,
        "--ovs.allowed-targets",
        &allowed,
    ]))?;

    // Each seed endpoint serves its slice only.
    let (s, ports) = daemon.get("/ports")?;
    assert_eq!(s, 200);
    assert!(ports.contains("ovs_port_rx_packets_total{"));
    assert!(!ports.contains("ovs_flow_packets_total") && !ports.contains("ovs_group_"));
    let (s, flows) = daemon.get("/flows")?;
    assert_eq!(s, 200);
    assert!(flows.contains("ovs_flow_packets_total{") && flows.contains("ovs_table_active_flows{"));
    assert!(!flows.contains("ovs_port_") && !flows.contains("ovs_group_"));
    let (s, groups) = daemon.get("/groups")?;
    assert_eq!(s, 200);
    assert!(groups.contains("ovs_group_packets_total{"));
    assert!(!groups.contains("ovs_flow_packets_total") && !groups.contains("ovs_port_"));
    for text in [&ports, &flows, &groups] {
        promtool_check(text)?;
    }

    // ?target= over TCP, the bridge named by its LOCAL port.
    let (s, body) = daemon.get(&format!("/flows?target={switch_ip}:{of_port}"))?;
    assert_eq!(s, 200, "{body}");
    let samples = prom::parse(&body)?;
    assert_eq!(
        value(&samples, "ovs_openflow_up", &[("bridge", b)]),
        Some(1.0),
        "{body}"
    );
    assert!(!prom::by_name(&samples, "ovs_flow_packets_total").is_empty());
    // tcp: form and the local management socket as a unix: target.
    let (s, body) = daemon.get(&format!("/ports?target=tcp:{switch_ip}:{of_port}"))?;
    assert_eq!(s, 200);
    assert!(
        body.contains(&format!("ovs_openflow_up{{bridge=\"{b}\"}} 1")),
        "{body}"
    );
    // A bare host takes --ovs.target-port.
    let daemon_port = Daemon::start(&args(&[
        "--ovs.rundir",
        &rundir,
        "--ovs.allowed-targets",
        "10.250.0.0/16",
        "--ovs.target-port",
        &of_port.to_string(),
    ]))?;
    let (s, body) = daemon_port.get(&format!("/groups?target={switch_ip}"))?;
    assert_eq!(s, 200);
    assert!(
        body.contains(&format!("ovs_openflow_up{{bridge=\"{b}\"}} 1")),
        "{body}"
    );
    let mgmt = topo.ovs.mgmt(b);
    let (s, body) = daemon.get(&format!("/groups?target=unix:{}", mgmt.display()))?;
    assert_eq!(s, 200);
    assert!(
        body.contains(&format!("ovs_openflow_up{{bridge=\"{b}\"}} 1")),
        "{body}"
    );

    // Refused targets: HTTP 400 with a one-line reason, no connection made.
    for bad in [
        format!("{}", trap_addr.ip()),
        format!("tcp:{trap_addr}"),
        "unix:/etc/passwd".to_owned(),
        "tcp:127.0.0.1".to_owned(),
        "ssl:127.0.0.1:6653".to_owned(),
        "unix:relative".to_owned(),
    ] {
        let (s, body) = daemon.get(&format!("/flows?target={bad}"))?;
        assert_eq!(s, 400, "{bad}: {body}");
        assert_eq!(body.trim_end().lines().count(), 1, "{bad}: {body}");
        assert!(body.contains("target"), "{body}");
    }
    let (s, _) = daemon.get("/flows?target=127.0.0.1&target=10.0.0.1")?;
    assert_eq!(s, 400);
    assert!(
        trap.accept().is_err(),
        "the exporter connected to a target it was not allowed"
    );

    // An allowed target where nothing listens: served, with ovs_openflow_up 0.
    let (s, body) = daemon.get("/flows?target=127.0.0.1:1")?;
    assert_eq!(s, 200);
    assert!(
        body.contains("ovs_openflow_up{bridge=\"127.0.0.1:1\"} 0"),
        "{body}"
    );
    assert!(body.contains("dataplane_collector_scrape_success{collector=\"openflow\"} 0"));
    Ok(())
}

#[test]
fn faults_dead_socket_and_vswitchd_restart() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let mut topo = Topology::build(Ovs::start()?, 3)?;
    let b = topo.bridge.clone();
    let rundir = topo.ovs.rundir().to_path_buf();
    let daemon = Daemon::start(&args(&[
        "--ovs.rundir",
        &rundir.to_string_lossy(),
        "--scrape.timeout",
        "3s",
    ]))?;

    // A dead socket next to the live bridge: that bridge is down, the rest is served. (With
    // OVSDB reachable the bridge list comes from there and a stray socket is not a bridge, so
    // this daemon finds bridges by their sockets.)
    let dead = rundir.join("brdead.mgmt");
    {
        let _listener = std::os::unix::net::UnixListener::bind(&dead)?;
    } // closed: connecting now gets ECONNREFUSED
    let by_socket = Daemon::start(&args(&[
        "--ovs.rundir",
        &rundir.to_string_lossy(),
        "--ovs.db",
        "unix:/nonexistent/db.sock",
    ]))?;
    let (s, body) = by_socket.get("/metrics")?;
    assert_eq!(s, 200);
    let samples = prom::parse(&body)?;
    assert_eq!(
        value(&samples, "ovs_openflow_up", &[("bridge", "brdead")]),
        Some(0.0)
    );
    assert_eq!(
        value(&samples, "ovs_openflow_up", &[("bridge", &b)]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "dataplane_collector_scrape_success",
            &[("collector", "openflow")]
        ),
        Some(0.0)
    );
    assert!(!prom::by_name(&samples, "ovs_flow_packets_total").is_empty());
    std::fs::remove_file(&dead)?;

    // ovs-vswitchd killed: up 0, still HTTP 200 with the scrape metrics.
    topo.ovs.kill_vswitchd()?;
    let (s, body) = daemon.get("/metrics")?;
    assert_eq!(s, 200);
    let samples = prom::parse(&body)?;
    assert_eq!(
        value(&samples, "ovs_openflow_up", &[("bridge", &b)]),
        Some(0.0),
        "{body}"
    );
    assert!(prom::by_name(&samples, "ovs_flow_packets_total").is_empty());
    assert_eq!(
        value(
            &samples,
            "dataplane_collector_source_available",
            &[("collector", "openflow")]
        ),
        Some(1.0)
    );

    // Restarted: the same daemon recovers by itself.
    topo.ovs.start_vswitchd()?;
    let mut recovered = false;
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let (_, body) = daemon.get("/metrics")?;
        if body.contains(&format!("ovs_openflow_up{{bridge=\"{b}\"}} 1")) {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "did not recover after ovs-vswitchd restart");
    let _ = &mut topo;
    Ok(())
}

#[test]
fn no_open_vswitch_is_unavailable_not_an_error() -> Result<()> {
    // Needs no root: an empty run directory.
    let dir = tempfile::tempdir()?;
    let daemon = Daemon::start(&args(&["--ovs.rundir", &dir.path().to_string_lossy()]))?;
    for path in ["/metrics", "/flows", "/ports", "/groups"] {
        let (s, body) = daemon.get(path)?;
        assert_eq!(s, 200, "{path}");
        assert!(body.contains("dataplane_collector_source_available{collector=\"openflow\"} 0"));
        assert!(body.contains("dataplane_collector_scrape_success{collector=\"openflow\"} 0"));
        assert!(!body.contains("ovs_openflow_up"));
    }
    let missing = dir.path().join("missing");
    let daemon = Daemon::start(&args(&["--ovs.rundir", &missing.to_string_lossy()]))?;
    let (s, body) = daemon.get("/metrics")?;
    assert_eq!(s, 200);
    assert!(body.contains("dataplane_collector_source_available{collector=\"openflow\"} 0"));
    let (s, _) = daemon.get("/healthz")?;
    assert_eq!(s, 200);
    Ok(())
}
