//! `cargo xtask bench --only ebpf`: what the TC programs cost. Per packet from the kernel's own
//! accounting (`kernel.bpf_stats_enabled`: run_time_ns / run_cnt), and veth TCP throughput and
//! 64-byte UDP packet rate without programs, with per-port counting, and with per-flow keys,
//! side by side in one run.

use anyhow::{Context, Result, bail};
use dataplane_collector::sources::ebpf::{Config, engine::Engine};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const NS: &str = "dpc-bench-ebpf";
const HOST_IF: &str = "vdpcbench";
const HOST_IP: &str = "10.251.0.1";
const NS_IP: &str = "10.251.0.2";

fn sh(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> Result<String> {
    sh(Command::new("ip").args(args))
}

struct Setup;

impl Setup {
    fn new() -> Result<Setup> {
        let _ = ip(&["netns", "del", NS]);
        let _ = ip(&["link", "del", HOST_IF]);
        ip(&["netns", "add", NS])?;
        ip(&[
            "link", "add", HOST_IF, "type", "veth", "peer", "name", "eth0", "netns", NS,
        ])?;
        ip(&["addr", "add", &format!("{HOST_IP}/24"), "dev", HOST_IF])?;
        ip(&["link", "set", HOST_IF, "up"])?;
        ip(&[
            "-n",
            NS,
            "addr",
            "add",
            &format!("{NS_IP}/24"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", NS, "link", "set", "eth0", "up"])?;
        ip(&["-n", NS, "link", "set", "lo", "up"])?;
        Ok(Setup)
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", HOST_IF]);
        let _ = ip(&["netns", "del", NS]);
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What both benchmarks run in: root, the packages and the eBPF object, the veth pair, an
/// iperf3 server on the host end, and the kernel's per-program statistics on (turned off again
/// when dropped).
struct Bench {
    _setup: Setup,
    _server: Server,
}

impl Bench {
    fn start(what: &str) -> Result<Bench> {
        if !crate::deps::is_root() {
            bail!("{what} needs root");
        }
        crate::deps::ensure_packages(crate::deps::TEST_PACKAGES)?;
        crate::deps::ensure_packages(crate::deps::BENCH_PACKAGES)?;
        crate::ebpf::build()?;
        let setup = Setup::new()?;
        let server = Server(
            Command::new("iperf3")
                .args(["-s", "-B", HOST_IP])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("iperf3 -s")?,
        );
        std::thread::sleep(Duration::from_millis(500));
        sh(Command::new("sysctl").args(["-q", "-w", "kernel.bpf_stats_enabled=1"]))?;
        Ok(Bench {
            _setup: setup,
            _server: server,
        })
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = Command::new("sysctl")
            .args(["-q", "-w", "kernel.bpf_stats_enabled=0"])
            .status();
    }
}

fn iperf(args: &[&str]) -> Result<serde_json::Value> {
    let out = sh(Command::new("ip")
        .args(["netns", "exec", NS, "iperf3", "-J", "-c", HOST_IP])
        .args(args))?;
    Ok(serde_json::from_str(&out)?)
}

/// TCP throughput (Gbit/s) and 64-byte UDP rate (packets/s received).
fn traffic(seconds: u32) -> Result<(f64, f64)> {
    let t = seconds.to_string();
    let tcp = iperf(&["-t", &t])?;
    let gbps = tcp["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("iperf3 tcp result")?
        / 1e9;
    // 18 bytes of payload: 14 + 20 + 8 + 18 = 60 bytes on the wire, 64 with the FCS.
    let udp = iperf(&["-t", &t, "-u", "-l", "18", "-b", "0"])?;
    let sum = &udp["end"]["sum"];
    let packets = sum["packets"].as_f64().unwrap_or(0.0);
    let lost = sum["lost_packets"].as_f64().unwrap_or(0.0);
    let secs = sum["seconds"].as_f64().unwrap_or(f64::from(seconds));
    Ok((gbps, (packets - lost) / secs))
}

/// run_time_ns / run_cnt of our programs, from bpftool.
fn per_packet_ns(names: &[&str]) -> Result<BTreeMap<String, (f64, u64)>> {
    let out = sh(Command::new("bpftool").args(["-j", "prog", "show"]))?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let mut res = BTreeMap::new();
    for p in v.as_array().context("bpftool prog show")? {
        let Some(name) = p["name"].as_str() else {
            continue;
        };
        if !names.contains(&name) {
            continue;
        }
        let ns = p["run_time_ns"].as_f64().unwrap_or(0.0);
        let cnt = p["run_cnt"].as_u64().unwrap_or(0);
        if cnt > 0 {
            res.insert(name.to_owned(), (ns / cnt as f64, cnt));
        }
    }
    Ok(res)
}

fn with_programs(flows: bool, noop: bool) -> Result<std::sync::Arc<Engine>> {
    with(flows, noop, false, true)
}

/// Loads the programs; `drops`: the kfree_skb program too; `tc`: the TC programs attached to
/// the veth.
fn with(flows: bool, noop: bool, drops: bool, tc: bool) -> Result<std::sync::Arc<Engine>> {
    let engine = Engine::load(Config {
        flows,
        noop,
        max_flows: 65536,
        max_ports: dataplane_collector::sources::ebpf::DEFAULT_MAX_PORTS,
        max_ipvs_conns: dataplane_collector::sources::ebpf::DEFAULT_MAX_IPVS_CONNS,
        max_flow_series: 0,
        // The per-packet cost of the TC programs alone unless asked (the drop program has a
        // bench of its own: `--only drops`).
        drops,
        max_drop_entries: 16_384,
        max_drop_series: 0,
        pin_path: None,
        idle_timeout: Duration::from_secs(30),
        rundir: "/nonexistent".into(),
    });
    if let Some(why) = engine.unavailable() {
        bail!("eBPF programs unavailable: {why}");
    }
    if drops && let Err(why) = engine.drop_hook() {
        bail!("the drop program is not attached: {why}");
    }
    if !tc {
        return Ok(engine);
    }
    let mut want = BTreeMap::new();
    want.insert(
        HOST_IF.to_owned(),
        dataplane_collector::sources::ebpf::engine::ifindex(HOST_IF).context("ifindex")?,
    );
    let errors = engine.reconcile(&want);
    if !errors.is_empty() {
        bail!("attach: {errors:?}");
    }
    Ok(engine)
}

pub fn run(out: &Path) -> Result<()> {
    let _bench = Bench::start("the eBPF benchmark")?;
    let seconds = 5;
    let rounds = 3;
    let mut rows: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    let mut cost: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    for _ in 0..rounds {
        rows.entry("no programs")
            .or_default()
            .push(traffic(seconds)?);
        for (label, flows, noop, names) in [
            (
                "an empty program (TC itself)",
                false,
                true,
                ["noop", "noop"],
            ),
            (
                "per-port counting",
                false,
                false,
                ["port_ingress", "port_egress"],
            ),
            (
                "per-port + per-flow keys",
                true,
                false,
                ["flow_ingress", "flow_egress"],
            ),
        ] {
            let engine = with_programs(flows, noop)?;
            rows.entry(label).or_default().push(traffic(seconds)?);
            for (name, (ns, cnt)) in per_packet_ns(&names)? {
                let e = cost.entry(name).or_insert((0.0, 0));
                // Weighted by packets across rounds.
                let total = e.1 + cnt;
                e.0 = (e.0 * e.1 as f64 + ns * cnt as f64) / total as f64;
                e.1 = total;
            }
            engine.shutdown();
        }
    }

    let mean = |v: &[(f64, f64)]| {
        let n = v.len() as f64;
        (
            v.iter().map(|x| x.0).sum::<f64>() / n,
            v.iter().map(|x| x.1).sum::<f64>() / n,
        )
    };
    let (base_tcp, base_pps) = mean(&rows["no programs"]);
    let mut s = String::new();
    writeln!(s, "{}", crate::bench::header())?;
    writeln!(s)?;
    writeln!(
        s,
        "A veth pair between the host and a network namespace; the programs on the host end, both directions (TCX); iperf3 from the namespace to the host, {seconds} s per measurement, {rounds} rounds interleaved."
    )?;
    writeln!(s)?;
    writeln!(
        s,
        "| programs | TCP Gbit/s | vs none | 64-byte UDP packets/s received | vs none |"
    )?;
    writeln!(s, "|---|---:|---:|---:|---:|")?;
    for label in [
        "no programs",
        "an empty program (TC itself)",
        "per-port counting",
        "per-port + per-flow keys",
    ] {
        let (tcp, pps) = mean(&rows[label]);
        writeln!(
            s,
            "| {label} | {tcp:.2} | {:+.1} % | {pps:.0} | {:+.1} % |",
            (tcp / base_tcp - 1.0) * 100.0,
            (pps / base_pps - 1.0) * 100.0
        )?;
    }
    writeln!(s)?;
    writeln!(
        s,
        "Per-packet cost from the kernel's own accounting (`kernel.bpf_stats_enabled=1`, run_time_ns / run_cnt over every packet above):"
    )?;
    writeln!(s)?;
    writeln!(s, "| program | ns per packet | packets |")?;
    writeln!(s, "|---|---:|---:|")?;
    for (name, (ns, cnt)) in &cost {
        writeln!(s, "| `{name}` | {ns:.1} | {cnt} |")?;
    }
    print!("{s}");
    crate::bench::write_section(out, "eBPF: cost per packet and on throughput", &s)?;
    Ok(())
}

/// `cargo xtask bench --only drops`: the kfree_skb program's cost per drop (the kernel's own
/// accounting) and veth throughput with and without it while nothing is dropped, side by side
/// in one run.
pub fn run_drops(out: &Path) -> Result<()> {
    let _bench = Bench::start("the drops benchmark")?;
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_before = load();
    let (seconds, rounds, datagrams) = (5, 3, 200_000u32);
    let mut during_traffic = 0u64;
    let mut without = Vec::new();
    let mut with_drops = Vec::new();
    let mut cost = (0.0f64, 0u64);
    for _ in 0..rounds {
        without.push(traffic(seconds)?);
        let engine = with(false, false, true, false)?;
        with_drops.push(traffic(seconds)?);
        during_traffic += per_packet_ns(&["kfree_skb_btf", "kfree_skb_raw"])?
            .values()
            .map(|(_, n)| n)
            .sum::<u64>();
        // Drops: UDP from the namespace to a closed port of the host (NO_SOCKET each).
        let script = format!(
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             for _ in range({datagrams}): s.sendto(b'x',('{HOST_IP}',9))\n"
        );
        sh(Command::new("ip").args(["netns", "exec", NS, "python3", "-c", &script]))?;
        for (_, (ns, cnt)) in per_packet_ns(&["kfree_skb_btf", "kfree_skb_raw"])? {
            let total = cost.1 + cnt;
            cost.0 = (cost.0 * cost.1 as f64 + ns * cnt as f64) / total as f64;
            cost.1 = total;
        }
        engine.shutdown();
    }
    let mean = |v: &[(f64, f64)]| {
        let n = v.len() as f64;
        (
            v.iter().map(|x| x.0).sum::<f64>() / n,
            v.iter().map(|x| x.1).sum::<f64>() / n,
        )
    };
    let (base_tcp, base_pps) = mean(&without);
    let (tcp, pps) = mean(&with_drops);
    let mut s = String::new();
    writeln!(s, "{}", crate::bench::header())?;
    writeln!(s)?;
    writeln!(
        s,
        "The same veth pair as the TC benchmark, no TC programs; the drop program on the kfree_skb tracepoint (tp_btf) or not; iperf3 from the namespace to the host, {seconds} s per measurement, {rounds} rounds interleaved (TCP drops nothing; see below for UDP). Then {datagrams} UDP datagrams per round to a closed port of the host (a NO_SOCKET drop each) for the cost per drop."
    )?;
    writeln!(s)?;
    writeln!(
        s,
        "| drop program | TCP Gbit/s | vs none | 64-byte UDP packets/s received | vs none |"
    )?;
    writeln!(s, "|---|---:|---:|---:|---:|")?;
    writeln!(s, "| none | {base_tcp:.2} | | {base_pps:.0} | |")?;
    writeln!(
        s,
        "| on kfree_skb | {tcp:.2} | {:+.1} % | {pps:.0} | {:+.1} % |",
        (tcp / base_tcp - 1.0) * 100.0,
        (pps / base_pps - 1.0) * 100.0
    )?;
    writeln!(s)?;
    writeln!(
        s,
        "Drops the program counted during those throughput runs: {during_traffic} (the 64-byte UDP flood overruns the receiving socket: SOCKET_RCVBUFF drops, which the program runs for; TCP drops nothing)."
    )?;
    writeln!(s)?;
    writeln!(
        s,
        "Cost per drop (`kernel.bpf_stats_enabled=1`, run_time_ns / run_cnt): **{:.1} ns** over {} drops (goal: under 100 ns).",
        cost.0, cost.1
    )?;
    writeln!(s)?;
    writeln!(
        s,
        "Load (/proc/loadavg): before `{}`; after `{}`.",
        load_before.trim(),
        load().trim()
    )?;
    print!("{s}");
    crate::bench::write_section(
        out,
        "eBPF: the drop program, per drop and on throughput",
        &s,
    )?;
    Ok(())
}
