//! `--format tree`: datapath flows as a tree of recirculations. The roots are the flows with
//! `recirc_id(0)` (a packet's first pass); under a flow whose actions end in `recirc(N)` come
//! the flows with `recirc_id(N)`, where the packet goes next (after conntrack, a bond hash…).

use crate::flows::parse::{Flow, FlowKind, Kv, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

/// The `recirc(N)` of a flow's actions, also inside nested action lists (`clone(…)`,
/// `check_pkt_len(…,gt(…),le(…))`, `sample(…,actions(…))`), in order and once each.
fn recircs(f: &Flow<'_>) -> Vec<u128> {
    fn walk(actions: &[Kv<'_>], out: &mut Vec<u128>) {
        for kv in actions {
            match &kv.value {
                Value::Int(v) if kv.key == "recirc" && !out.contains(v) => out.push(*v),
                Value::List(inner) => walk(inner, out),
                Value::Map(items) => {
                    for item in items {
                        if let Value::List(inner) = &item.value {
                            walk(inner, out);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(&f.actions, &mut out);
    out
}

fn line(f: &Flow<'_>) -> String {
    format!(
        "{} packets:{} bytes:{} actions:{}",
        f.match_text,
        f.packets(),
        f.bytes(),
        f.actions_text
    )
}

pub fn render<W: Write>(w: &mut W, flows: &[&Flow<'_>]) -> io::Result<()> {
    let dp: Vec<&Flow<'_>> = flows
        .iter()
        .copied()
        .filter(|f| f.kind == FlowKind::Datapath)
        .collect();
    if dp.len() < flows.len() {
        writeln!(
            w,
            "# {} OpenFlow flows left out: the tree is for datapath flows (ovs-dpctl dump-flows)",
            flows.len() - dp.len()
        )?;
    }
    let mut by_id: BTreeMap<u128, Vec<usize>> = BTreeMap::new();
    for (i, f) in dp.iter().enumerate() {
        by_id.entry(f.recirc_id()).or_default().push(i);
    }
    let referenced: BTreeSet<u128> = dp.iter().flat_map(|f| recircs(f)).collect();
    let mut visited = vec![false; dp.len()];
    let mut out = String::new();
    // Roots: recirc_id 0, then ids nothing in the dump leads to.
    let mut roots: Vec<u128> = vec![0];
    roots.extend(
        by_id
            .keys()
            .copied()
            .filter(|id| *id != 0 && !referenced.contains(id)),
    );
    for id in roots {
        for &i in by_id.get(&id).map(Vec::as_slice).unwrap_or(&[]) {
            walk(i, &dp, &by_id, &mut visited, "", &mut out, true);
        }
    }
    w.write_all(out.as_bytes())
}

fn walk(
    i: usize,
    dp: &[&Flow<'_>],
    by_id: &BTreeMap<u128, Vec<usize>>,
    visited: &mut [bool],
    indent: &str,
    out: &mut String,
    root: bool,
) {
    let f = dp[i];
    if root {
        out.push_str(&line(f));
        out.push('\n');
    }
    if visited[i] {
        return;
    }
    visited[i] = true;
    let children: Vec<usize> = recircs(f)
        .iter()
        .flat_map(|id| {
            by_id
                .get(id)
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .copied()
        })
        .collect();
    for (n, &c) in children.iter().enumerate() {
        let last = n + 1 == children.len();
        out.push_str(indent);
        out.push_str(if last { "└── " } else { "├── " });
        out.push_str(&line(dp[c]));
        if visited[c] {
            out.push_str("  (loop)");
        }
        out.push('\n');
        let next = format!("{indent}{}", if last { "    " } else { "│   " });
        walk(c, dp, by_id, visited, &next, out, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::parse::parse_text;

    #[test]
    fn recirculations_nest() {
        let text = "\
recirc_id(0x5),in_port(3),eth_type(0x0800), packets:1, bytes:60, used:never, actions:4
recirc_id(0),in_port(2),eth_type(0x0800),ipv4(frag=no), packets:10, bytes:1000, used:0.5s, actions:ct(zone=1),recirc(0x1)
recirc_id(0x1),in_port(2),ct_state(+est+trk),eth_type(0x0800), packets:8, bytes:800, used:0.5s, actions:3
recirc_id(0x1),in_port(2),ct_state(+new+trk),eth_type(0x0800), packets:2, bytes:200, used:0.5s, actions:ct(commit,zone=1),recirc(0x2)
recirc_id(0x2),in_port(2),eth_type(0x0800), packets:2, bytes:200, used:0.5s, actions:3
";
        let p = parse_text(text);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let flows: Vec<_> = p.flows.iter().collect();
        let mut out = Vec::new();
        render(&mut out, &flows).expect("write");
        let s = String::from_utf8(out).expect("utf-8");
        let want = "\
recirc_id(0),in_port(2),eth_type(0x0800),ipv4(frag=no) packets:10 bytes:1000 actions:ct(zone=1),recirc(0x1)
├── recirc_id(0x1),in_port(2),ct_state(+est+trk),eth_type(0x0800) packets:8 bytes:800 actions:3
└── recirc_id(0x1),in_port(2),ct_state(+new+trk),eth_type(0x0800) packets:2 bytes:200 actions:ct(commit,zone=1),recirc(0x2)
    └── recirc_id(0x2),in_port(2),eth_type(0x0800) packets:2 bytes:200 actions:3
recirc_id(0x5),in_port(3),eth_type(0x0800) packets:1 bytes:60 actions:4
";
        assert_eq!(s, want);
    }

    #[test]
    fn recirculations_inside_nested_action_lists_nest() {
        let text = "\
recirc_id(0),in_port(2), packets:4, bytes:400, used:0.5s, actions:clone(recirc(0x1)),check_pkt_len(size=200,gt(recirc(0x2)),le(recirc(0x1)))
recirc_id(0x1),in_port(2), packets:3, bytes:300, used:0.5s, actions:3
recirc_id(0x2),in_port(2), packets:1, bytes:100, used:0.5s, actions:4
";
        let p = parse_text(text);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(recircs(&p.flows[0]), vec![1, 2]);
        let flows: Vec<_> = p.flows.iter().collect();
        let mut out = Vec::new();
        render(&mut out, &flows).expect("write");
        let s = String::from_utf8(out).expect("utf-8");
        assert!(s.contains("├── recirc_id(0x1)"), "{s}");
        assert!(s.contains("└── recirc_id(0x2)"), "{s}");
    }
}
