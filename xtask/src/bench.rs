//! `cargo xtask bench`: the daemon against the tools users run today, side by side in one run,
//! on a private Open vSwitch; results go to BENCHMARKS.md.
//!
//! Measured per flow-table size:
//! - `ovs-ofctl dump-flows` (what the seed exporter spawns on every scrape), and `-O OpenFlow13`;
//! - `curl` of our `/flows` (a whole process per scrape, like ovs-ofctl), plain and gzip;
//! - in-process HTTP latency of `/flows` (what Prometheus sees, no process start);
//! - the floor: how long ovs-vswitchd itself takes to send the flow-stats reply (our client
//!   reading the raw bytes, decoding nothing);
//! - the daemon's peak RSS (VmHWM) after scraping `/metrics`, and ovs-ofctl's;
//! - live `flows --bridge` (the CLI reading the bridge itself) and the flow API end to end
//!   (`curl /api/v1/flows?bridge=`), whole commands against `ovs-ofctl -O OpenFlow13
//!   dump-flows`, with their peak RSS.

use anyhow::{Context, Result, bail};
use dataplane_collector::openflow::message::MultipartType;
use dataplane_collector::openflow::{Client, Endpoint};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testbed::ovs::Ovs;

struct Row {
    flows: usize,
    ofctl_ms: f64,
    ofctl13_ms: f64,
    curl_ms: f64,
    curl_gzip_ms: f64,
    http_ms: f64,
    http_p90_ms: f64,
    floor_ms: f64,
    daemon_fetch_ms: f64,
    ofctl_rss_kib: u64,
    daemon_rss_kib: u64,
    body_bytes: usize,
    /// `flows --bridge B --format text`, whole command.
    cli_ms: f64,
    cli_rss_kib: u64,
    /// `flows --bridge B --format json`, whole command.
    cli_json_ms: f64,
    /// `curl /api/v1/flows?bridge=B`.
    api_ms: f64,
}

/// Flows that look like a CNI's: per-port classification, per-pod forwarding, per-service
/// conntrack, established-connection rewrites; cookies per table and owner.
fn flow_lines(n: usize) -> String {
    let mut s = String::with_capacity(n * 100);
    for i in 0..n {
        let (a, b) = ((i >> 8) & 0xff, i & 0xff);
        let cookie = ((i % 4) << 16) | (i % 64);
        let _ = match i % 4 {
            0 => writeln!(
                s,
                "table=0,priority=100,cookie={cookie:#x},in_port={},dl_src=02:00:00:{:02x}:{a:02x}:{b:02x},actions=resubmit(,1)",
                1 + i % 3,
                (i >> 16) & 0xff
            ),
            1 => writeln!(
                s,
                "table=1,priority=200,cookie={cookie:#x},ip,nw_dst=10.{}.{a}.{b},actions=mod_dl_dst:02:00:00:00:{a:02x}:{b:02x},output:{}",
                (i >> 16) & 0xff,
                1 + i % 3
            ),
            2 => writeln!(
                s,
                "table=2,priority=300,cookie={cookie:#x},tcp,nw_dst=10.96.{a}.{b},tp_dst={},actions=ct(commit,table=3,zone=1,nat(dst=10.244.{a}.{b}:8080))",
                80 + (i >> 16)
            ),
            _ => writeln!(
                s,
                "table=3,priority=400,cookie={cookie:#x},ct_state=+trk+est,ip,nw_src=10.244.{a}.{b},reg0=0x{:x}/0xffff,actions=output:{}",
                i >> 16,
                1 + i % 3
            ),
        };
    }
    s
}

