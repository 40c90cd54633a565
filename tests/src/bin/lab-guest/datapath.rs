//! The `datapath` source on the OVS kernel datapath (generic netlink: `ovs_datapath`,
//! `ovs_vport`, `ovs_ct_limit`).
//!
//! - `datapath-absent`: no `openvswitch` module. The source is unavailable, no `ovs_datapath*`
//!   series, and scraping never loads the module; then the proof that this check could fail:
//!   a lookup of `ovs_datapath` by name (what libnl does) loads it, after which the same
//!   daemon reports the source available.
//! - `datapath`: a `datapath_type=system` bridge carrying real traffic, two pods whose TCP
//!   connections are committed to conntrack zone 5 with a limit set by
//!   `ovs-appctl dpctl/ct-set-limits`. Every datapath and port figure served equals
//!   `ovs-dpctl show -s` at the same moment (read before and after the scrape, equal), the
//!   zone's limit and live count equal `dpctl/ct-get-limits`, with the connections held open
//!   counted. The raw netlink read is captured as the parser's fixture.

use crate::{Daemon, Proc, module_loaded, self_path, wait_for};
use anyhow::{Context, Result, bail};
use dataplane_collector::netlink::{Protocol, Socket, genl};
use dataplane_collector::sources::datapath::kernel;
use dataplane_collector::sources::vswitchd::parse::{Datapath, dpctl_show};
use std::process::Command;
use std::time::Duration;
use testbed::netns::Pod;
use testbed::ovs::Ovs;
use testbed::prom::{self, Sample};

fn check_unavailable(body: &str, what: &str) -> Result<()> {
    for line in [
        "dataplane_collector_source_available{collector=\"datapath\"} 0",
        "dataplane_collector_scrape_success{collector=\"datapath\"} 0",
    ] {
        if !body.contains(line) {
            bail!("{what}: no `{line}` in\n{body}");
        }
    }
    if let Some(l) = body
        .lines()
        .find(|l| l.starts_with("ovs_datapath") || l.starts_with("ovs_conntrack_zone"))
    {
        bail!("{what}: a datapath series without a datapath: {l}");
    }
    Ok(())
}

pub fn absent() -> Result<()> {
    if module_loaded("openvswitch") {
        bail!("openvswitch is loaded; this scenario needs it absent");
    }
    let d = Daemon::start(
        9105,
        &[
            "--log.format",
            "json",
            "--log.level",
            "debug",
            "--ovs.rundir",
            "/run/no-openvswitch",
        ],
    )?;
    for i in 0..5 {
        check_unavailable(&d.metrics()?, &format!("scrape {i}"))?;
    }
    if module_loaded("openvswitch") {
        bail!("scraping loaded the openvswitch module");
    }
    let log = std::fs::read_to_string(&d.log)?;
    if let Some(l) = log
        .lines()
        .find(|l| l.contains("datapath") && (l.contains("\"WARN\"") || l.contains("\"ERROR\"")))
    {
        bail!("the daemon complained about an absent datapath: {l}");
    }
    println!(
        "datapath-absent: 5 scrapes: unavailable, no ovs_datapath* series, openvswitch still not loaded"
    );

    // The check above means something only if a lookup could load the module here.
    let mut sock = Socket::open(Protocol::Generic, Duration::from_secs(10))?;
    let seq = sock.next_seq();
    let errno = sock.request(
        &genl::family_by_name_request(seq, kernel::DATAPATH_FAMILY),
        seq,
    )?;
    wait_for(
        "the kernel to load openvswitch",
        Duration::from_secs(10),
        || Ok(module_loaded("openvswitch").then_some(())),
    )
    .with_context(|| format!("a lookup by name did not load openvswitch (errno {errno})"))?;
    println!(
        "datapath-absent: a lookup of \"ovs_datapath\" by name loaded openvswitch, as expected"
    );
    let body = d.metrics()?;
    for line in [
        "dataplane_collector_source_available{collector=\"datapath\"} 1",
        "dataplane_collector_scrape_success{collector=\"datapath\"} 1",
    ] {
        if !body.contains(line) {
            bail!("after loading openvswitch: no `{line}` in\n{body}");
        }
    }
    println!(
        "datapath-absent: with openvswitch loaded the same daemon reports the source available"
    );
    Ok(())
}

fn in_netns(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("/usr/bin/ip");
    c.args(["netns", "exec", ns]).arg(self_path()).args(args);
    c
}

fn dpctl(args: &[&str]) -> Result<String> {
    crate::run("/usr/bin/ovs-dpctl", args)
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == *v))
        .map(|s| s.value)
}

