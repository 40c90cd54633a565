//! `cargo xtask bench --only flows`: the `flows` subcommand's parse + filter speed against
//! OVS's Python `ovs.flow` and ovs-dbg's `ofparse` on the same file.
//!
//! The file is a real `ovs-ofctl -O OpenFlow13 dump-flows` of 100,000 flows shaped like a CNI's
//! (per-port classification, per-pod forwarding, per-service conntrack with NAT, learned
//! rules), taken from a private Open vSwitch. Each tool reads the whole file, parses every
//! flow and keeps those that pass the same filter, and prints them as JSON (two flows pass,
//! so printing costs nothing to speak of). Whole commands, timed by hyperfine: process start
//! and reading the file count for everyone.

use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use testbed::ovs::Ovs;

const FLOWS: usize = 100_000;
/// Selects two flows of the 100,000: every flow is parsed and tested, almost none printed.
const FILTER: &str = "tcp and nw_dst~=10.96.1.6";

/// OVS's own library, the way its users script it: parse each line, evaluate the filter.
const OVS_FLOW_SCRIPT: &str = r#"
import json, sys
from ovs.flow.ofp import OFPFlow
from ovs.flow.filter import OFFilter
from ovs.flow.decoders import FlowEncoder
flt = OFFilter(sys.argv[2])
out = []
with open(sys.argv[1]) as f:
    for line in f:
        s = line.strip()
        if not s or s.startswith("OFPST_") or s.startswith("NXST_"):
            continue
        flow = OFPFlow(line)
        if flt.evaluate(flow):
            out.append(flow.dict())
json.dump(out, sys.stdout, cls=FlowEncoder)
"#;

fn flow_lines(n: usize) -> String {
    let mut s = String::with_capacity(n * 160);
    for i in 0..n {
        let (a, b) = ((i >> 8) & 0xff, i & 0xff);
        let cookie = ((i % 4) << 16) | (i % 64);
        let _ = match i % 4 {
            0 => writeln!(
                s,
                "table=0,priority=100,cookie={cookie:#x},in_port={},dl_src=02:00:00:{:02x}:{a:02x}:{b:02x},actions=load:0x{:x}->NXM_NX_REG0[0..15],resubmit(,1)",
                1 + i % 3,
                (i >> 16) & 0xff,
                i & 0xffff
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
                "table=3,priority=400,cookie={cookie:#x},ct_state=+trk+est,ip,nw_src=10.244.{a}.{b},reg0=0x{:x}/0xffff,actions=learn(table=4,idle_timeout=60,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),output:{}",
                i >> 16,
                1 + i % 3
            ),
        };
    }
    s
}

/// The dump of a real switch holding `FLOWS` flows.
fn dump_file(dir: &Path) -> Result<PathBuf> {
    let ovs = Ovs::start()?;
    let bridge = format!("br{}", testbed::topology::unique_tag());
    ovs.add_bridge(&bridge)?;
    let src = dir.join("flows.txt");
    std::fs::write(&src, flow_lines(FLOWS))?;
    ovs.add_flows_file(&bridge, &src)?;
    let dump = ovs.ofctl(&["-O", "OpenFlow13"], "dump-flows", &bridge, &[])?;
    let lines = dump.lines().filter(|l| l.contains("actions=")).count();
    if lines != FLOWS {
        bail!("the dump has {lines} flows, not {FLOWS}");
    }
    let path = dir.join("dump-flows-100k.txt");
    std::fs::write(&path, dump)?;
    Ok(path)
}

fn version(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The number of flows each command printed (all must agree).
fn matched(cmd: &[String]) -> Result<usize> {
    let out = Command::new(&cmd[0])
        .args(&cmd[1..])
        .output()
        .with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).with_context(|| format!("{cmd:?} printed no JSON"))?;
    // ofparse prints {"file": [flows]}, the others an array.
    Ok(match &v {
        serde_json::Value::Array(a) => a.len(),
        serde_json::Value::Object(o) => o.values().map(|f| f.as_array().map_or(0, Vec::len)).sum(),
        _ => 0,
    })
}

