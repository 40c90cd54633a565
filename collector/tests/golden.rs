//! The whole `/metrics` output of every collector against a golden file, and the OpenFlow
//! client's faults. No root. Each collector reads fixtures (see `common`): OpenFlow replies
//! captured from a real ovs-vswitchd (a fake switch), an OVSDB session recorded from a real
//! ovsdb-server (a fake server on `<rundir>/db.sock`), an eBPF map snapshot and captured IPVS
//! netlink replies (given through `sources::build::Readers`: these sources read the kernel),
//! SR-IOV sysfs and cgroup trees and a CPU manager checkpoint (the sources' path flags), and a
//! fake kubelet pod-resources server, ovs-vswitchd's replies captured from a real one (a fake
//! control socket on `<rundir>/ovs-vswitchd.ctl`), and the OVS kernel datapath's netlink replies
//! captured in the lab, and conntrack's ctnetlink replies captured from this host's kernel. Only
//! the daemon's own timings and build are normalized.
//!
//! Update the golden file with `DPC_UPDATE_GOLDEN=1 cargo test -p dataplane-collector --test golden`.

mod common;

use axum::body::Body;
use axum::http::Request;
use clap::Parser;
use common::Behavior;
use dataplane_collector::cli::Cli;
use dataplane_collector::sources::build::Readers;
use dataplane_collector::sources::conntrack::{self, ConntrackError};
use dataplane_collector::sources::datapath;
use dataplane_collector::sources::ebpf::Maps;
use dataplane_collector::sources::ipvs::{self, IpvsError, ServiceData};
use dataplane_collector::sources::sriov::tree;
use http_body_util::BodyExt;
use std::path::Path;
use std::sync::Arc;
use tower::ServiceExt;

fn state(extra: &[&str], rundir: &Path) -> std::sync::Arc<dataplane_collector::server::AppState> {
    state_with(extra, rundir, Readers::default())
}

fn state_with(
    extra: &[&str],
    rundir: &Path,
    readers: Readers,
) -> std::sync::Arc<dataplane_collector::server::AppState> {
    let mut argv = vec!["dataplane-collector", "--ovs.rundir"];
    let rd = rundir.to_string_lossy().into_owned();
    argv.push(&rd);
    if !extra.iter().any(|a| a.starts_with("--web.rate-limit")) {
        argv.push("--web.rate-limit=0");
    }
    argv.extend_from_slice(extra);
    let args = Cli::try_parse_from(argv).map(Cli::serve_args);
    let args = args.unwrap_or_else(|e| panic!("{e}"));
    dataplane_collector::app_state_with(&args, readers).unwrap_or_else(|e| panic!("{e}"))
}

