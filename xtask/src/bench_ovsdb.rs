//! `cargo xtask bench --only ovsdb`: a scrape of the OVSDB source with 1,000 interfaces versus
//! `ovs-vsctl list interface` (what the Contiv exporter ran every 5 s), side by side, plus what
//! keeping the replica current costs the daemon while nobody scrapes.

use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testbed::ovs::Ovs;

fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11).context("utime")?.parse()?;
    let stime: f64 = fields.get(12).context("stime")?.parse()?;
    Ok((utime + stime) / 100.0)
}

pub fn run(out: &Path, interfaces: usize) -> Result<()> {
    if !crate::deps::is_root() {
        bail!("the benchmark runs a private Open vSwitch: run it as root");
    }
    crate::deps::ensure_packages(crate::deps::TEST_PACKAGES)?;
    crate::deps::ensure_packages(crate::deps::BENCH_PACKAGES)?;
    let bin = crate::build_release_daemon()?;
    let ovs = Ovs::start()?;
    let bridge = format!("br{}", testbed::topology::unique_tag());
    ovs.add_bridge(&bridge)?;
    eprintln!("bench: adding {interfaces} interfaces");
    for chunk in (0..interfaces).collect::<Vec<_>>().chunks(100) {
        let mut args: Vec<String> = Vec::new();
        for i in chunk {
            let name = format!("p{i}");
            args.extend(
                [
                    "--",
                    "add-port",
                    &bridge,
                    &name,
                    "--",
                    "set",
                    "Interface",
                    &name,
                    "type=internal",
                ]
                .iter()
                .map(|s| (*s).to_owned()),
            );
            args.push(format!("external_ids:iface-id=ns{}_pod-{i}", i % 50));
            args.push(format!("external_ids:iface-id-ver=uid-{i}"));
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ovs.vsctl(&refs)?;
    }
    let db = format!("unix:{}", ovs.db_sock().display());
    let listen = "127.0.0.1:19478";
    let mut daemon = Command::new(&bin)
        .args([
            "--web.rate-limit=0",
            "--web.listen-address",
            listen,
            "--collector.disable-defaults",
            "--collector.ovsdb",
            "--log.level",
            "warn",
        ])
        .arg("--ovs.rundir")
        .arg(ovs.rundir())
        .stdin(Stdio::null())
        .spawn()?;
    let pid = daemon.id();
    let url = crate::demo::local_url(listen);
    let result = (|| -> Result<String> {
        crate::demo::wait_healthy(&url)?;
        // Let OVS fill in every interface's statistics.
        std::thread::sleep(Duration::from_secs(6));
        let (_, body) = testbed::daemon::get(&format!("{url}/metrics"))?;
        let series = body.lines().filter(|l| !l.starts_with('#')).count();
        let info = body
            .lines()
            .filter(|l| l.starts_with("ovs_interface_info{"))
            .count();
        if info < interfaces {
            bail!("only {info} interfaces served");
        }
        let runs = 20;
        let means = crate::bench::hyperfine(
            &[
                format!("ovs-vsctl --db={db} list interface"),
                format!(
                    "ovs-vsctl --db={db} --format=json --columns=name,external_ids,statistics list interface"
                ),
                format!("curl -s -o /dev/null {url}/metrics"),
            ],
            runs,
        )?;
        let (http_ms, http_p90, bytes) = crate::bench::http_latency(listen, "/metrics", runs)?;
        let rss = crate::bench::status_kib(pid, "VmHWM:")?;
        // The cost of staying current: CPU over a minute of OVS's 5-second statistics updates,
        // with no scrapes.
        let before = cpu_seconds(pid)?;
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs(30));
        let idle_cpu = (cpu_seconds(pid)? - before) / t.elapsed().as_secs_f64() * 100.0;
        let mut s = String::new();
        writeln!(s, "{}", crate::bench::header())?;
        writeln!(s)?;
        writeln!(
            s,
            "{interfaces} OVS interfaces (internal ports, each with OVN-Kubernetes-style external_ids), one bridge; the daemon runs only the `ovsdb` collector. Mean wall time per scrape, ms:"
        )?;
        writeln!(s)?;
        writeln!(
            s,
            "| `ovs-vsctl list interface` (Contiv) | `ovs-vsctl --format=json` (3 columns) | `curl /metrics` | HTTP GET /metrics (p90) | speed-up vs Contiv (HTTP) |"
        )?;
        writeln!(s, "|---:|---:|---:|---:|---:|")?;
        writeln!(
            s,
            "| {:.1} | {:.1} | {:.1} | {:.2} ({:.2}) | {:.0}x |",
            means[0],
            means[1],
            means[2],
            http_ms,
            http_p90,
            means[0] / http_ms
        )?;
        writeln!(s)?;
        writeln!(
            s,
            "The scrape serves {series} series ({:.1} MiB) for {info} interfaces. Daemon peak RSS: {:.1} MiB. Keeping the replica current between scrapes (OVS pushes every interface's statistics every 5 s): {idle_cpu:.2} % of one core.",
            bytes as f64 / (1024.0 * 1024.0),
            rss as f64 / 1024.0
        )?;
        Ok(s)
    })();
    let _ = daemon.kill();
    let _ = daemon.wait();
    let report = result?;
    print!("{report}");
    crate::bench::write_section(
        out,
        "OVSDB: interfaces versus ovs-vsctl list interface",
        &report,
    )?;
    Ok(())
}