/// hyperfine's mean, in ms, for each command.
pub fn hyperfine(cmds: &[String], runs: usize) -> Result<Vec<f64>> {
    let json = std::env::temp_dir().join(format!("dpc-hyperfine-{}.json", std::process::id()));
    let mut c = Command::new("hyperfine");
    c.args([
        "-N",
        "--warmup",
        "3",
        "--runs",
        &runs.to_string(),
        "--style",
        "none",
    ])
    .arg("--export-json")
    .arg(&json)
    .args(cmds)
    .stdout(Stdio::null());
    let status = c.status().context("cannot run hyperfine")?;
    if !status.success() {
        bail!("hyperfine failed");
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    let _ = std::fs::remove_file(&json);
    let results = v["results"].as_array().context("hyperfine json")?;
    Ok(results
        .iter()
        .map(|r| r["mean"].as_f64().unwrap_or(f64::NAN) * 1000.0)
        .collect())
}

fn peak_rss_of(cmd: &[&str]) -> Result<u64> {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .args(cmd)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("cannot run /usr/bin/time (apt-get install time)")?;
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("no RSS from /usr/bin/time: {text}"))
}

pub fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("{key} of {pid}"))
}

/// Time for ovs-vswitchd to answer a flow-stats request, bytes only (median of `runs`).
fn floor_ms(mgmt: &Path, runs: usize) -> Result<f64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = rt.block_on(async {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            let mut c = Client::connect(&Endpoint::Unix(mgmt.to_path_buf()), deadline).await?;
            let start = Instant::now();
            let mut bytes = 0usize;
            c.multipart(MultipartType::Flow, &mut |b| {
                bytes += b.len();
                Ok(())
            })
            .await?;
            anyhow::Ok(start.elapsed())
        })?;
        times.push(t.as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// GET over a raw socket, reading to the end: time to the last byte, the way Prometheus waits
/// for a scrape, with no client-side work to speak of (xtask is not an optimized build).
fn raw_get(addr: &str, path: &str) -> Result<usize> {
    use std::io::{Read as _, Write as _};
    let mut sock = std::net::TcpStream::connect(addr)?;
    write!(
        sock,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    let mut head = Vec::new();
    loop {
        let n = sock.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if head.len() < 16 {
            head.extend_from_slice(&buf[..n.min(16)]);
        }
        total += n;
    }
    if !head.starts_with(b"HTTP/1.1 200") {
        bail!("GET {path}: {}", String::from_utf8_lossy(&head));
    }
    Ok(total)
}

pub fn http_latency(addr: &str, path: &str, runs: usize) -> Result<(f64, f64, usize)> {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..3 {
        raw_get(addr, path)?;
    }
    for _ in 0..runs {
        let start = Instant::now();
        size = raw_get(addr, path)?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let p90 = times[(times.len() * 9 / 10).min(times.len() - 1)];
    Ok((mean, p90, size))
}

fn scrape_duration_ms(body: &str) -> f64 {
    body.lines()
        .find(|l| {
            l.starts_with("dataplane_collector_scrape_duration_seconds{collector=\"openflow\"}")
        })
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse::<f64>().ok())
        .map_or(f64::NAN, |s| s * 1000.0)
}

pub fn run(sizes: &[usize], out: &Path) -> Result<()> {
    if !crate::deps::is_root() {
        bail!("the benchmark runs a private Open vSwitch in a network namespace: run it as root");
    }
    crate::deps::ensure_packages(crate::deps::TEST_PACKAGES)?;
    crate::deps::ensure_packages(crate::deps::BENCH_PACKAGES)?;
    let bin = crate::build_release_daemon()?;
    let ovs = Ovs::start()?;
    let bridge = format!("br{}", testbed::topology::unique_tag());
    ovs.add_bridge(&bridge)?;
    let mgmt = ovs.mgmt(&bridge);
    let mgmt_target = format!("unix:{}", mgmt.display());

    let port = 19477;
    let listen = format!("127.0.0.1:{port}");
    let mut daemon = Command::new(&bin)
        .args([
            "--web.rate-limit=0",
            "--web.listen-address",
            &listen,
            "--ovs.max-flow-series",
            "0",
            "--log.level",
            "warn",
            "--web.enable-flow-api",
        ])
        .arg("--ovs.rundir")
        .arg(ovs.rundir())
        .stdin(Stdio::null())
        .spawn()?;
    let pid = daemon.id();
    let url = crate::demo::local_url(&listen);
    let result = (|| -> Result<Vec<Row>> {
        crate::demo::wait_healthy(&url)?;
        let mut rows = Vec::new();
        for &n in sizes {
            eprintln!("bench: {n} flows");
            ovs.ofctl(&[], "del-flows", &bridge, &[])?;
            let file = std::env::temp_dir().join(format!("dpc-bench-flows-{n}.txt"));
            std::fs::write(&file, flow_lines(n))?;
            ovs.add_flows_file(&bridge, &file)?;
            let _ = std::fs::remove_file(&file);
            let runs = if n >= 100_000 { 10 } else { 30 };
            let flows_url = format!("{url}/flows");
            let means = hyperfine(
                &[
                    format!("ovs-ofctl dump-flows {mgmt_target}"),
                    format!("ovs-ofctl -O OpenFlow13 dump-flows {mgmt_target}"),
                    format!("curl -s -o /dev/null {flows_url}"),
                    format!("curl -s --compressed -o /dev/null {flows_url}"),
                ],
                runs,
            )?;
            let rundir = ovs.rundir().display().to_string();
            let cli = |format: &str| {
                format!(
                    "{} flows --ovs.rundir {rundir} --bridge {bridge} --format {format}",
                    bin.display()
                )
            };
            let api_url = format!("{url}/api/v1/flows?bridge={bridge}");
            let live = hyperfine(
                // No shell (`-N`): hyperfine discards what the commands print.
                &[
                    cli("text"),
                    cli("json"),
                    format!("curl -s -o /dev/null {api_url}"),
                ],
                runs,
            )?;
            let cli_text = cli("text");
            let cli_args: Vec<&str> = cli_text.split_whitespace().collect();
            let cli_rss_kib = peak_rss_of(&cli_args)?;
            let (http_ms, http_p90_ms, body_bytes) = http_latency(&listen, "/flows", runs)?;
            let floor = floor_ms(&mgmt, runs)?;
            let (_, body) = testbed::daemon::get(&format!("{url}/flows"))?;
            let daemon_fetch_ms = scrape_duration_ms(&body);
            let ofctl_rss_kib = peak_rss_of(&["ovs-ofctl", "dump-flows", &mgmt_target])?;
            for _ in 0..3 {
                raw_get(&listen, "/metrics")?;
            }
            let daemon_rss_kib = status_kib(pid, "VmHWM:")?;
            rows.push(Row {
                flows: n,
                ofctl_ms: means[0],
                ofctl13_ms: means[1],
                curl_ms: means[2],
                curl_gzip_ms: means[3],
                http_ms,
                http_p90_ms,
                floor_ms: floor,
                daemon_fetch_ms,
                ofctl_rss_kib,
                daemon_rss_kib,
                body_bytes,
                cli_ms: live[0],
                cli_rss_kib,
                cli_json_ms: live[1],
                api_ms: live[2],
            });
        }
        Ok(rows)
    })();
    let _ = daemon.kill();
    let _ = daemon.wait();
    let rows = result?;
    let report = render(&rows)?;
    print!("{report}");
    write_section(out, "OpenFlow: /flows versus ovs-ofctl dump-flows", &report)?;
    let live = render_live(&rows)?;
    print!("{live}");
    write_section(
        out,
        "Flows, live: flows --bridge and the flow API versus ovs-ofctl",
        &live,
    )?;
    eprintln!("bench: wrote {}", out.display());
    Ok(())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':').map(|(_, v)| v.trim().to_owned()))
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores ({cpu}), kernel {}", kernel.trim())
}

