//! `cargo xtask bench --only vswitchd`: the `vswitchd` and `datapath` sources per scrape
//! against what OVN-Kubernetes does for the same figures (go-controller/pkg/metrics/ovs.go runs
//! `ovs-appctl` once per command on a timer), side by side in one run, on a private
//! ovs-vswitchd with the userspace datapath: a bridge of internal ports and an LACP bond of two
//! veths (so `bond/show` and `lacp/show` have something to say).
//!
//! Measured: each source's own time (`dataplane_collector_scrape_duration_seconds`, median of
//! the scrapes), a whole `GET /metrics` of the two sources over HTTP (what Prometheus waits
//! for), and the same commands as processes: `ovs-appctl -t <socket> CMD` for every command the
//! two sources send, one after the other (a shell script; the shell's start is in the figure,
//! and is a small part of it).

use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use testbed::ovs::Ovs;

const LISTEN: &str = "127.0.0.1:19479";
const PORTS: usize = 16;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn uptime() -> String {
    Command::new("uptime")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn duration_of(body: &str, collector: &str) -> Option<f64> {
    let key = format!("dataplane_collector_scrape_duration_seconds{{collector=\"{collector}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
}

fn setup(ovs: &Ovs) -> Result<()> {
    ovs.add_bridge("brb")?;
    for i in 0..PORTS {
        let p = format!("ip{i}");
        ovs.vsctl(&[
            "add-port",
            "brb",
            &p,
            "--",
            "set",
            "interface",
            &p,
            "type=internal",
        ])?;
    }
    // An LACP bond of two veths whose peers stay outside the switch.
    let ns = ovs.switch_netns().map(str::to_owned);
    let ip = |args: &[&str]| -> Result<()> {
        let mut c = Command::new("ip");
        if let Some(ns) = &ns {
            c.args(["-n", ns]);
        }
        let st = c.args(args).status()?;
        if !st.success() {
            bail!("ip {} failed", args.join(" "));
        }
        Ok(())
    };
    for i in 0..2 {
        let (a, b) = (format!("bnd{i}"), format!("bnd{i}p"));
        ip(&["link", "add", &a, "type", "veth", "peer", "name", &b])?;
        ip(&["link", "set", &a, "up"])?;
        ip(&["link", "set", &b, "up"])?;
    }
    ovs.vsctl(&[
        "add-bond",
        "brb",
        "bond0",
        "bnd0",
        "bnd1",
        "lacp=active",
        "--",
        "set",
        "port",
        "bond0",
        "other_config:lacp-time=fast",
    ])?;
    ovs.add_flow("brb", "priority=0,actions=NORMAL")?;
    Ok(())
}

/// What the daemon took, with one setting.
struct Scrapes {
    vswitchd_ms: f64,
    datapath_ms: f64,
    http_ms: f64,
    http_p90: f64,
    bytes: usize,
    series: usize,
}

struct Result_ {
    /// The defaults, then `--collector.datapath.userspace-zone-limits=false`.
    rows: Vec<(&'static str, Scrapes)>,
    script_ms: f64,
    curl_ms: f64,
    commands: usize,
}

/// The daemon with the two sources only (and `extra`), once it answers.
fn start(bin: &Path, ovs: &Ovs, extra: &[&str]) -> Result<Running> {
    let log = std::fs::File::create(ovs.rundir().join("daemon.log"))?;
    let child = Command::new(bin)
        .args([
            "--web.rate-limit=0",
            "--web.listen-address",
            LISTEN,
            "--collector.disable-defaults",
            "--collector.vswitchd",
            "--collector.datapath",
            "--log.level",
            "warn",
        ])
        .args(extra)
        .arg("--ovs.rundir")
        .arg(ovs.rundir())
        .stdin(Stdio::null())
        .stderr(log)
        .spawn()?;
    let d = Running(child);
    crate::demo::wait_healthy(&crate::demo::local_url(LISTEN))?;
    Ok(d)
}

fn scrapes(bin: &Path, ovs: &Ovs, extra: &[&str]) -> Result<Scrapes> {
    let _d = start(bin, ovs, extra)?;
    let url = crate::demo::local_url(LISTEN);
    let runs = 200;
    let (mut v, mut d) = (Vec::new(), Vec::new());
    let mut series = 0;
    for _ in 0..runs {
        let (status, body) = testbed::daemon::get(&format!("{url}/metrics"))?;
        if status != 200 {
            bail!("/metrics answered {status}");
        }
        for (c, out) in [("vswitchd", &mut v), ("datapath", &mut d)] {
            if !body.contains(&format!(
                "dataplane_collector_scrape_success{{collector=\"{c}\"}} 1"
            )) {
                bail!("the {c} source did not succeed:\n{body}");
            }
            out.push(duration_of(&body, c).context("no scrape duration")? * 1000.0);
        }
        series = body.lines().filter(|l| !l.starts_with('#')).count();
    }
    let (http_ms, http_p90, bytes) = crate::bench::http_latency(LISTEN, "/metrics", runs)?;
    Ok(Scrapes {
        vswitchd_ms: median(&mut v),
        datapath_ms: median(&mut d),
        http_ms,
        http_p90,
        bytes,
        series,
    })
}

fn measure(bin: &Path) -> Result<Result_> {
    let ovs = Ovs::start()?;
    setup(&ovs)?;
    let ctl = ovs
        .vswitchd_ctl()
        .context("no ovs-vswitchd control socket")?;
    // Let the bond negotiate and the counters settle.
    std::thread::sleep(Duration::from_secs(3));
    let rows = vec![
        ("defaults", scrapes(bin, &ovs, &[])?),
        (
            "`--collector.datapath.userspace-zone-limits=false`",
            scrapes(
                bin,
                &ovs,
                &["--collector.datapath.userspace-zone-limits=false"],
            )?,
        ),
    ];
    let url = crate::demo::local_url(LISTEN);
    // A daemon for the curl column.
    let _d = start(bin, &ovs, &[])?;

    // The same figures as OVN-Kubernetes reads them: a process per command.
    let ctl = ctl.display().to_string();
    let dp = "netdev@ovs-netdev";
    let commands: Vec<String> = [
        "version".to_owned(),
        "coverage/show".to_owned(),
        "upcall/show".to_owned(),
        "memory/show".to_owned(),
        "dpif-netdev/pmd-stats-show".to_owned(),
        format!("dpctl/ct-get-nconns {dp}"),
        format!("dpctl/ct-get-maxconns {dp}"),
        "bond/show".to_owned(),
        "lacp/show".to_owned(),
        // The datapath source's read of the userspace datapath.
        "dpctl/show -s".to_owned(),
        format!("dpctl/ct-get-limits {dp}"),
    ]
    .into_iter()
    .map(|c| format!("ovs-appctl -t {ctl} {c} >/dev/null"))
    .collect();
    let script = ovs.rundir().join("ovn-kubernetes-way.sh");
    std::fs::write(&script, format!("set -e\n{}\n", commands.join("\n")))?;
    let st = Command::new("bash").arg(&script).status()?;
    if !st.success() {
        bail!("the ovs-appctl script failed");
    }
    let means = crate::bench::hyperfine(
        &[
            format!("bash {}", script.display()),
            format!("curl -s -o /dev/null {url}/metrics"),
        ],
        30,
    )?;
    Ok(Result_ {
        rows,
        script_ms: means.first().copied().unwrap_or(f64::NAN),
        curl_ms: means.get(1).copied().unwrap_or(f64::NAN),
        commands: commands.len(),
    })
}

pub fn run(out: &Path) -> Result<()> {
    if !crate::deps::is_root() {
        bail!("the benchmark runs a private Open vSwitch: run it as root");
    }
    crate::deps::ensure_packages(crate::deps::TEST_PACKAGES)?;
    crate::deps::ensure_packages(crate::deps::BENCH_PACKAGES)?;
    let bin = crate::build_release_daemon()?;
    let load_before = uptime();
    let r = measure(&bin)?;
    let load_after = uptime();
    let mut s = String::new();
    writeln!(s, "{}", crate::bench::header())?;
    writeln!(s)?;
    writeln!(s, "Load: before `{load_before}`; after `{load_after}`.")?;
    writeln!(s)?;
    writeln!(
        s,
        "One bridge of {PORTS} internal ports and an LACP bond of two veths on a private ovs-vswitchd (userspace datapath); the daemon (release build) runs the `vswitchd` and `datapath` collectors only, each sending its commands pipelined on one connection (one round trip each). Source times: the daemon's `dataplane_collector_scrape_duration_seconds`, median of 200 scrapes (the two sources run concurrently, and ovs-vswitchd answers both from its one main thread). HTTP: `GET /metrics` on a new TCP connection each, mean and p90 of 200. The OVN-Kubernetes way: the {} `ovs-appctl -t <socket> CMD` processes for the same figures, run one after the other by a bash script, mean of 30 runs (hyperfine).",
        r.commands
    )?;
    writeln!(s)?;
    writeln!(
        s,
        "| daemon | `vswitchd` source, ms | `datapath` source, ms | HTTP GET /metrics (p90), ms | series (bytes) | `ovs-appctl` x {}, ms | speed-up (HTTP vs processes) |",
        r.commands
    )?;
    writeln!(s, "|---|---:|---:|---:|---:|---:|---:|")?;
    for (label, x) in &r.rows {
        writeln!(
            s,
            "| {label} | {:.3} | {:.3} | {:.3} ({:.3}) | {} ({}) | {:.1} | {:.0}x |",
            x.vswitchd_ms,
            x.datapath_ms,
            x.http_ms,
            x.http_p90,
            x.series,
            x.bytes,
            r.script_ms,
            r.script_ms / x.http_ms
        )?;
    }
    writeln!(s)?;
    writeln!(
        s,
        "`curl /metrics` (a process, like each `ovs-appctl`): {:.2} ms.",
        r.curl_ms
    )?;
    writeln!(s)?;
    let default = &r.rows[0].1;
    let goal = if default.http_ms < 2.0 && r.script_ms / default.http_ms >= 20.0 {
        "met"
    } else {
        "missed"
    };
    writeln!(
        s,
        "Goal (issue 13), with the defaults: at least 20x faster than the processes and under 2 ms per scrape on the host: {goal}."
    )?;
    println!("{s}");
    crate::bench::write_section(
        out,
        "ovs-vswitchd and datapaths: a scrape versus ovs-appctl processes",
        &s,
    )
}
