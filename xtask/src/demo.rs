//! `cargo xtask demo`: a private Open vSwitch with three pods and real traffic, the daemon
//! scraping it, a readable sample of what it serves. Ctrl-C cleans everything up.

use anyhow::{Context, Result, bail};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use testbed::ovs::Ovs;
use testbed::topology::Topology;

pub struct Options {
    pub listen: String,
    pub pods: usize,
    /// Stop after this long instead of waiting for Ctrl-C.
    pub duration: Option<Duration>,
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(opts: Options) -> Result<()> {
    if !crate::deps::is_root() {
        bail!("the demo creates network namespaces and an Open vSwitch: run it as root");
    }
    crate::deps::ensure_packages(crate::deps::TEST_PACKAGES)?;
    let bin = crate::build_release_daemon()?;

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("cannot install the Ctrl-C handler")?;
    }

    eprintln!(
        "demo: starting a private Open vSwitch (userspace datapath) and {} pods",
        opts.pods
    );
    let topo = Topology::build(Ovs::start()?, opts.pods)?;
    eprintln!(
        "demo: bridge {} with pods {}",
        topo.bridge,
        topo.pods
            .iter()
            .zip(&topo.ofports)
            .map(|(p, port)| format!("{} ({}, ofport {port})", p.ip, p.host_if))
            .collect::<Vec<_>>()
            .join(", ")
    );
    topo.traffic(2)?;

    let daemon = Command::new(&bin)
        .arg("--web.rate-limit=0")
        .arg("--web.listen-address")
        .arg(&opts.listen)
        .arg("--ovs.rundir")
        .arg(topo.ovs.rundir())
        .arg("--ovs.flow-actions")
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let _daemon = KillOnDrop(daemon);
    let url = local_url(&opts.listen);
    wait_healthy(&url)?;
    topo.settle()?;

    let (_, body) = testbed::daemon::get(&format!("{url}/metrics"))?;
    print_sample(&body, &topo)?;
    println!();
    println!("Serving at {url}/metrics  (also {url}/ports, {url}/flows, {url}/groups)");
    println!("Try: curl -s {url}/metrics | grep ovs_group_bucket");
    println!("Traffic keeps flowing every 2 s. Ctrl-C stops the demo and removes everything.");

    let start = Instant::now();
    let mut last_traffic = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if opts.duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        if last_traffic.elapsed() >= Duration::from_secs(2) {
            topo.traffic(1)?;
            last_traffic = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("demo: stopping and cleaning up");
    Ok(())
}

/// The URL to reach a listen address from this machine.
pub fn local_url(listen: &str) -> String {
    if listen.starts_with(':') {
        format!("http://127.0.0.1{listen}")
    } else {
        format!("http://{}", listen.replace("0.0.0.0", "127.0.0.1"))
    }
}

pub fn wait_healthy(url: &str) -> Result<()> {
    for _ in 0..100 {
        if testbed::daemon::get(&format!("{url}/healthz")).is_ok_and(|(s, _)| s == 200) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("the daemon did not answer at {url}/healthz")
}

fn print_sample(body: &str, topo: &Topology) -> Result<()> {
    let samples = testbed::prom::parse(body)?;
    let get = |name: &str, f: &dyn Fn(&testbed::prom::Sample) -> bool| -> f64 {
        samples
            .iter()
            .filter(|s| s.name == name && f(s))
            .map(|s| s.value)
            .sum()
    };
    println!();
    println!("Ports of {} (from ovs_port_*_total):", topo.bridge);
    println!(
        "  {:<12} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "port", "ofport", "rx pkts", "rx bytes", "tx pkts", "tx bytes"
    );
    for s in samples
        .iter()
        .filter(|s| s.name == "ovs_port_rx_packets_total")
    {
        let same = |x: &testbed::prom::Sample| x.label("port") == s.label("port");
        println!(
            "  {:<12} {:>6} {:>10} {:>10} {:>10} {:>10}",
            s.label("port"),
            s.label("ofport"),
            s.value,
            get("ovs_port_rx_bytes_total", &same),
            get("ovs_port_tx_packets_total", &same),
            get("ovs_port_tx_bytes_total", &same)
        );
    }
    println!();
    println!("Flows (ovs_flow_packets_total / ovs_flow_bytes_total):");
    println!(
        "  {:>5} {:>8} {:>8} {:>8} {:>9}  match -> actions",
        "table", "priority", "cookie", "packets", "bytes"
    );
    for s in samples
        .iter()
        .filter(|s| s.name == "ovs_flow_packets_total")
    {
        let same = |x: &testbed::prom::Sample| {
            x.label("table") == s.label("table")
                && x.label("priority") == s.label("priority")
                && x.label("match") == s.label("match")
        };
        println!(
            "  {:>5} {:>8} {:>8} {:>8} {:>9}  {} -> {}",
            s.label("table"),
            s.label("priority"),
            s.label("cookie"),
            s.value,
            get("ovs_flow_bytes_total", &same),
            if s.label("match").is_empty() {
                "(any)"
            } else {
                s.label("match")
            },
            s.label("actions")
        );
    }
    println!();
    println!(
        "Select group 1 (service VIP {}) buckets:",
        testbed::topology::VIP
    );
    for s in samples
        .iter()
        .filter(|s| s.name == "ovs_group_bucket_packets_total")
    {
        println!("  bucket {}: {} packets", s.label("bucket"), s.value);
    }
    println!();
    println!("A few raw lines:");
    for line in body.lines().filter(|l| {
        l.starts_with("ovs_openflow_up")
            || l.starts_with("dataplane_collector_scrape_")
            || l.starts_with("ovs_table_lookups_total")
            || l.starts_with("ovs_group_packets_total")
    }) {
        println!("  {line}");
    }
    Ok(())
}
