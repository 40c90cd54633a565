//! Root-only: the `flows` subcommand on a real Open vSwitch.
//!
//! - our JSON and OVS's own Python parser (`ovs.flow.ofp.OFPFlow`, PyPI `ovs`) agree field by
//!   field on what a real ovs-vswitchd prints for a rich set of flows, in OpenFlow 1.3 and 1.0
//!   dumps;
//! - every line of a 100k-flow dump parses, and malformed lines put in it are reported with their
//!   numbers while the rest is processed;
//! - the `graph` view of a pipeline renders to SVG with graphviz;
//! - `diff` of two bridges with known differences reports exactly those;
//! - `--node` reads a bridge through the in-process daemon's flow API
//!   (`--web.enable-flow-api`), and the API is off without the flag.

use anyhow::{Context, Result, bail};
use clap::Parser;
use dataplane_collector::cli::{Cli, Command};
use dataplane_collector::flows::{self, diff, parse};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command as Proc;
use testbed::ovs::Ovs;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../collector/tests/fixtures")
}

fn flow_lines(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

/// A bridge with group 1 and meter 1, like the flow-text test's.
fn bridge(ovs: &Ovs) -> Result<String> {
    let br = format!("br{}", testbed::topology::unique_tag());
    ovs.add_bridge(&br)?;
    ovs.add_group(&br, "group_id=1,type=all,bucket=actions=output:1")?;
    ovs.ofctl(
        &["-O", "OpenFlow13"],
        "add-meter",
        &br,
        &["meter=1,kbps,band=type=drop,rate=1000"],
    )?;
    Ok(br)
}

fn add_all(ovs: &Ovs, br: &str, flows: &[String]) -> Result<()> {
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), flows.join("\n") + "\n")?;
    if ovs.add_flows_file(br, file.path()).is_ok() {
        return Ok(());
    }
    let refused: Vec<String> = flows
        .iter()
        .filter_map(|f| ovs.add_flow(br, f).err().map(|e| format!("{f}: {e:#}")))
        .collect();
    bail!("ovs-ofctl refused:\n{}", refused.join("\n"))
}

/// `import ovs.flow`, installing PyPI's `ovs` when it is missing.
fn python_ovs() -> Result<()> {
    let ok = |c: &mut Proc| c.status().map(|s| s.success()).unwrap_or(false);
    if ok(Proc::new("python3").args(["-c", "import ovs.flow.ofp"])) {
        return Ok(());
    }
    let installed = ok(Proc::new("python3").args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--break-system-packages",
        "ovs",
    ]));
    if !installed || !ok(Proc::new("python3").args(["-c", "import ovs.flow.ofp"])) {
        bail!("cannot install the Python `ovs` package (pip install --break-system-packages ovs)");
    }
    Ok(())
}

/// Our JSON of a dump, as the `flows --format json` view writes it.
fn ours(dump: &str) -> Result<(Vec<Value>, Vec<parse::LineError>)> {
    let p = parse::parse_text(dump);
    let mut out = Vec::new();
    flows::view::json::render(&mut out, p.flows.iter())?;
    let v: Vec<Value> = serde_json::from_slice(&out)?;
    Ok((v, p.errors))
}