/// Every figure of `dpctl` (ovs-dpctl's datapaths) against the served samples.
fn differences(dps: &[Datapath], samples: &[Sample]) -> Vec<String> {
    let mut diffs = Vec::new();
    {
        let mut check = |what: String, want: Option<u64>, got: Option<f64>| {
            if want.map(|v| v as f64) != got {
                diffs.push(format!("{what}: ovs-dpctl {want:?}, served {got:?}"));
            }
        };
        for d in dps {
            let dl = [("datapath", d.name.as_str()), ("type", "system")];
            for (result, v) in [("hit", d.hit), ("missed", d.missed), ("lost", d.lost)] {
                let mut l = dl.to_vec();
                l.push(("result", result));
                check(
                    format!("{} lookups {result}", d.name),
                    Some(v),
                    value(samples, "ovs_datapath_lookups_total", &l),
                );
            }
            check(
                format!("{} flows", d.name),
                Some(d.flows),
                value(samples, "ovs_datapath_flows", &dl),
            );
            check(
                format!("{} masks", d.name),
                d.masks,
                value(samples, "ovs_datapath_masks", &dl),
            );
            check(
                format!("{} mask hits", d.name),
                d.mask_hit,
                value(samples, "ovs_datapath_mask_hits_total", &dl),
            );
            check(
                format!("{} masks cache hits", d.name),
                d.cache_hit,
                value(samples, "ovs_datapath_masks_cache_hits_total", &dl),
            );
            for (cache, size) in &d.caches {
                let mut l = dl.to_vec();
                l.push(("cache", cache));
                check(
                    format!("{} cache {cache}", d.name),
                    Some(*size),
                    value(samples, "ovs_datapath_cache_size", &l),
                );
            }
            for p in &d.ports {
                let no = p.number.to_string();
                let mut l = dl.to_vec();
                l.extend([
                    ("port", p.name.as_str()),
                    ("port_no", no.as_str()),
                    ("port_type", p.kind.as_str()),
                ]);
                let Some(s) = p.stats else {
                    check(format!("counters of port {}", p.name), Some(1), None);
                    continue;
                };
                for (name, want) in [
                    ("ovs_datapath_port_receive_packets_total", s.rx_packets),
                    ("ovs_datapath_port_receive_bytes_total", s.rx_bytes),
                    ("ovs_datapath_port_receive_errors_total", s.rx_errors),
                    ("ovs_datapath_port_receive_dropped_total", s.rx_dropped),
                    ("ovs_datapath_port_transmit_packets_total", s.tx_packets),
                    ("ovs_datapath_port_transmit_bytes_total", s.tx_bytes),
                    ("ovs_datapath_port_transmit_errors_total", s.tx_errors),
                    ("ovs_datapath_port_transmit_dropped_total", s.tx_dropped),
                ] {
                    check(
                        format!("{name} of {}", p.name),
                        want,
                        value(samples, name, &l),
                    );
                }
            }
        }
    }
    let served_ports = samples
        .iter()
        .filter(|s| s.name == "ovs_datapath_port_receive_packets_total")
        .count();
    let ports: usize = dps.iter().map(|d| d.ports.len()).sum();
    if served_ports != ports {
        diffs.push(format!(
            "{served_ports} ports served, ovs-dpctl shows {ports}"
        ));
    }
    diffs
}

const ZONE: &str = "5";
const LIMIT: u64 = 50;
const HELD: usize = 6;

