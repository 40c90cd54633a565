//! The conntrack capture (`fixtures/conntrack/read.bin`, written from this host's kernel by the
//! ignored test `sources::conntrack::capture`): its datagrams, and a replay of them as the
//! source's read decodes them.

use dataplane_collector::netlink::{self, DumpItem, Message};
use dataplane_collector::sources::conntrack::Snapshot;
use dataplane_collector::sources::conntrack::parse::{self, ParseError};
use std::path::PathBuf;

/// A file of `fixtures/conntrack`.
pub fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/conntrack")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The datagrams of `read.bin` (each a big-endian u32 length, then the bytes).
pub fn datagrams() -> Vec<Vec<u8>> {
    let bin = fixture("read.bin");
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= bin.len() {
        let len = u32::from_be_bytes([bin[at], bin[at + 1], bin[at + 2], bin[at + 3]]) as usize;
        out.push(bin[at + 4..at + 4 + len].to_vec());
        at += 4 + len;
    }
    assert_eq!(at, bin.len(), "read.bin is cut");
    out
}

/// The data messages of each reply, in order (a reply ends at NLMSG_DONE or an ACK).
pub fn replies(datagrams: &[Vec<u8>]) -> Result<Vec<Vec<Message<'_>>>, ParseError> {
    let mut out = vec![Vec::new()];
    for d in datagrams {
        for m in netlink::messages(d) {
            let m = m?;
            match netlink::dump_item(m, m.seq)? {
                Some(DumpItem::Data(m)) => out.last_mut().map(|v| v.push(m)).unwrap_or(()),
                Some(DumpItem::Done) => out.push(Vec::new()),
                Some(DumpItem::Error(e)) => panic!("the capture holds an error reply: {e}"),
                None => {}
            }
        }
    }
    out.pop();
    Ok(out)
}

/// Replays a read: the per-CPU dump, the expectation dump, the global statistics.
pub fn replay(datagrams: &[Vec<u8>]) -> Result<Snapshot, ParseError> {
    let r = replies(datagrams)?;
    assert_eq!(r.len(), 3, "three replies");
    let cpus = r[0]
        .iter()
        .map(parse::parse_ct_cpu)
        .collect::<Result<_, _>>()?;
    let expect = r[1]
        .iter()
        .map(parse::parse_exp_cpu)
        .collect::<Result<_, _>>()?;
    assert_eq!(r[2].len(), 1, "one global statistics message");
    let g = parse::parse_global(&r[2][0])?;
    Ok(Snapshot {
        cpus,
        expect,
        entries: g.entries,
        max_entries: g.max_entries.map(u64::from),
    })
}
