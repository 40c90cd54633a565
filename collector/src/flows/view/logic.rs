//! `--format logic`: what a table does, not every flow in it. Flows are grouped by table, then by
//! priority, the names of their match fields and of their actions (ofparse's "logical" view):
//! 30,000 per-pod rules become one line with a count.

use crate::flows::parse::Flow;
use std::collections::BTreeMap;
use std::io::{self, Write};

/// The shape of a flow: priority, match field names, action names.
pub fn shape(f: &Flow<'_>) -> (u128, String, String) {
    let m: Vec<&str> = f.rule_match().map(|kv| kv.key).collect();
    let a: Vec<&str> = f.actions.iter().map(|kv| kv.key).collect();
    (f.priority(), m.join(","), a.join(","))
}

/// Highest priority first, then match and action names.
type ShapeKey = (std::cmp::Reverse<u128>, String, String);

#[derive(Default)]
struct Group {
    flows: u64,
    packets: u128,
    bytes: u128,
    example: String,
}

pub fn render<W: Write>(w: &mut W, flows: &[&Flow<'_>]) -> io::Result<()> {
    let mut tables: BTreeMap<u128, BTreeMap<ShapeKey, Group>> = BTreeMap::new();
    for f in flows {
        let (p, m, a) = shape(f);
        let g = tables
            .entry(f.table())
            .or_default()
            .entry((std::cmp::Reverse(p), m, a))
            .or_default();
        g.flows += 1;
        g.packets += f.packets();
        g.bytes += f.bytes();
        if g.example.is_empty() {
            g.example = format!("{} actions={}", f.match_text, f.actions_text);
        }
    }
    for (table, groups) in &tables {
        let n: u64 = groups.values().map(|g| g.flows).sum();
        writeln!(
            w,
            "table={table}: {n} flow{}, {} shape{}",
            if n == 1 { "" } else { "s" },
            groups.len(),
            if groups.len() == 1 { "" } else { "s" }
        )?;
        for ((std::cmp::Reverse(p), m, a), g) in groups {
            let m = if m.is_empty() { "*" } else { m.as_str() };
            writeln!(
                w,
                "  {:>7} x priority={p} {m} actions={a}  (n_packets={}, n_bytes={})",
                g.flows, g.packets, g.bytes
            )?;
            if g.flows > 1 {
                writeln!(w, "            e.g. {}", g.example)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::parse::parse_text;

    #[test]
    fn groups_by_table_priority_and_shape() {
        let text = "\
 table=0, n_packets=1, n_bytes=10, priority=100,in_port=1,dl_src=02:00:00:00:00:01 actions=resubmit(,1)
 table=0, n_packets=2, n_bytes=20, priority=100,in_port=2,dl_src=02:00:00:00:00:02 actions=resubmit(,1)
 table=0, n_packets=0, n_bytes=0, priority=0 actions=drop
 table=1, n_packets=0, n_bytes=0, priority=10,ip,nw_dst=10.0.0.1 actions=output:1
";
        let p = parse_text(text);
        let flows: Vec<_> = p.flows.iter().collect();
        let mut out = Vec::new();
        render(&mut out, &flows).expect("write");
        let s = String::from_utf8(out).expect("utf-8");
        let want = "\
table=0: 3 flows, 2 shapes
        2 x priority=100 in_port,dl_src actions=resubmit  (n_packets=3, n_bytes=30)
            e.g. priority=100,in_port=1,dl_src=02:00:00:00:00:01 actions=resubmit(,1)
        1 x priority=0 * actions=drop  (n_packets=0, n_bytes=0)
table=1: 1 flow, 1 shape
        1 x priority=10 ip,nw_dst actions=output  (n_packets=0, n_bytes=0)
";
        assert_eq!(s, want);
    }
}