/// hyperfine's mean wall, user and system time of one command, in ms.
fn timed(cmd: &str, runs: usize) -> Result<(f64, f64, f64)> {
    let json = std::env::temp_dir().join(format!("dpc-bench-flows-{}.json", std::process::id()));
    let status = Command::new("hyperfine")
        .args([
            "-N",
            "--warmup",
            "2",
            "--runs",
            &runs.to_string(),
            "--style",
            "none",
        ])
        .arg("--export-json")
        .arg(&json)
        .arg(cmd)
        .stdout(std::process::Stdio::null())
        .status()
        .context("cannot run hyperfine")?;
    if !status.success() {
        bail!("hyperfine failed on {cmd}");
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    let _ = std::fs::remove_file(&json);
    let r = &v["results"][0];
    let ms = |k: &str| r[k].as_f64().unwrap_or(f64::NAN) * 1000.0;
    Ok((ms("mean"), ms("user"), ms("system")))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}

fn build_release() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "dataplane-collector"])
        .current_dir(crate::workspace_root())
        .status()?;
    if !status.success() {
        bail!("cargo build --release failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"));
    Ok(target.join("release/dataplane-collector"))
}

/// Measures and writes the section of BENCHMARKS.md.
pub fn run(out: &Path) -> Result<()> {
    if !crate::deps::is_root() {
        bail!("the benchmark takes its dump from a private Open vSwitch: run it as root");
    }
    crate::deps::ensure_packages(crate::deps::TEST_PACKAGES)?;
    crate::deps::ensure_packages(crate::deps::BENCH_PACKAGES)?;
    // ovs.flow from the tests' venv (pinned there); ovs-dbg, for this benchmark only, into the
    // same venv.
    let venv = crate::deps::ensure_venv()?;
    let python = venv.join("bin/python3").display().to_string();
    let ofparse_bin = venv.join("bin/ovs-ofparse");
    let ofparse_ok = crate::deps::ensure_pip_in(&venv, "ovs-dbg", "ovs_dbg.ofparse").is_ok()
        && ofparse_bin.exists();
    let bin = build_release()?;
    let dir = tempfile_dir()?;
    eprintln!("bench flows: dumping {FLOWS} flows from a private Open vSwitch");
    let file = dump_file(&dir)?;
    let bytes = std::fs::metadata(&file)?.len();
    let script = dir.join("ovs_flow_filter.py");
    std::fs::write(&script, OVS_FLOW_SCRIPT)?;
    let f = file.display().to_string();

    let ours = vec![
        bin.display().to_string(),
        "flows".into(),
        "-i".into(),
        f.clone(),
        "--filter".into(),
        FILTER.into(),
        "--format".into(),
        "json".into(),
    ];
    let py = vec![
        python.clone(),
        script.display().to_string(),
        f.clone(),
        FILTER.into(),
    ];
    let ofparse: Vec<String> = vec![
        ofparse_bin.display().to_string(),
        "-i".into(),
        f.clone(),
        "--filter".into(),
        FILTER.into(),
        "openflow".into(),
        "json".into(),
    ];
    let mut cmds = vec![ours.clone(), py.clone()];
    if ofparse_ok {
        cmds.push(ofparse.clone());
    }
    let counts: Vec<usize> = cmds.iter().map(|c| matched(c)).collect::<Result<_>>()?;
    if counts.iter().any(|&c| c != counts[0]) || counts[0] == 0 {
        bail!("the tools disagree on the flows that pass {FILTER:?}: {counts:?}");
    }
    let quote = |c: &[String]| {
        c.iter()
            .map(|a| {
                if a.contains(' ') {
                    format!("'{a}'")
                } else {
                    a.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    eprintln!("bench flows: timing");
    let load_before = load_average();
    let ours_t = timed(&quote(&ours), 20)?;
    let py_t = timed(&quote(&py), 3)?;
    let ofparse_t = if ofparse_ok {
        Some(timed(&quote(&ofparse), 3)?)
    } else {
        None
    };
    let load_after = load_average();
    let _ = std::fs::remove_dir_all(&dir);

    let rate = |ms: f64| FLOWS as f64 / (ms / 1000.0);
    let mut s = String::new();
    writeln!(s, "{}", crate::bench::header())?;
    writeln!(s)?;
    writeln!(
        s,
        "One file, a real `ovs-ofctl -O OpenFlow13 dump-flows` of {FLOWS} flows ({:.1} MB); each tool parses every flow, keeps those that pass `{FILTER}` ({} of them) and prints them as JSON. Whole commands timed by hyperfine (process start and reading the file included): mean wall time, flows per second of wall time, and CPU time (user + system; ours parses on {} threads). Load average {load_before} before, {load_after} after:",
        bytes as f64 / 1e6,
        counts[0],
        std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
    )?;
    writeln!(s)?;
    writeln!(
        s,
        "| tool | version | wall time | flows/s | CPU time | vs ours (wall) |"
    )?;
    writeln!(s, "|---|---|---:|---:|---:|---:|")?;
    let row = |s: &mut String, name: &str, ver: String, t: (f64, f64, f64)| {
        let (wall, user, sys) = t;
        let speed = if name.contains("dataplane") {
            "1x".to_owned()
        } else {
            format!("{:.0}x slower", wall / ours_t.0)
        };
        let r = rate(wall);
        let r = if r >= 1e6 {
            format!("{:.2} M", r / 1e6)
        } else {
            format!("{:.1} k", r / 1e3)
        };
        writeln!(
            s,
            "| {name} | {ver} | {wall:.0} ms | {r} | {:.0} ms | {speed} |",
            user + sys
        )
    };
    row(
        &mut s,
        "`dataplane-collector flows`",
        version(&bin.display().to_string(), &["--version"]),
        ours_t,
    )?;
    row(
        &mut s,
        "Python `ovs.flow` (`OFPFlow` + `OFFilter`)",
        format!(
            "ovs {}",
            version(
                &python,
                &[
                    "-c",
                    "import importlib.metadata as m; print(m.version('ovs'))"
                ]
            )
        ),
        py_t,
    )?;
    match ofparse_t {
        Some(t) => row(
            &mut s,
            "ovs-dbg `ofparse` (`ovs-ofparse … openflow json`)",
            format!(
                "ovs-dbg {}",
                version(
                    &python,
                    &[
                        "-c",
                        "import importlib.metadata as m; print(m.version('ovs-dbg'))"
                    ]
                )
            ),
            t,
        )?,
        None => writeln!(
            s,
            "| ovs-dbg `ofparse` | not installed (pip install ovs-dbg failed) | | | | |"
        )?,
    }
    let py_x = py_t.0 / ours_t.0;
    let of_x = ofparse_t.map_or(f64::NAN, |t| t.0 / ours_t.0);
    let ours_rate = rate(ours_t.0);
    let met = |ok: bool| if ok { "met" } else { "not met" };
    writeln!(s)?;
    writeln!(
        s,
        "Goals: at least 1 M flows/s ({}: {:.2} M/s of wall time, {:.2} M per CPU-second) and at least 50x the Python parsers ({}: {:.0}x `ovs.flow`, {:.0}x ofparse). The machine has {} cores; a load average above that means other work shared them during the run, and the wall times of every row are inflated by it (CPU time much less so).",
        met(ours_rate >= 1e6),
        ours_rate / 1e6,
        FLOWS as f64 / ((ours_t.1 + ours_t.2) / 1000.0) / 1e6,
        met(py_x >= 50.0 && (of_x.is_nan() || of_x >= 50.0)),
        py_x,
        of_x,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    )?;
    print!("{s}");
    crate::bench::write_section(out, "Flow analysis: parse + filter of 100k flows", &s)?;
    eprintln!("bench flows: wrote {}", out.display());
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("dpc-bench-flows-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