/// The line that says when, where and on what a benchmark ran.
pub fn header() -> String {
    let ovs_version = Command::new("ovs-vswitchd")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let rev = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(crate::workspace_root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!(
        "Measured by `cargo xtask bench` on {date}, commit {rev}; {}; {ovs_version}, userspace datapath, private instance.",
        machine()
    )
}

fn render(rows: &[Row]) -> Result<String> {
    let mut s = String::new();
    writeln!(s, "{}", header())?;
    writeln!(s)?;
    writeln!(
        s,
        "Mean wall time per scrape, ms (hyperfine for whole commands; the HTTP column is a GET from an in-process client, i.e. what Prometheus waits for):"
    )?;
    writeln!(s)?;
    writeln!(
        s,
        "| flows | `ovs-ofctl dump-flows` (seed) | `ovs-ofctl -O OpenFlow13` | `curl /flows` | `curl --compressed /flows` | HTTP GET /flows (p90) | speed-up vs seed (curl / HTTP) | ovs-vswitchd reply alone | our fetch + decode |"
    )?;
    writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for r in rows {
        writeln!(
            s,
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} ({:.1}) | {:.1}x / {:.1}x | {:.1} | {:.1} |",
            r.flows,
            r.ofctl_ms,
            r.ofctl13_ms,
            r.curl_ms,
            r.curl_gzip_ms,
            r.http_ms,
            r.http_p90_ms,
            r.ofctl_ms / r.curl_ms,
            r.ofctl_ms / r.http_ms,
            r.floor_ms,
            r.daemon_fetch_ms
        )?;
    }
    writeln!(s)?;
    writeln!(
        s,
        "Memory: peak RSS (VmHWM) of the daemon after scraping `/metrics` with every flow as its own series (`--ovs.max-flow-series 0`), versus one `ovs-ofctl dump-flows`:"
    )?;
    writeln!(s)?;
    writeln!(
        s,
        "| flows | daemon peak RSS | ovs-ofctl peak RSS | /flows body |"
    )?;
    writeln!(s, "|---:|---:|---:|---:|")?;
    for r in rows {
        writeln!(
            s,
            "| {} | {:.1} MiB | {:.1} MiB | {:.1} MiB |",
            r.flows,
            r.daemon_rss_kib as f64 / 1024.0,
            r.ofctl_rss_kib as f64 / 1024.0,
            r.body_bytes as f64 / (1024.0 * 1024.0)
        )?;
    }
    Ok(s)
}

