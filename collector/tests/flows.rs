//! The `flows` parser and views on captured text, without Open vSwitch or Python:
//!
//! - `rich.dump-of13.txt` / `rich.dump-of10.txt` are what a real ovs-vswitchd printed for
//!   `flow-corpus.txt` plus `flows/rich.txt`, and `*.ovs-flow.json` what OVS's Python parser
//!   (`ovs.flow.ofp.OFPFlow`, serialized with its `FlowEncoder`) made of them; both written by
//!   `DPC_UPDATE_FIXTURES=1 cargo test -p integration-tests --test flows`. Our JSON must be the
//!   same text, byte for byte.
//! - `dp-odp.txt` (OVS's documented datapath syntax) and `dp-real.txt` (a real userspace
//!   datapath's dump) with `*.odp-flow.json`, what `ovs.flow.odp.ODPFlow` made of them
//!   (`odp_flow_json.py`): our JSON must be the same text, but for the lines ODPFlow refuses
//!   (`ODPFLOW_REFUSES`, each with the reason).
//! - 100,000 generated lines in ovs-ofctl's format all parse; malformed lines put among them
//!   are reported with their numbers and the others are still filtered and shown.

use dataplane_collector::flows::filter::Filter;
use dataplane_collector::flows::parse::{self, ParseError};
use dataplane_collector::flows::view;
use std::fmt::Write as _;
use std::path::PathBuf;

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/flows")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Lines `ovs.flow` cannot parse, which its JSON has as `{"line": N, "error": "…"}`: the same
/// list as `KNOWN_PYTHON_REFUSALS` in `tests/tests/flows.rs` (see docs/flows.md).
const KNOWN_PYTHON_REFUSALS: &[&str] = &["NXM_OF_VLAN_TCI[0..11]=0x5", "clone(clone("];

/// Python's error records, by line: the exact text of each `{"line": N, "error": "…"}`.
fn python_refusals(python: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut rest = python;
    let mut base = 0;
    while let Some(at) = rest.find("{\"line\": ") {
        let tail = &rest[at..];
        let Some((num, after)) = tail["{\"line\": ".len()..].split_once(", ") else {
            break;
        };
        if let (Ok(line), true) = (num.parse::<usize>(), after.starts_with("\"error\": \"")) {
            // The record ends at the first unescaped `"}`.
            let body = &after["\"error\": \"".len()..];
            let mut end = None;
            let bytes = body.as_bytes();
            let mut i = 0;
            while i + 1 < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 2,
                    b'"' if bytes[i + 1] == b'}' => {
                        end = Some(i + 2);
                        break;
                    }
                    _ => i += 1,
                }
            }
            if let Some(e) = end {
                let len = tail.len() - body.len() + e;
                out.push((line, &python[base + at..base + at + len]));
            }
        }
        base += at + 1;
        rest = &rest[at + 1..];
    }
    out
}

/// Our JSON in the layout of `json.dump(list)` with the script's extra "line" key. A line
/// Python refused (only the known ones may be) is written as Python's error record.
fn ours_like_python(dump: &str, python: &str) -> (String, usize) {
    let p = parse::parse_text(dump);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    let refused = python_refusals(python);
    let lines: Vec<&str> = dump.lines().collect();
    for (line, _) in &refused {
        let text = lines.get(line - 1).copied().unwrap_or("");
        assert!(
            KNOWN_PYTHON_REFUSALS.iter().any(|k| text.contains(k)),
            "ovs.flow refused line {line} unexpectedly: {text}"
        );
    }
    let mut out = Vec::new();
    out.push(b'[');
    for (i, f) in p.flows.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        if let Some((_, record)) = refused.iter().find(|(l, _)| *l == f.line) {
            out.extend_from_slice(record.as_bytes());
            continue;
        }
        view::json::write_flow(&mut out, f);
        out.pop();
        out.extend_from_slice(format!(", \"line\": {}}}", f.line).as_bytes());
    }
    out.push(b']');
    (String::from_utf8(out).expect("utf-8"), p.flows.len())
}

fn same_text(ours: &str, python: &str) {
    if ours == python {
        return;
    }
    let at = ours
        .bytes()
        .zip(python.bytes())
        .position(|(a, b)| a != b)
        .unwrap_or(ours.len().min(python.len()));
    let from = ours[..at].rfind("{\"orig\"").unwrap_or(0);
    panic!(
        "first difference at byte {at}\n  ours:   {}\n  python: {}",
        &ours[from..(at + 200).min(ours.len())],
        &python[from..(at + 200).min(python.len())]
    );
}

#[test]
fn json_is_ovs_flow_json_openflow13() {
    let python = fixture("rich.dump-of13.ovs-flow.json");
    let (ours, n) = ours_like_python(&fixture("rich.dump-of13.txt"), &python);
    assert!(n > 100, "{n} flows");
    same_text(&ours, python.trim_end());
}

