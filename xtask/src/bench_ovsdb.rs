//! `cargo xtask bench --only ovsdb`: the OVSDB source at 1k, 10k and 30k interfaces: how long
//! the daemon's first full sync takes (connect, `monitor`, initial rows applied), a scrape
//! versus `ovs-vsctl list interface` (what the Contiv exporter ran every 5 s) in the same run,
//! and what one statistics update of every interface costs the daemon.
//!
//! The interfaces are made in one OVSDB transaction on a private ovsdb-server with no
//! ovs-vswitchd (the database is all the source reads), each with OVN-Kubernetes-style
//! external_ids and a dozen statistics, so rows are the size they are on a real node.

use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
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

fn uptime() -> String {
    Command::new("uptime")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

const LISTEN: &str = "127.0.0.1:19478";

struct Running {
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_daemon(bin: &Path, ovs: &Ovs) -> Result<Running> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ovs.rundir().join("daemon.log"))?;
    let child = Command::new(bin)
        .args([
            "--web.rate-limit=0",
            "--web.listen-address",
            LISTEN,
            "--collector.disable-defaults",
            "--collector.ovsdb",
            "--scrape.timeout",
            "60s",
            "--log.level",
            "warn",
        ])
        .arg("--ovs.rundir")
        .arg(ovs.rundir())
        .stdin(Stdio::null())
        .stderr(log)
        .spawn()?;
    Ok(Running { child })
}

fn gauge(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(name) && l.as_bytes().get(name.len()) == Some(&b' '))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

fn info_count(body: &str) -> usize {
    body.lines()
        .filter(|l| l.starts_with("ovs_interface_info{"))
        .count()
}