pub fn run() -> Result<()> {
    if !module_loaded("openvswitch") {
        bail!("the openvswitch module is not loaded");
    }
    // The daemon reads the datapath of its own namespace: OVS runs in the guest's.
    let ovs = Ovs::start_in_host_netns()?;
    let br = "brd";
    ovs.vsctl(&[
        "add-br",
        br,
        "--",
        "set",
        "bridge",
        br,
        "datapath_type=system",
        "fail_mode=secure",
    ])?;
    let mut pods = Vec::new();
    for i in 0..2u8 {
        let pod = Pod::create(
            &format!("dp{i}"),
            None,
            &format!("vdp{i}"),
            &format!("10.244.10.{}", i + 2),
            &format!("02:00:00:00:0a:{:02x}", i + 2),
        )?;
        ovs.vsctl(&["add-port", br, &pod.host_if])?;
        pods.push(pod);
    }
    // IP through conntrack zone 5 (committed when new), everything else switched.
    for flow in [
        "table=0,priority=10,ip,actions=ct(table=1,zone=5)",
        "table=0,priority=0,actions=NORMAL",
        "table=1,priority=10,ip,ct_state=+trk+new,actions=ct(commit,zone=5),NORMAL",
        "table=1,priority=5,ip,ct_state=+trk,actions=NORMAL",
    ] {
        ovs.add_flow(br, flow)?;
    }
    ovs.appctl(&[
        "dpctl/ct-set-limits",
        "default=1000",
        &format!("zone={ZONE},limit={LIMIT}"),
    ])?;
    pods[0].ping(&pods[1].ip, 5)?;
    let _server = Proc::spawn_until(
        "the server",
        &mut in_netns("dp1", &["serve", "8080"]),
        "ready",
    )?;
    let target = format!("{}:8080", pods[1].ip);
    let _held = Proc::spawn_until(
        "held connections",
        &mut in_netns("dp0", &["hold", &target, &HELD.to_string()]),
        "ready",
    )?;

    let daemon = Daemon::start(9106, &["--ovs.rundir", &ovs.rundir().to_string_lossy()])?;
    let mut last = Vec::new();
    for attempt in 0..15 {
        let before = dpctl(&["show", "-s"])?;
        let limits_before = ovs.appctl(&["dpctl/ct-get-limits", &format!("zone={ZONE}")])?;
        let body = daemon.metrics()?;
        let after = dpctl(&["show", "-s"])?;
        let limits_after = ovs.appctl(&["dpctl/ct-get-limits", &format!("zone={ZONE}")])?;
        if before != after || limits_before != limits_after {
            std::thread::sleep(Duration::from_millis(700));
            continue;
        }
        let samples = prom::parse(&body)?;
        let dps = dpctl_show(&before).map_err(|e| anyhow::anyhow!("{e}"))?;
        if !dps.iter().any(|d| d.name == "ovs-system") {
            bail!("ovs-dpctl shows no ovs-system:\n{before}");
        }
        let mut diffs = differences(&dps, &samples);
        // The zone: its limit and live count, as ovs-vswitchd reads them from the kernel.
        let zl = dataplane_collector::sources::vswitchd::parse::ct_limits(&limits_before)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let Some(&(_, limit, count)) = zl.zones.iter().find(|z| z.0.to_string() == ZONE) else {
            bail!("dpctl/ct-get-limits shows no zone {ZONE}:\n{limits_before}");
        };
        let zl_labels = [
            ("datapath", "ovs-system"),
            ("type", "system"),
            ("zone", ZONE),
        ];
        for (name, want) in [
            ("ovs_conntrack_zone_limit", limit),
            ("ovs_conntrack_zone_connections", count),
        ] {
            let got = value(&samples, name, &zl_labels);
            if got != Some(want as f64) {
                diffs.push(format!(
                    "{name}: dpctl/ct-get-limits {want}, served {got:?}"
                ));
            }
        }
        let default = value(
            &samples,
            "ovs_conntrack_zone_limit",
            &[("datapath", "ovs-system"), ("zone", "default")],
        );
        if default != Some(1000.0) {
            diffs.push(format!("default zone limit served {default:?}, set 1000"));
        }
        if count < HELD as u64 {
            diffs.push(format!(
                "zone {ZONE} counts {count} connections, {HELD} are held open"
            ));
        }
        if diffs.is_empty() {
            let hits = value(
                &samples,
                "ovs_datapath_lookups_total",
                &[("datapath", "ovs-system"), ("result", "hit")],
            )
            .unwrap_or(0.0);
            if hits < 5.0 {
                bail!("only {hits} kernel lookups hit: no real traffic?\n{before}");
            }
            println!(
                "datapath: {} datapaths, {} ports: every figure equals ovs-dpctl show -s ({hits} hits); zone {ZONE}: limit {limit}, {count} connections, equal to dpctl/ct-get-limits",
                dps.len(),
                dps.iter().map(|d| d.ports.len()).sum::<usize>()
            );
            capture(&before)?;
            return Ok(());
        }
        println!("datapath: attempt {attempt}: {}", diffs.join("; "));
        last = diffs;
        std::thread::sleep(Duration::from_millis(700));
    }
    if last.is_empty() {
        bail!("ovs-dpctl never showed the same figures twice in a row");
    }
    bail!(
        "the daemon differs from ovs-dpctl:\n  {}",
        last.join("\n  ")
    )
}

/// The raw netlink replies of one read with `ovs-dpctl show -s` of the same moment, for
/// `collector/tests/datapath_fixtures.rs` and the golden /metrics.
fn capture(dpctl_before: &str) -> Result<()> {
    for _ in 0..10 {
        let before = dpctl(&["show", "-s"])?;
        let mut sock = Socket::open(Protocol::Generic, Duration::from_secs(5))?;
        sock.start_capture();
        let read = kernel::read(&mut sock)?;
        let datagrams = sock.take_capture();
        let after = dpctl(&["show", "-s"])?;
        if before != after || read.is_none() {
            continue;
        }
        let bin = dataplane_collector::netlink::capture::encode(&datagrams);
        crate::emit_fixture("datapath/read.bin", &bin);
        crate::emit_fixture("datapath/ovs-dpctl-show-s.txt", before.as_bytes());
        println!(
            "datapath: captured {} netlink datagrams ({} bytes)",
            datagrams.len(),
            bin.len()
        );
        return Ok(());
    }
    bail!("could not capture a stable read (last ovs-dpctl:\n{dpctl_before})")
}