#[test]
fn json_is_ovs_flow_json_openflow10() {
    let python = fixture("rich.dump-of10.ovs-flow.json");
    let (ours, n) = ours_like_python(&fixture("rich.dump-of10.txt"), &python);
    assert!(n > 90, "{n} flows");
    same_text(&ours, python.trim_end());
}

/// Lines of the datapath corpora that `ovs.flow.odp.ODPFlow` refuses although OVS prints them,
/// with the error it raises (what its JSON holds for the line) and why it is ODPFlow's fault.
const ODPFLOW_REFUSES: &[(&str, &str, &str)] = &[(
    "pop_mpls(eth_type=0x800)",
    "ParseError: Error parsing key-value (pop_mpls, eth_type=0x800)",
    // `_action_decoders_args` maps `pop_mpls` to a `KVDecoders` object instead of a
    // `nested_kv_decoder(KVDecoders(...))`, so decoding it calls an object that is not callable
    // (TypeError). OVS writes `pop_mpls(eth_type=0x800)` (format_odp_action); we decode it as
    // the object ODPFlow meant, `{"eth_type": 2048}`.
    "ODPFlow's decoder table holds an uncallable KVDecoders for pop_mpls",
)];

/// Like `ours_like_python`, for a datapath dump: the lines ODPFlow refuses (`ODPFLOW_REFUSES`)
/// are written as its error object, after checking that we parse them.
fn ours_like_odpflow(dump: &str) -> (String, usize) {
    let p = parse::parse_text(dump);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    let mut out = Vec::new();
    out.push(b'[');
    for (i, f) in p.flows.iter().enumerate() {
        assert_eq!(f.kind, parse::FlowKind::Datapath, "line {}", f.line);
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        if let Some((_, error, _)) = ODPFLOW_REFUSES.iter().find(|(t, _, _)| f.orig.contains(t)) {
            assert!(!f.actions.is_empty(), "line {}", f.line);
            out.extend_from_slice(format!("{{\"line\": {}, \"error\": ", f.line).as_bytes());
            view::json::write_str(&mut out, error);
            out.push(b'}');
            continue;
        }
        view::json::write_flow(&mut out, f);
        out.pop();
        out.extend_from_slice(format!(", \"line\": {}}}", f.line).as_bytes());
    }
    out.push(b']');
    (String::from_utf8(out).expect("utf-8"), p.flows.len())
}

/// `dp-odp.txt`: the datapath syntax of OVS's tests/odp.at (keys, wildcarded keys, actions) and
/// of ovs-dpctl(8) as whole dump lines; `dp-odp.odp-flow.json`: ODPFlow's JSON of it.
#[test]
fn json_is_odpflow_json_on_the_documented_datapath_syntax() {
    let (ours, n) = ours_like_odpflow(&fixture("dp-odp.txt"));
    assert!(n >= 200, "{n} flows");
    same_text(&ours, fixture("dp-odp.odp-flow.json").trim_end());
}

/// `dp-real.txt`: what a real userspace datapath printed after traffic (`dpctl/dump-flows`,
/// plain and `-m`: ufid, masks, port names, dp-extra-info; ct, recirc, check_pkt_len, set,
/// push_vlan); `dp-real.odp-flow.json`: ODPFlow's JSON of it. Both written by
/// `DPC_UPDATE_FIXTURES=1 cargo test -p integration-tests --test flows datapath`.
#[test]
fn json_is_odpflow_json_on_a_real_datapath_dump() {
    let (ours, n) = ours_like_odpflow(&fixture("dp-real.txt"));
    assert!(n >= 50, "{n} flows");
    same_text(&ours, fixture("dp-real.odp-flow.json").trim_end());
}

#[test]
fn every_action_of_the_rich_set_is_decoded() {
    let dump = fixture("rich.dump-of10.txt") + &fixture("rich.dump-of13.txt");
    let p = parse::parse_text(&dump);
    let mut names: Vec<&str> = p
        .flows
        .iter()
        .flat_map(|f| f.actions.iter().map(|kv| kv.key))
        .collect();
    names.sort_unstable();
    names.dedup();
    for want in [
        "CONTROLLER",
        "bundle",
        "bundle_load",
        "check_pkt_larger",
        "clear_actions",
        "clone",
        "conjunction",
        "controller",
        "ct",
        "ct_clear",
        "dec_mpls_ttl",
        "dec_ttl",
        "drop",
        "exit",
        "fin_timeout",
        "goto_table",
        "group",
        "learn",
        "load",
        "meter",
        "move",
        "multipath",
        "note",
        "output",
        "pop",
        "pop_mpls",
        "pop_queue",
        "pop_vlan",
        "push",
        "push_mpls",
        "push_vlan",
        "resubmit",
        "sample",
        "set_field",
        "set_mpls_ttl",
        "set_queue",
        "write_actions",
        "write_metadata",
    ] {
        assert!(names.contains(&want), "no {want} in {names:?}");
    }
}

