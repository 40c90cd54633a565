//! `--format cookie`: flows grouped by cookie (the controller's owner tag: OVN's logical flow,
//! Antrea's round and category), then by table, with counts and traffic.

use crate::flows::parse::Flow;
use std::collections::BTreeMap;
use std::io::{self, Write};

#[derive(Default)]
struct Totals {
    flows: u64,
    packets: u128,
    bytes: u128,
}

impl Totals {
    fn add(&mut self, f: &Flow<'_>) {
        self.flows += 1;
        self.packets += f.packets();
        self.bytes += f.bytes();
    }
}

/// Per table: totals and (with --verbose) the flows.
type Tables<'f> = BTreeMap<u128, (Totals, Vec<&'f Flow<'f>>)>;

pub fn render<W: Write>(w: &mut W, flows: &[&Flow<'_>], verbose: bool) -> io::Result<()> {
    let mut cookies: BTreeMap<u128, (Totals, Tables<'_>)> = BTreeMap::new();
    for f in flows {
        let (t, tables) = cookies.entry(f.cookie()).or_default();
        t.add(f);
        let (tt, list) = tables.entry(f.table()).or_default();
        tt.add(f);
        if verbose {
            list.push(f);
        }
    }
    for (cookie, (t, tables)) in &cookies {
        writeln!(
            w,
            "cookie={cookie:#x}: {} flows, n_packets={}, n_bytes={}",
            t.flows, t.packets, t.bytes
        )?;
        for (table, (tt, list)) in tables {
            writeln!(
                w,
                "  table={table}: {} flows, n_packets={}, n_bytes={}",
                tt.flows, tt.packets, tt.bytes
            )?;
            for f in list {
                writeln!(w, "    {} actions={}", f.match_text, f.actions_text)?;
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
    fn groups_by_cookie_then_table() {
        let text = "\
 cookie=0x2, table=0, n_packets=1, n_bytes=10, priority=1 actions=drop
 cookie=0x1, table=3, n_packets=2, n_bytes=20, priority=1 actions=drop
 cookie=0x2, table=1, n_packets=4, n_bytes=40, priority=1,ip actions=NORMAL
";
        let p = parse_text(text);
        let flows: Vec<_> = p.flows.iter().collect();
        let mut out = Vec::new();
        render(&mut out, &flows, true).expect("write");
        let s = String::from_utf8(out).expect("utf-8");
        let want = "\
cookie=0x1: 1 flows, n_packets=2, n_bytes=20
  table=3: 1 flows, n_packets=2, n_bytes=20
    priority=1 actions=drop
cookie=0x2: 2 flows, n_packets=5, n_bytes=50
  table=0: 1 flows, n_packets=1, n_bytes=10
    priority=1 actions=drop
  table=1: 1 flows, n_packets=4, n_bytes=40
    priority=1,ip actions=NORMAL
";
        assert_eq!(s, want);
    }
}