async fn get(
    state: std::sync::Arc<dataplane_collector::server::AppState>,
    path: &str,
) -> (u16, String) {
    let req = Request::get(path).body(Body::empty()).unwrap_or_default();
    let resp = dataplane_collector::server::router(state)
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Replaces what changes from run to run: the daemon's own timings (scrape and OVSDB sync
/// durations) and the build's revision. Everything else comes from the fixtures.
fn normalize(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with("dataplane_collector_scrape_duration_seconds{")
                || l.starts_with("dataplane_collector_ovsdb_sync_duration_seconds ")
            {
                let (k, _) = l.rsplit_once(' ').unwrap_or((l, ""));
                format!("{k} <duration>")
            } else if l.starts_with("dataplane_collector_build_info{") {
                "dataplane_collector_build_info{<build>} 1".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn promtool_check(text: &str) {
    common::promtool::check_metrics(text).unwrap_or_else(|e| panic!("{e}"));
}

/// The OVS kernel datapath as the kernel answered in the lab's capture
/// (`fixtures/datapath/read.bin`).
struct CapturedDatapath(Option<datapath::kernel::KernelData>);

impl datapath::Reader for CapturedDatapath {
    fn read(
        &self,
        _timeout: std::time::Duration,
    ) -> Result<Option<datapath::kernel::KernelData>, datapath::DatapathError> {
        Ok(self.0.clone())
    }
}

/// IPVS as the kernel answered in the capture (`fixtures/ipvs/read.bin`), in every namespace.
struct CapturedIpvs(Vec<ServiceData>);

impl ipvs::Reader for CapturedIpvs {
    fn read(
        &self,
        _netns: Option<&Path>,
        _timeout: std::time::Duration,
    ) -> Result<Vec<ServiceData>, IpvsError> {
        Ok(self.0.clone())
    }
}

/// conntrack as the kernel answered in the capture (`fixtures/conntrack/read.bin`).
struct CapturedConntrack(conntrack::Snapshot);

impl conntrack::Reader for CapturedConntrack {
    fn read(&self, _timeout: std::time::Duration) -> Result<conntrack::Snapshot, ConntrackError> {
        Ok(self.0.clone())
    }
}

/// Every collector, each on fixtures captured from a real system (see `tests/fixtures`).
const COLLECTORS: &[&str] = &[
    "openflow",
    "ovsdb",
    "ebpf",
    "ipvs",
    "vfstats",
    "kubepoddevice",
    "kubepodcpu",
    "vswitchd",
    "datapath",
    "ovsprocess",
    "conntrack",
];

/// The daemon's app with every collector on its fixtures (servers started under `dir`, which
/// must outlive it).
async fn all_collectors(dir: &Path) -> Arc<dataplane_collector::server::AppState> {
    let bridge = common::demo_bridge_name();
    common::serve(
        dir.join(format!("{bridge}.mgmt")),
        common::demo_replies(),
        Behavior::Normal,
    )
    .await;
    common::ovsdb::serve(dir.join("db.sock")).await;
    common::unixctl::serve(dir.join("ovs-vswitchd.ctl")).await;
    let kubelet = dir.join("kubelet.sock");
    common::kubelet::serve(&kubelet);
    let kubelet_socket = format!(
        "--collector.kubepoddevice.kubelet-socket={}",
        kubelet.display()
    );
    let sriov = Path::new(common::FIXTURES).join("sriov");
    let unpack = |fixture: &str, into: &str| {
        let d = dir.join(into);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read_to_string(sriov.join(fixture)).unwrap_or_else(|e| panic!("{e}"));
        tree::unpack(&text, &d).unwrap_or_else(|e| panic!("{fixture}: {e}"));
        d.to_string_lossy().into_owned()
    };
    let sys = unpack("sys.tree", "sys");
    let node = unpack("node.tree", "node");
    let kubepods = unpack("cgroup-v2.tree", "kubepods.slice");
    let checkpoint = sriov.join("cpu_manager_state.json");
    let sysbuspci = format!("--collector.vfstats.sysbuspci={sys}/bus/pci/devices");
    let sysclassnet = format!("--collector.vfstats.sysclassnet={sys}/class/net");
    let nodecpuinfo = format!("--collector.kubepodcpu.nodecpuinfo={node}");
    let kubecgroup = format!("--collector.kubepodcpu.kubecgroup={kubepods}");
    let cpucheckpoint = format!(
        "--collector.kubepodcpu.cpucheckpoint={}",
        checkpoint.display()
    );
    // ovsprocess: the pidfiles of the captured ovs-vswitchd and ovsdb-server, whose /proc/PID
    // files (and fd links) are in the fixture procfs tree.
    let ovsprocess = Path::new(common::FIXTURES).join("ovsprocess");
    for (daemon, pid) in [("ovs-vswitchd", 19628), ("ovsdb-server", 19625)] {
        std::fs::write(dir.join(format!("{daemon}.pid")), format!("{pid}\n"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let procfs = format!(
        "--collector.ovsprocess.procfs={}",
        ovsprocess.join("proc").display()
    );
    let db_file = format!(
        "--collector.ovsprocess.db-file={}",
        ovsprocess.join("conf.db").display()
    );
    let services = common::ipvs::replay(&common::ipvs::datagrams())
        .unwrap_or_else(|e| panic!("the IPVS capture: {e}"));
    let conntrack = common::conntrack::replay(&common::conntrack::datagrams())
        .unwrap_or_else(|e| panic!("the conntrack capture: {e}"));
    let maps = common::ebpf::snapshot(&common::demo_pod_ports());
    let bin = std::fs::read(Path::new(common::FIXTURES).join("datapath/read.bin"))
        .unwrap_or_else(|e| panic!("the datapath capture: {e}"));
    let kernel = datapath::kernel::Replay::new(&bin)
        .and_then(|mut r| datapath::kernel::read(&mut r).map_err(|e| format!("{e:?}")))
        .unwrap_or_else(|e| panic!("the datapath capture: {e}"));
    let readers = Readers::default()
        .with::<Arc<dyn ipvs::Reader>>(Arc::new(CapturedIpvs(services)))
        .with::<Arc<dyn datapath::Reader>>(Arc::new(CapturedDatapath(kernel)))
        .with::<Arc<dyn Maps>>(Arc::new(maps))
        .with::<Arc<dyn conntrack::Reader>>(Arc::new(CapturedConntrack(conntrack)));
    // Every collector on fixtures; none reads this machine.
    let args = [
        "--collector.disable-defaults",
        "--collector.openflow",
        "--ovs.flow-actions",
        "--collector.ovsdb",
        "--collector.ebpf",
        "--collector.ipvs",
        "--collector.vfstats",
        "--collector.vfstats.netlink=false",
        &sysbuspci,
        &sysclassnet,
        "--collector.kubepoddevice",
        &kubelet_socket,
        "--collector.kubepodcpu",
        &nodecpuinfo,
        &kubecgroup,
        &cpucheckpoint,
        "--collector.vswitchd",
        "--collector.datapath",
        "--collector.ovsprocess",
        &procfs,
        &db_file,
        "--collector.conntrack",
    ];
    state_with(&args, dir, readers)
}

#[tokio::test]
async fn metrics_output_matches_the_golden_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let app = all_collectors(dir.path()).await;
    // The eBPF source names ports from the OVSDB replica as it stands, which the first scrape
    // may find empty (the monitor still connecting); the second finds it synced.
    let (status, _) = get(app.clone(), "/metrics").await;
    assert_eq!(status, 200);
    let (status, body) = get(app, "/metrics").await;
    assert_eq!(status, 200);
    promtool_check(&body);
    // Each collector read its fixture: a section gone fails here, even with the golden file
    // updated.
    for c in COLLECTORS {
        let ok = format!("dataplane_collector_scrape_success{{collector=\"{c}\"}} 1");
        assert!(body.lines().any(|l| l == ok), "no `{ok}` in:\n{body}");
    }
    let got = normalize(&body);
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/metrics.txt");
    if std::env::var("DPC_UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&golden, &got).unwrap_or_else(|e| panic!("{e}"));
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_default();
    if got != want {
        let diff: Vec<String> = got
            .lines()
            .zip(want.lines().chain(std::iter::repeat("<missing>")))
            .filter(|(a, b)| a != b)
            .take(10)
            .map(|(a, b)| format!("got:  {a}\nwant: {b}"))
            .collect();
        panic!(
            "/metrics differs from {} ({} vs {} lines); first differences:\n{}\n\
             (DPC_UPDATE_GOLDEN=1 to accept)",
            golden.display(),
            got.lines().count(),
            want.lines().count(),
            diff.join("\n")
        );
    }
}

/// The series of `body` that are neither comments nor the daemon's own, by name.
fn source_series(body: &str) -> Vec<&str> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("dataplane_collector_"))
        .collect()
}

/// The `collector` labels of the scrape's own `dataplane_collector_scrape_success`, sorted.
fn scraped(body: &str) -> Vec<String> {
    let mut out: Vec<String> = body
        .lines()
        .filter_map(|l| l.strip_prefix("dataplane_collector_scrape_success{collector=\""))
        .filter_map(|l| l.split_once('"').map(|(c, _)| c.to_owned()))
        .collect();
    out.sort();
    out
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    out.sort();
    out
}

#[tokio::test]
async fn collect_and_exclude_run_only_the_collectors_asked_for() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let app = all_collectors(dir.path()).await;
    let (status, all) = get(app.clone(), "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(scraped(&all), sorted(COLLECTORS));

    let (status, body) = get(app.clone(), "/metrics?collect[]=ipvs").await;
    assert_eq!(status, 200, "{body}");
    promtool_check(&body);
    let series = source_series(&body);
    assert!(!series.is_empty(), "{body}");
    assert!(
        series.iter().all(|l| l.starts_with("ipvs_")),
        "only ipvs_* series: {series:?}"
    );
    assert_eq!(scraped(&body), ["ipvs"]);
    for meta in [
        "dataplane_collector_scrape_duration_seconds",
        "dataplane_collector_source_available",
    ] {
        let per: Vec<&str> = body
            .lines()
            .filter(|l| l.starts_with(&format!("{meta}{{")))
            .collect();
        assert_eq!(per.len(), 1, "{meta}: {per:?}");
        assert!(per[0].contains("collector=\"ipvs\""), "{per:?}");
    }
    // Exactly the ipvs series of the full scrape.
    let full_ipvs: Vec<&str> = source_series(&all)
        .into_iter()
        .filter(|l| l.starts_with("ipvs_"))
        .collect();
    assert_eq!(series, full_ipvs);

    // Two at once (URL-encoded brackets, as clients send them).
    let (status, body) = get(
        app.clone(),
        "/metrics?collect%5B%5D=conntrack&collect%5B%5D=ipvs",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(scraped(&body), sorted(&["ipvs", "conntrack"]));

    let (status, body) = get(
        app.clone(),
        "/metrics?exclude[]=openflow&exclude[]=ebpf&exclude[]=ovsdb",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    promtool_check(&body);
    let want: Vec<&str> = COLLECTORS
        .iter()
        .copied()
        .filter(|c| !["openflow", "ebpf", "ovsdb"].contains(c))
        .collect();
    assert_eq!(scraped(&body), sorted(&want));
    assert!(!body.contains("\novs_flow_"), "openflow excluded");
    assert!(!body.contains("\nebpf_"), "ebpf excluded");
    assert!(body.contains("\nipvs_up{"), "{body}");

    let (status, body) = get(app.clone(), "/metrics?collect[]=ipvs&collect[]=nope").await;
    assert_eq!(status, 400);
    assert!(
        body.starts_with("unknown collector \"nope\" in collect[]; known collectors: "),
        "{body}"
    );
    for c in COLLECTORS {
        assert!(body.contains(c), "{c} named in {body}");
    }
    let (status, body) = get(app.clone(), "/metrics?collect[]=ipvs&exclude[]=ovsdb").await;
    assert_eq!(status, 400, "{body}");
    // (Past the bound of 64 values is 400 too: `server::collect`'s unit tests, since it counts
    // in the process-wide limit_exceeded series the golden file would then show.)
    // ?target= scrapes openflow alone: collect[] must leave it in.
    let (status, body) = get(app, "/metrics?target=unix:/nonexistent&collect[]=ipvs").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("openflow collector alone"), "{body}");
}

fn sample_value(body: &str, prefix: &str) -> Option<String> {
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit_once(' ').map(|(_, v)| v.to_owned()))
}

#[tokio::test]
async fn switch_faults_are_reported_per_bridge() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let replies = common::demo_replies();
    for (name, behavior) in [
        ("br-ok", Behavior::Normal),
        ("br-echo", Behavior::EchoFirst),
        ("br-of10", Behavior::OnlyOf10),
        ("br-reject", Behavior::Reject),
        ("br-silent", Behavior::Silent),
    ] {
        common::serve(
            dir.path().join(format!("{name}.mgmt")),
            replies.clone(),
            behavior,
        )
        .await;
    }
    let start = std::time::Instant::now();
    let (status, body) = get(state(&["--scrape.timeout", "1s"], dir.path()), "/metrics").await;
    assert_eq!(status, 200);
    // The silent switch holds the source to its timeout, no longer.
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    // One silent bridge times the whole source out: nothing from it is served, but the
    // scrape still is.
    assert_eq!(
        sample_value(
            &body,
            "dataplane_collector_scrape_success{collector=\"openflow\"}"
        ),
        Some("0".into())
    );
    promtool_check(&body);

    // Without the silent one, every other bridge gets its own verdict.
    let _ = std::fs::remove_file(dir.path().join("br-silent.mgmt"));
    let (_, body) = get(state(&[], dir.path()), "/metrics").await;
    for (bridge, up) in [
        ("br-ok", "1"),
        ("br-echo", "1"),
        ("br-of10", "0"),
        ("br-reject", "0"),
    ] {
        assert_eq!(
            sample_value(&body, &format!("ovs_openflow_up{{bridge=\"{bridge}\"}}")),
            Some(up.into()),
            "{bridge}: {body}"
        );
    }
    assert!(body.contains("ovs_flow_packets_total{bridge=\"br-ok\""));
    assert!(body.contains("ovs_flow_packets_total{bridge=\"br-echo\""));
    assert!(!body.contains("ovs_flow_packets_total{bridge=\"br-of10\""));
    assert_eq!(
        sample_value(
            &body,
            "dataplane_collector_scrape_success{collector=\"openflow\"}"
        ),
        Some("0".into())
    );
}

/// Builds flow-stats reply bodies holding `n` copies of the demo's flows (cookies made
/// unique), split like Open vSwitch splits them (under 64 KiB per message).
fn many_flows(n: usize) -> Vec<Vec<u8>> {
    let entries: Vec<Vec<u8>> = common::load_bodies("demo.flow-stats.bin")
        .iter()
        .flat_map(|b| {
            let mut out = Vec::new();
            let mut rest = b.as_slice();
            while rest.len() >= 2 {
                let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                out.push(rest[..len].to_vec());
                rest = &rest[len..];
            }
            out
        })
        .collect();
    let mut bodies = vec![Vec::new()];
    for i in 0..n {
        let mut e = entries[i % entries.len()].clone();
        e[24..32].copy_from_slice(&(i as u64).to_be_bytes()); // cookie
        if bodies.last().is_some_and(|b| b.len() + e.len() > 65_000) {
            bodies.push(Vec::new());
        }
        if let Some(last) = bodies.last_mut() {
            last.extend_from_slice(&e);
        }
    }
    bodies
}

#[tokio::test]
async fn follows_multipart_replies_to_the_end_at_100k_flows() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut replies = common::demo_replies();
    let bodies = many_flows(100_000);
    assert!(bodies.len() > 100, "{} messages", bodies.len());
    replies.insert(1, bodies);
    common::serve(dir.path().join("br-big.mgmt"), replies, Behavior::Normal).await;

    let (status, body) = get(state(&["--ovs.max-flow-series", "0"], dir.path()), "/flows").await;
    assert_eq!(status, 200);
    let n = body
        .lines()
        .filter(|l| l.starts_with("ovs_flow_bytes_total{"))
        .count();
    assert_eq!(n, 100_000);
    assert_eq!(
        sample_value(&body, "ovs_flow_series_folded{bridge=\"br-big\"}"),
        Some("0".into())
    );

    // Bounded: the default keeps 10,000 flows and folds the rest per (table, cookie).
    let (_, body) = get(state(&[], dir.path()), "/flows").await;
    let kept = body
        .lines()
        .filter(|l| l.starts_with("ovs_flow_bytes_total{") && !l.contains("match=\"*\""))
        .count();
    assert_eq!(kept, 10_000);
    assert_eq!(
        sample_value(&body, "ovs_flow_series_folded{bridge=\"br-big\"}"),
        Some("90000".into())
    );
    let folded: f64 = body
        .lines()
        .filter(|l| l.starts_with("ovs_flow_bytes_total{") && l.contains("match=\"*\""))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum();
    let all: f64 = body
        .lines()
        .filter(|l| l.starts_with("ovs_flow_bytes_total{"))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum();
    assert!(
        folded > 0.0 && all > folded,
        "folded series keep the totals: {folded} of {all}"
    );
}

#[tokio::test]
async fn rate_limit_answers_429_past_the_burst_but_never_for_healthz() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let app = state(
        &[
            "--web.rate-limit=1",
            "--web.rate-burst=2",
            "--collector.disable-defaults",
        ],
        dir.path(),
    );
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(get(app.clone(), "/metrics").await.0);
    }
    assert_eq!(codes, vec![200, 200, 429, 429]);
    for _ in 0..20 {
        assert_eq!(get(app.clone(), "/healthz").await.0, 200);
    }
    // The bucket refills at the limit.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(get(app.clone(), "/metrics").await.0, 200);
    let (status, body) = get(app, "/flows").await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("--web.rate-limit"));
}