fn generated(n: usize) -> String {
    let mut s = String::with_capacity(n * 200);
    s.push_str("OFPST_FLOW reply (OF1.3) (xid=0x2):\n");
    for i in 0..n {
        let (a, b) = ((i >> 8) & 0xff, i & 0xff);
        let _ = match i % 4 {
            0 => writeln!(
                s,
                " cookie={:#x}, duration=12.5{:02}s, table=0, n_packets={i}, n_bytes={}, priority=100,in_port={},dl_src=02:00:00:00:{a:02x}:{b:02x} actions=resubmit(,1)",
                i % 64,
                i % 100,
                i * 60,
                1 + i % 3
            ),
            1 => writeln!(
                s,
                " cookie=0x0, duration=1.0s, table=1, n_packets=0, n_bytes=0, priority=200,ip,nw_dst=10.{}.{a}.{b} actions=set_field:02:00:00:00:{a:02x}:{b:02x}->eth_dst,output:{}",
                (i >> 16) & 0xff,
                1 + i % 3
            ),
            2 => writeln!(
                s,
                " cookie=0x0, duration=1.0s, table=2, n_packets={}, n_bytes=0, priority=300,tcp,nw_dst=10.96.{a}.{b},tp_dst={} actions=ct(commit,table=3,zone=1,nat(dst=10.244.{a}.{b}:8080))",
                i % 7,
                80 + (i >> 16)
            ),
            _ => writeln!(
                s,
                " cookie=0x0, duration=1.0s, table=3, n_packets=0, n_bytes=0, priority=400,ct_state=+est+trk,ip,reg0={:#x}/0xffff,nw_src=10.244.{a}.{b} actions=learn(table=4,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),output:{}",
                i >> 16,
                1 + i % 3
            ),
        };
    }
    s
}

#[test]
fn hundred_thousand_lines_parse_and_malformed_ones_are_numbered() {
    let n = 100_000;
    let text = generated(n);
    let clean = parse::parse_text(&text);
    assert!(clean.errors.is_empty(), "{:?}", clean.errors.first());
    assert_eq!(clean.flows.len(), n);
    assert_eq!(clean.flows[n - 1].line, n + 1);

    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let broken: [(usize, &str, ParseError); 3] = [
        (
            2,
            " cookie=0x0, table=0, priority=1,in_port=1",
            ParseError::NoActions,
        ),
        (
            40_000,
            " cookie=0x0, table=0, priority=1 actions=ct(commit,nat(src=10.0.0.1)",
            ParseError::Unbalanced {
                section: "actions",
                column: 3,
            },
        ),
        (
            77_777,
            " cookie=0x0, table=0, priority=1,=5 actions=drop",
            ParseError::EmptyKey {
                section: "match",
                column: 12,
            },
        ),
    ];
    for (line, text, _) in &broken {
        lines[line - 1] = (*text).to_owned();
    }
    let text = lines.join("\n");
    let p = parse::parse_text(&text);
    let got: Vec<(usize, ParseError)> =
        p.errors.iter().map(|e| (e.line, e.error.clone())).collect();
    let want: Vec<(usize, ParseError)> = broken.iter().map(|(l, _, e)| (*l, e.clone())).collect();
    assert_eq!(got, want);
    assert_eq!(p.flows.len(), n - 3);
    // Reported with the number and the text.
    assert_eq!(
        p.errors[0].to_string(),
        "line 2: no `actions=` (OpenFlow) or `actions:` (datapath) section:  cookie=0x0, table=0, priority=1,in_port=1"
    );
    // The rest is processed.
    let f = Filter::parse("table=2 and n_packets>5").expect("filter");
    let kept: Vec<usize> = p
        .flows
        .iter()
        .filter(|fl| f.matches(fl))
        .map(|fl| fl.line)
        .collect();
    let want: Vec<usize> = clean
        .flows
        .iter()
        .filter(|fl| f.matches(fl) && ![2, 40_000, 77_777].contains(&fl.line))
        .map(|fl| fl.line)
        .collect();
    assert_eq!(kept, want);
    assert!(kept.len() > 3000, "{}", kept.len());
}

#[test]
fn views_of_the_rich_dump() {
    let dump = fixture("rich.dump-of13.txt");
    let p = parse::parse_text(&dump);
    let flows: Vec<_> = p.flows.iter().collect();
    let mut out = Vec::new();
    view::logic::render(&mut out, &flows).expect("logic");
    let logic = String::from_utf8(out).expect("utf-8");
    assert!(
        logic.starts_with("table=2: 62 flows, 62 shapes\n"),
        "{logic}"
    );
    let dot = view::graph::dot(&flows, "rich");
    assert!(
        dot.contains("table_5 -> table_6 [label=\"goto_table (2)\"];"),
        "{dot}"
    );
    assert!(
        dot.contains("table_5 -> table_10 [label=\"learn (1)\", style=dashed];"),
        "{dot}"
    );
    let mut out = Vec::new();
    view::table::render(&mut out, &flows, false).expect("table");
    assert_eq!(
        String::from_utf8(out).expect("utf-8").lines().count(),
        flows.len() + 1
    );
}