/// The live `flows` table: the CLI and the flow API against `ovs-ofctl -O OpenFlow13`.
fn render_live(rows: &[Row]) -> Result<String> {
    let mut s = String::new();
    writeln!(s, "{}", header())?;
    writeln!(s)?;
    writeln!(
        s,
        "Whole commands timed by hyperfine (process start included), mean wall ms; the goal is `flows --bridge` within `ovs-ofctl -O OpenFlow13 dump-flows` + 20%. Peak RSS by `/usr/bin/time`:"
    )?;
    writeln!(s)?;
    writeln!(
        s,
        "| flows | `ovs-ofctl -O OpenFlow13 dump-flows` | `flows --bridge --format text` | ratio | `flows --bridge --format json` | `curl /api/v1/flows?bridge=` | ovs-ofctl peak RSS | `flows --bridge` peak RSS |"
    )?;
    writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for r in rows {
        writeln!(
            s,
            "| {} | {:.1} | {:.1} | {:.2}x | {:.1} | {:.1} | {:.1} MiB | {:.1} MiB |",
            r.flows,
            r.ofctl13_ms,
            r.cli_ms,
            r.cli_ms / r.ofctl13_ms,
            r.cli_json_ms,
            r.api_ms,
            r.ofctl_rss_kib as f64 / 1024.0,
            r.cli_rss_kib as f64 / 1024.0
        )?;
    }
    Ok(s)
}

/// Replaces (or appends) the `## title` section of BENCHMARKS.md, keeping the others.
pub fn write_section(path: &Path, title: &str, body: &str) -> Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_else(|_| {
        "# Benchmarks\n\nEvery number here is written by `cargo xtask bench`; the prose under each table is ours.\n".to_owned()
    });
    let header = format!("## {title}\n");
    let generated_start = "<!-- generated: start -->\n";
    let generated_end = "<!-- generated: end -->\n";
    let block = format!("{generated_start}{body}{generated_end}");
    let out = if let Some(at) = existing.find(&header) {
        let after = &existing[at + header.len()..];
        match (after.find(generated_start), after.find(generated_end)) {
            (Some(a), Some(b)) if a < b => format!(
                "{}{header}{}{block}{}",
                &existing[..at],
                &after[..a],
                &after[b + generated_end.len()..]
            ),
            _ => format!("{}{header}\n{block}{after}", &existing[..at]),
        }
    } else {
        format!(
            "{}\n{header}\n{block}",
            existing.trim_end_matches('\n').to_owned() + "\n"
        )
    };
    std::fs::write(path, out)?;
    Ok(())
}