/// OVS's Python parser's JSON of a dump file, as it printed it.
fn python(dump: &Path) -> Result<Vec<u8>> {
    let out = Proc::new("python3")
        .arg(fixtures().join("flows/ovs_flow_json.py"))
        .arg(dump)
        .output()?;
    if !out.status.success() {
        bail!("ovs_flow_json.py: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

/// Field-by-field differences (and the lines Python refused).
fn compare(dump: &str, ours: &[Value], py: &[Value]) -> (Vec<String>, Vec<String>) {
    let mut diffs = Vec::new();
    let mut refused = Vec::new();
    let lines: Vec<&str> = dump.lines().collect();
    let mut o = ours.iter();
    for p in py {
        let line = p["line"].as_u64().unwrap_or(0) as usize;
        let text = lines.get(line.wrapping_sub(1)).copied().unwrap_or("");
        if let Some(e) = p.get("error") {
            refused.push(format!("line {line}: {e}: {text}"));
            o.next();
            continue;
        }
        let Some(ours) = o.next() else {
            diffs.push(format!("line {line}: missing from ours"));
            continue;
        };
        if ours["orig"] != p["orig"] {
            diffs.push(format!("line {line}: flows out of step: {text}"));
            continue;
        }
        for section in ["info", "match", "actions"] {
            match (&ours[section], &p[section]) {
                (Value::Object(a), Value::Object(b)) => {
                    for (k, bv) in b {
                        if a.get(k) != Some(bv) {
                            diffs.push(format!(
                                "line {line} {section}.{k}: ours {} python {bv}\n  {text}",
                                a.get(k).map_or("(none)".to_owned(), Value::to_string)
                            ));
                        }
                    }
                    for k in a.keys().filter(|k| !b.contains_key(*k)) {
                        diffs.push(format!("line {line} {section}.{k}: only ours\n  {text}"));
                    }
                }
                (a, b) if a != b => {
                    diffs.push(format!(
                        "line {line} {section}:\n  ours   {a}\n  python {b}\n  {text}"
                    ));
                }
                _ => {}
            }
        }
    }
    (diffs, refused)
}

#[test]
fn json_agrees_with_ovs_python_parser() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    python_ovs()?;
    let ovs = Ovs::start()?;
    let br = bridge(&ovs)?;
    let mut set = flow_lines(&fixtures().join("flow-corpus.txt"))?;
    set.extend(flow_lines(&fixtures().join("flows/rich.txt"))?);
    add_all(&ovs, &br, &set)?;

    // OpenFlow 1.0 (ovs-ofctl's default, which adds idle_age and writes load/move in NXM
    // form) cannot show OpenFlow 1.1+ instructions, nor the Nicira actions Open vSwitch defines
    // for OpenFlow 1.3+ only (`encap`, `decap`): those flows go on a second bridge without
    // them.
    let br10 = bridge(&ovs)?;
    let of10: Vec<String> = set
        .iter()
        .filter(|f| {
            ![
                "meter:",
                "write_actions",
                "write_metadata",
                "goto_table",
                "clear_actions",
                "encap(",
                "decap(",
            ]
            .iter()
            .any(|i| f.contains(i))
        })
        .cloned()
        .collect();
    add_all(&ovs, &br10, &of10)?;
    std::thread::sleep(std::time::Duration::from_millis(1100));

    let mut report = String::new();
    let mut total = 0;
    for (name, opts, br) in [
        ("OpenFlow 1.3", &["-O", "OpenFlow13"][..], &br),
        ("OpenFlow 1.0", &[][..], &br10),
    ] {
        let dump = ovs.ofctl(opts, "dump-flows", br, &[])?;
        let (ours, errors) = ours(&dump)?;
        if !errors.is_empty() {
            bail!(
                "{name}: lines we could not parse:\n{}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        let file = tempfile::NamedTempFile::new()?;
        std::fs::write(file.path(), &dump)?;
        let py_raw = python(file.path())?;
        let py: Vec<Value> = serde_json::from_slice(&py_raw)?;
        if std::env::var("DPC_UPDATE_FIXTURES").is_ok_and(|v| v == "1") {
            // For the pure test (collector/tests/flows.rs), which needs neither OVS nor Python.
            let tag = if opts.is_empty() { "of10" } else { "of13" };
            let dir = fixtures().join("flows");
            std::fs::write(dir.join(format!("rich.dump-{tag}.txt")), &dump)?;
            std::fs::write(dir.join(format!("rich.dump-{tag}.ovs-flow.json")), &py_raw)?;
        }
        assert_eq!(ours.len(), py.len(), "{name}: flow count");
        let (diffs, refused) = compare(&dump, &ours, &py);
        total += ours.len();
        if !diffs.is_empty() {
            let _ = writeln!(
                report,
                "{name}: {} differences:\n{}",
                diffs.len(),
                diffs.join("\n")
            );
        }
        // The lines Python cannot parse at all are listed in docs/flows.md; nothing else may
        // be refused.
        for r in &refused {
            eprintln!("{name}: ovs.flow refuses {r}");
        }
        let unexpected: Vec<&String> = refused
            .iter()
            .filter(|r| !KNOWN_PYTHON_REFUSALS.iter().any(|k| r.contains(k)))
            .collect();
        if !unexpected.is_empty() {
            let _ = writeln!(
                report,
                "{name}: ovs.flow refused unexpectedly:\n{unexpected:#?}"
            );
        }
    }
    if !report.is_empty() {
        bail!("{report}");
    }
    assert!(total > 2 * 100, "compared {total} flows");
    Ok(())
}

/// Flows `ovs.flow` cannot parse (raising an error) while we can; see docs/flows.md.
const KNOWN_PYTHON_REFUSALS: &[&str] = &[
    // learn: an immediate into part of a field (its learn decoder looks the NXM name up among
    // its field decoders and finds none).
    "NXM_OF_VLAN_TCI[0..11]=0x5",
    // clone within clone (its clone decoder's actions do not include clone).
    "clone(clone(",
];

/// OVS's `ODPFlow` JSON of a datapath dump file (`odp_flow_json.py`).
fn python_odp(dump: &Path) -> Result<Vec<u8>> {
    let out = Proc::new("python3")
        .arg(fixtures().join("flows/odp_flow_json.py"))
        .arg(dump)
        .output()?;
    if !out.status.success() {
        bail!("odp_flow_json.py: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

/// The command that made `flows/dp-real.txt`, written at its top.
const DP_REAL_HEADER: &str = "# ovs-appctl dpctl/dump-flows and dpctl/dump-flows -m on the userspace \
datapath (OVS 3.1, datapath_type=netdev) of tests/src/topology.rs with ct, recirculation, \
check_pkt_larger and clone flows added, after its traffic; written by \
`DPC_UPDATE_FIXTURES=1 cargo test -p integration-tests --test flows datapath`.";

/// Datapath flows a real ovs-vswitchd made from real traffic: our JSON and `ODPFlow`'s agree
/// field by field, on `dpctl/dump-flows` and its verbose form (ufid, every key with its mask,
/// dp-extra-info).
#[test]
fn datapath_json_agrees_with_odpflow_on_a_real_dump() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    python_ovs()?;
    let t = testbed::topology::Topology::build(Ovs::start()?, 3)?;
    let (p, ip) = (&t.ofports, |i: usize| t.pods[i].ip.clone());
    for f in [
        // pod1 -> pod2: through conntrack, then a recirculation.
        format!(
            "table=1,priority=260,icmp,nw_src={},nw_dst={},actions=ct(commit,zone=5,table=3)",
            ip(1),
            ip(2)
        ),
        format!("table=3,priority=10,ip,actions=output:{}", p[2]),
        // pod0 -> pod2: check_pkt_larger, then a clone that rewrites a copy (the datapath action is
        // check_pkt_len(size=1000,gt(push_vlan(…),…),le(set(ipv4(…)),…)): the clone is inlined).
        format!(
            "table=1,priority=260,icmp,nw_src={},nw_dst={},actions=check_pkt_larger(1000)->reg0[0],resubmit(,2)",
            ip(0),
            ip(2)
        ),
        format!(
            "table=2,priority=10,reg0=0x1/0x1,actions=push_vlan:0x8100,set_field:4196->vlan_vid,output:{}",
            p[2]
        ),
        format!(
            "table=2,priority=5,ip,actions=clone(set_field:10.244.0.99->ip_src,output:{}),output:{}",
            p[1], p[2]
        ),
    ] {
        t.ovs.add_flow(&t.bridge, &f).with_context(|| f.clone())?;
    }
    t.traffic(1)?;
    let mut dump = String::new();
    for args in [&["dpctl/dump-flows"][..], &["dpctl/dump-flows", "-m"][..]] {
        dump.push_str(&t.ovs.appctl(args)?);
    }
    let (ours, errors) = ours(&dump)?;
    if !errors.is_empty() {
        bail!("lines we could not parse: {errors:?}");
    }
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), &dump)?;
    let py_raw = python_odp(file.path())?;
    let py: Vec<Value> = serde_json::from_slice(&py_raw)?;
    if std::env::var("DPC_UPDATE_FIXTURES").is_ok_and(|v| v == "1") {
        // For the pure test (collector/tests/flows.rs); the header shifts the line numbers, so
        // the JSON is made again from the file as written.
        let dir = fixtures().join("flows");
        let path = dir.join("dp-real.txt");
        std::fs::write(&path, format!("{DP_REAL_HEADER}\n{dump}"))?;
        std::fs::write(dir.join("dp-real.odp-flow.json"), python_odp(&path)?)?;
    }
    assert_eq!(ours.len(), py.len(), "flow count");
    let (diffs, refused) = compare(&dump, &ours, &py);
    if !diffs.is_empty() || !refused.is_empty() {
        bail!(
            "{} differences:\n{}\nODPFlow refused:\n{}",
            diffs.len(),
            diffs.join("\n"),
            refused.join("\n")
        );
    }
    let text = dump.as_str();
    for want in [
        "ct(commit,zone=5)",
        "recirc(",
        "check_pkt_len(",
        "push_vlan(",
        "ufid:",
        "dp-extra-info",
    ] {
        assert!(text.contains(want), "no {want} in the dump:\n{text}");
    }
    assert!(ours.len() >= 10, "{} flows:\n{text}", ours.len());
    Ok(())
}

#[test]
fn hundred_thousand_flows_every_line_parses_and_malformed_lines_are_numbered() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let ovs = Ovs::start()?;
    let br = bridge(&ovs)?;
    let n = 100_000;
    let mut text = String::with_capacity(n * 120);
    for i in 0..n {
        let (a, b) = ((i >> 8) & 0xff, i & 0xff);
        let _ = match i % 4 {
            0 => writeln!(
                text,
                "table=0,priority=100,cookie={:#x},in_port={},dl_src=02:00:00:{:02x}:{a:02x}:{b:02x},actions=resubmit(,1)",
                i % 64,
                1 + i % 3,
                (i >> 16) & 0xff
            ),
            1 => writeln!(
                text,
                "table=1,priority=200,ip,nw_dst=10.{}.{a}.{b},actions=mod_dl_dst:02:00:00:00:{a:02x}:{b:02x},output:{}",
                (i >> 16) & 0xff,
                1 + i % 3
            ),
            2 => writeln!(
                text,
                "table=2,priority=300,tcp,nw_dst=10.96.{a}.{b},tp_dst={},actions=ct(commit,table=3,zone=1,nat(dst=10.244.{a}.{b}:8080))",
                80 + (i >> 16)
            ),
            _ => writeln!(
                text,
                "table=3,priority=400,ct_state=+trk+est,ip,nw_src=10.244.{a}.{b},reg0={:#x}/0xffff,actions=learn(table=4,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),output:{}",
                i >> 16,
                1 + i % 3
            ),
        };
    }
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), &text)?;
    ovs.add_flows_file(&br, file.path())?;
    let dump = ovs.ofctl(&["-O", "OpenFlow13"], "dump-flows", &br, &[])?;

    let clean = parse::parse_text(&dump);
    assert!(clean.errors.is_empty(), "{:?}", clean.errors.first());
    assert_eq!(clean.flows.len(), n);
    let header = dump.lines().filter(|l| parse::is_noise(l)).count();
    assert_eq!(
        dump.lines().count(),
        n + header,
        "every other line is a flow"
    );
    for f in &clean.flows {
        assert!(!f.actions.is_empty(), "line {}: no actions", f.line);
    }

    // Break some lines: no actions, unbalanced parentheses, an empty key.
    let mut lines: Vec<String> = dump.lines().map(str::to_owned).collect();
    let broken = [
        (10usize, "priority=1,in_port=1 no actions here".to_owned()),
        (
            5000,
            format!("{} actions=ct(commit,zone=1", &lines[5000][..20]),
        ),
        (
            77_777,
            " cookie=0x0, table=0, priority=1,=5 actions=drop".to_owned(),
        ),
        (99_999, "garbage".to_owned()),
    ];
    for (i, l) in &broken {
        lines[*i] = l.clone();
    }
    let text = lines.join("\n");
    let p = parse::parse_text(&text);
    let numbers: Vec<usize> = p.errors.iter().map(|e| e.line).collect();
    assert_eq!(
        numbers,
        broken.iter().map(|(i, _)| i + 1).collect::<Vec<_>>()
    );
    assert_eq!(p.flows.len(), n - broken.len());
    // The rest is processed: filters and views see every other flow.
    let filter = flows::filter::Filter::parse("table=2 and tp_dst>80")?;
    let kept = p.flows.iter().filter(|f| filter.matches(f)).count();
    let want = clean.flows.iter().filter(|f| filter.matches(f)).count()
        - broken
            .iter()
            .filter(|(i, _)| {
                clean
                    .flows
                    .iter()
                    .find(|f| f.line == i + 1)
                    .is_some_and(|f| filter.matches(f))
            })
            .count();
    assert_eq!(kept, want);
    assert!(kept > 0);
    Ok(())
}

fn run_flows(args: &[&str]) -> Result<(), flows::FlowsError> {
    let mut argv = vec!["dataplane-collector", "flows"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let Some(Command::Flows(f)) = cli.command else {
        panic!("not the flows subcommand");
    };
    flows::run(f)
}

#[test]
fn graph_of_a_pipeline_renders_to_svg() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    if testbed::ovs::which("dot").is_none() {
        let ok = Proc::new("apt-get")
            .args(["install", "-y", "-q", "graphviz"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            bail!("graphviz is needed (apt-get install graphviz)");
        }
    }
    let ovs = Ovs::start()?;
    let br = bridge(&ovs)?;
    let pipeline: Vec<String> = [
        "table=0,priority=10,in_port=1,actions=resubmit(,1)",
        "table=0,priority=0,actions=drop",
        "table=1,priority=10,ip,actions=ct(table=2,zone=1)",
        "table=1,priority=5,actions=goto_table:3",
        "table=2,priority=10,ct_state=+trk+est,ip,actions=output:2",
        "table=2,priority=5,ct_state=+trk+new,ip,actions=ct(commit,zone=1),group:1",
        "table=3,priority=0,actions=NORMAL",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    add_all(&ovs, &br, &pipeline)?;
    let dir = tempfile::tempdir()?;
    let svg = dir.path().join("pipeline.svg");
    let rundir = ovs.rundir().display().to_string();
    run_flows(&[
        "--bridge",
        &br,
        "--ovs.rundir",
        &rundir,
        "--format",
        "graph",
        "-o",
        &svg.display().to_string(),
    ])?;
    let text = std::fs::read_to_string(&svg)?;
    assert!(text.contains("<svg"), "{text}");
    for want in [
        "table 0",
        "table 1",
        "table 2",
        "table 3",
        "resubmit (1)",
        "ct (1)",
        "goto_table (1)",
        "output 2",
        "group 1",
        "output NORMAL",
        "drop (1)",
    ] {
        assert!(text.contains(want), "SVG lacks {want:?}");
    }
    // Edges are graph edges, not just labels: the SVG has one per link.
    assert_eq!(text.matches("class=\"edge\"").count(), 7, "{text}");
    Ok(())
}

#[test]
fn diff_of_two_bridges_reports_exactly_the_known_differences() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let ovs = Ovs::start()?;
    let a = bridge(&ovs)?;
    let b = bridge(&ovs)?;
    let common: Vec<String> = flow_lines(&fixtures().join("flow-corpus.txt"))?;
    add_all(&ovs, &a, &common)?;
    add_all(&ovs, &b, &common)?;
    // Known differences: one rule only in A, one only in B, one with other actions in B, and
    // traffic-like counter differences that must not count (B's flows are younger).
    ovs.add_flow(&a, "table=7,priority=5,ip,nw_dst=10.0.0.7,actions=drop")?;
    ovs.add_flow(&b, "table=7,priority=6,ipv6,actions=output:3")?;
    ovs.add_flow(&b, "table=2,priority=17,ip,nw_src=10.0.0.0/8,nw_dst=192.168.1.1,nw_tos=16,nw_ecn=1,nw_ttl=64,actions=dec_ttl,output:3")?;
    let rundir = ovs.rundir().display().to_string();
    let load = |br: &str| -> Result<String> {
        let inputs = flows::InputArgs {
            bridge: vec![br.to_owned()],
            ovs_rundir: PathBuf::from(&rundir),
            timeout: std::time::Duration::from_secs(10),
            ..flows::InputArgs::default()
        };
        Ok(flows::load(&inputs)?.remove(0).text)
    };
    let (ta, tb) = (load(&a)?, load(&b)?);
    let (pa, pb) = (parse::parse_text(&ta), parse::parse_text(&tb));
    let fa: Vec<_> = pa.flows.iter().collect();
    let fb: Vec<_> = pb.flows.iter().collect();
    let changes = diff::diff(&fa, &fb);
    let text = diff::render(&changes, &a, &b);
    let want = format!(
        "--- {a}\n+++ {b}\n\
         ~ table=2 priority=17 ip,nw_dst=192.168.1.1,nw_ecn=1,nw_src=10.0.0.0/8,nw_tos=16,nw_ttl=64\n    \
         - actions=dec_ttl,output:2\n    + actions=dec_ttl,output:3\n\
         - table=7 priority=5 ip,nw_dst=10.0.0.7 actions=drop\n\
         + table=7 priority=6 ipv6 actions=output:3\n\
         1 removed, 1 added, 1 changed\n"
    );
    assert_eq!(text, want);
    // The command says so with its exit status.
    match run_flows(&["diff", &a, &b, "--ovs.rundir", &rundir]) {
        Err(flows::FlowsError::Differ { differences: 3 }) => {}
        other => panic!("diff of {a} and {b}: {other:?}"),
    }
    run_flows(&["diff", &a, &a, "--ovs.rundir", &rundir])?;
    Ok(())
}

#[test]
fn node_reads_flows_through_the_daemons_flow_api() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let ovs = Ovs::start()?;
    let br = bridge(&ovs)?;
    // The corpus the native OpenFlow client writes exactly like ovs-ofctl (tests/flow_text.rs);
    // the NX actions it does not decode (learn, bundle, clone…) come as nx_action(subtype=N).
    let set = flow_lines(&fixtures().join("flow-corpus.txt"))?;
    add_all(&ovs, &br, &set)?;
    let rundir = ovs.rundir().display().to_string();

    let off = testbed::daemon::Daemon::start(&["--ovs.rundir".into(), rundir.clone()])?;
    let (status, _) = off.get("/api/v1/flows")?;
    assert_eq!(status, 404, "the flow API must be off by default");
    drop(off);

    let d = testbed::daemon::Daemon::start(&[
        "--ovs.rundir".into(),
        rundir.clone(),
        "--web.enable-flow-api".into(),
    ])?;
    let (status, body) = d.get(&format!("/api/v1/flows?bridge={br}"))?;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body)?;
    assert_eq!(v["bridges"][0]["bridge"], br.as_str());
    let (status, _) = d.get("/api/v1/flows?bridge=nope")?;
    assert_eq!(status, 404);

    let url = format!("http://{}", d.addr);
    let inputs = flows::InputArgs {
        node: vec![url.clone()],
        bridge: vec![br.clone()],
        timeout: std::time::Duration::from_secs(10),
        ..flows::InputArgs::default()
    };
    let remote = flows::load(&inputs)?;
    assert_eq!(remote.len(), 1);
    assert!(
        remote[0].name.ends_with(&format!("/{br}")),
        "{}",
        remote[0].name
    );
    let local = ovs.ofctl(&["-O", "OpenFlow13"], "dump-flows", &br, &[])?;
    let (pr, pl) = (
        parse::parse_text(&remote[0].text),
        parse::parse_text(&local),
    );
    assert!(pr.errors.is_empty(), "{:?}", pr.errors);
    assert_eq!(pr.flows.len(), set.len());
    // The same rules, actions and counters as ovs-ofctl's (durations differ by when each was
    // read).
    let key = |f: &parse::Flow<'_>| {
        (
            f.table(),
            f.priority(),
            f.match_text.to_owned(),
            f.actions_text.to_owned(),
            f.cookie(),
            f.packets(),
        )
    };
    let mut r: Vec<_> = pr.flows.iter().map(key).collect();
    let mut l: Vec<_> = pl.flows.iter().map(key).collect();
    r.sort();
    l.sort();
    assert_eq!(r, l);

    // A filter runs on the node.
    let (status, body) = d.get(&format!(
        "/api/v1/flows?bridge={br}&filter={}",
        flows::api::encode_query("ct and priority>60")
    ))?;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body)?;
    let lines = v["bridges"][0]["flows"].as_array().context("flows")?;
    assert_eq!(lines.len(), 3, "{body}");

    // sync writes the node's file.
    let dir = tempfile::tempdir()?;
    run_flows(&[
        "sync",
        "--node",
        &url,
        "--bridge",
        &br,
        "--dir",
        &dir.path().display().to_string(),
    ])?;
    let files: Vec<_> = std::fs::read_dir(dir.path())?.collect::<Result<_, _>>()?;
    assert_eq!(files.len(), 1);
    let synced = std::fs::read_to_string(files[0].path())?;
    assert_eq!(parse::parse_text(&synced).flows.len(), set.len());
    Ok(())
}