/// Starts the daemon and waits for the first scrape with all `n` interfaces. Returns the
/// daemon, its own sync time (s) and the wall time from spawn to that scrape (s).
fn synced_daemon(bin: &Path, ovs: &Ovs, url: &str, n: usize) -> Result<(Running, f64, f64)> {
    let t = Instant::now();
    let d = start_daemon(bin, ovs)?;
    crate::demo::wait_healthy(url)?;
    loop {
        let (_, body) = testbed::daemon::get(&format!("{url}/metrics"))?;
        if info_count(&body) >= n {
            let wall = t.elapsed().as_secs_f64();
            let sync = gauge(&body, "dataplane_collector_ovsdb_sync_duration_seconds")
                .context("no dataplane_collector_ovsdb_sync_duration_seconds")?;
            return Ok((d, sync, wall));
        }
        if t.elapsed() > Duration::from_secs(300) {
            bail!("only {} of {n} interfaces after 300 s", info_count(&body));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Row {
    n: usize,
    transact_s: f64,
    sync_s: Vec<f64>,
    first_scrape_s: Vec<f64>,
    vsctl_ms: f64,
    curl_ms: f64,
    http_ms: f64,
    http_p90: f64,
    series: usize,
    bytes: usize,
    update_cpu_ms: f64,
    update_commit_s: f64,
    rss_mib: f64,
    /// Connections the daemon gave up (probe or error) during the whole measurement.
    dropped: usize,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn measure(bin: &Path, n: usize) -> Result<Row> {
    let mut ovs = Ovs::start()?;
    ovs.kill_vswitchd()?;
    let bridge = format!("br{}", testbed::topology::unique_tag());
    eprintln!("bench: {n} interfaces in one transaction");
    let t = Instant::now();
    ovs.add_interfaces_bulk(&bridge, n)?;
    let transact_s = t.elapsed().as_secs_f64();
    let db = format!("unix:{}", ovs.db_sock().display());
    let url = crate::demo::local_url(LISTEN);
    // Three fresh daemons: each one's first full sync.
    let mut sync_s = Vec::new();
    let mut first_scrape_s = Vec::new();
    for _ in 0..2 {
        let (d, sync, wall) = synced_daemon(bin, &ovs, &url, n)?;
        sync_s.push(sync);
        first_scrape_s.push(wall);
        drop(d);
    }
    let (d, sync, wall) = synced_daemon(bin, &ovs, &url, n)?;
    sync_s.push(sync);
    first_scrape_s.push(wall);
    let pid = d.child.id();
    let (_, body) = testbed::daemon::get(&format!("{url}/metrics"))?;
    let series = body.lines().filter(|l| !l.starts_with('#')).count();
    let runs = if n >= 30_000 { 5 } else { 10 };
    let means = crate::bench::hyperfine(
        &[
            format!("ovs-vsctl --db={db} list interface"),
            format!("curl -s -o /dev/null {url}/metrics"),
        ],
        runs,
    )?;
    let (http_ms, http_p90, bytes) = crate::bench::http_latency(LISTEN, "/metrics", runs)?;
    // What OVS's 5-second statistics push costs: every interface's statistics changed in one
    // transaction, ovsdb-server sends them all, the daemon applies them. CPU per such update.
    let rounds = 3;
    let mut cpu = 0.0;
    let mut commit = 0.0;
    for k in 0..rounds {
        let before = cpu_seconds(pid)?;
        let t = Instant::now();
        ovs.transact(vec![serde_json::json!({
            "op": "update", "table": "Interface", "where": [],
            "row": {"statistics": ["map", [["rx_bytes", 1_000_000 + k], ["tx_bytes", 2_000_000 + k]]]},
        })])?;
        commit += t.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_secs(3));
        cpu += cpu_seconds(pid)? - before;
        // Outside the CPU window: the update is in the scrape.
        let want = format!(
            "ovs_interface_rx_bytes_total{{bridge=\"{bridge}\",port=\"p{}\",interface=\"p{}\"",
            n - 1,
            n - 1
        );
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (_, body) = testbed::daemon::get(&format!("{url}/metrics"))?;
            let seen = body
                .lines()
                .find(|l| l.starts_with(&want))
                .is_some_and(|l| l.ends_with(&format!(" {}", 1_000_000 + k)));
            if seen {
                break;
            }
            if Instant::now() > deadline {
                bail!("the statistics update did not reach the scrape within 120 s");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let update_cpu_ms = cpu / f64::from(rounds) * 1000.0;
    let update_commit_s = commit / f64::from(rounds);
    let dropped = std::fs::read_to_string(ovs.rundir().join("daemon.log"))
        .unwrap_or_default()
        .matches("lost ovsdb-server")
        .count();
    let rss_mib = crate::bench::status_kib(pid, "VmHWM:")? as f64 / 1024.0;
    Ok(Row {
        n,
        transact_s,
        sync_s,
        first_scrape_s,
        vsctl_ms: means[0],
        curl_ms: means[1],
        http_ms,
        http_p90,
        series,
        bytes,
        update_cpu_ms,
        update_commit_s,
        rss_mib,
        dropped,
    })
}

pub fn run(out: &Path, sizes: &[usize]) -> Result<()> {
    if !crate::deps::is_root() {
        bail!("the benchmark runs a private Open vSwitch: run it as root");
    }
    crate::deps::ensure_packages(crate::deps::TEST_PACKAGES)?;
    crate::deps::ensure_packages(crate::deps::BENCH_PACKAGES)?;
    let bin = crate::build_release_daemon()?;
    let load_before = uptime();
    let mut rows = Vec::new();
    for &n in sizes {
        rows.push(measure(&bin, n)?);
    }
    let load_after = uptime();
    let mut s = String::new();
    writeln!(s, "{}", crate::bench::header())?;
    writeln!(s)?;
    writeln!(s, "Load: before `{load_before}`; after `{load_after}`.")?;
    writeln!(s)?;
    writeln!(
        s,
        "One bridge of N ports, one interface each (OVN-Kubernetes-style external_ids, 12 statistics), made in one transaction on a private ovsdb-server; the daemon (release build) runs only the `ovsdb` collector. Sync: the daemon's `dataplane_collector_ovsdb_sync_duration_seconds` (connect, `monitor`, every row applied), median of 3 fresh daemons; first scrape: from spawning the daemon to the first scrape with all N interfaces. Scrape columns: mean wall time, ms."
    )?;
    writeln!(s)?;
    writeln!(
        s,
        "| interfaces | sync, s | first full scrape, s | `ovs-vsctl list interface` | `curl /metrics` | HTTP GET /metrics (p90) | speed-up vs ovs-vsctl (HTTP) | series (MiB) | CPU per all-rows statistics update, ms | peak RSS, MiB |"
    )?;
    writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for r in &rows {
        writeln!(
            s,
            "| {} | {:.3} | {:.2} | {:.1} | {:.1} | {:.1} ({:.1}) | {:.0}x | {} ({:.1}) | {:.0} | {:.1} |",
            r.n,
            median(&r.sync_s),
            median(&r.first_scrape_s),
            r.vsctl_ms,
            r.curl_ms,
            r.http_ms,
            r.http_p90,
            r.vsctl_ms / r.http_ms,
            r.series,
            r.bytes as f64 / (1024.0 * 1024.0),
            r.update_cpu_ms,
            r.rss_mib,
        )?;
    }
    writeln!(s)?;
    let per_k: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{}k: {:.1} ms sync, {:.2} ms scrape",
                r.n / 1000,
                median(&r.sync_s) * 1000.0 / (r.n as f64 / 1000.0),
                r.http_ms / (r.n as f64 / 1000.0)
            )
        })
        .collect();
    writeln!(
        s,
        "Per 1,000 interfaces (linear growth keeps these flat): {}. Every sync sample, s: {}. For reference, ovsdb-server's own time: creating the rows in one transaction, s: {}; committing the all-rows statistics update, s: {}. Connections the daemon dropped during the run (echo probe unanswered, default `--ovs.db-probe-interval`): {}.",
        per_k.join("; "),
        rows.iter()
            .map(|r| format!(
                "{}k {:?}",
                r.n / 1000,
                r.sync_s
                    .iter()
                    .map(|x| (x * 1000.0).round() / 1000.0)
                    .collect::<Vec<_>>()
            ))
            .collect::<Vec<_>>()
            .join(", "),
        rows.iter()
            .map(|r| format!("{}k {:.1}", r.n / 1000, r.transact_s))
            .collect::<Vec<_>>()
            .join(", "),
        rows.iter()
            .map(|r| format!("{}k {:.2}", r.n / 1000, r.update_commit_s))
            .collect::<Vec<_>>()
            .join(", "),
        rows.iter()
            .map(|r| format!("{}k {}", r.n / 1000, r.dropped))
            .collect::<Vec<_>>()
            .join(", "),
    )?;
    print!("{s}");
    crate::bench::write_section(out, "OVSDB: interfaces versus ovs-vsctl list interface", &s)?;
    Ok(())
}
