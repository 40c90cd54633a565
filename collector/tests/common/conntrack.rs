//! The conntrack capture (`fixtures/conntrack/read.bin`, written from this host's kernel by the
//! ignored test `sources::conntrack::capture`): its datagrams, and a replay of them as the
//! source's read decodes them.

use dataplane_collector::netlink::{self, Message};
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

/// The datagrams of `read.bin` ([`netlink::capture`]).
pub fn datagrams() -> Vec<Vec<u8>> {
    let bin = fixture("read.bin");
    netlink::capture::decode(&bin)
        .unwrap_or_else(|e| panic!("read.bin: {e}"))
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect()
}

/// The data messages of each reply, in order.
pub fn replies(datagrams: &[Vec<u8>]) -> Result<Vec<Vec<Message<'_>>>, ParseError> {
    let d: Vec<&[u8]> = datagrams.iter().map(Vec::as_slice).collect();
    Ok(netlink::capture::replies(&d)?)
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
