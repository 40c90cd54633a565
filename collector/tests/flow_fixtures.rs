//! Pure tests on bytes captured from a real ovs-vswitchd (Open vSwitch 3.1) by
//! `tests/tests/flow_text.rs` (`DPC_UPDATE_FIXTURES=1`): the OpenFlow 1.3 flow-stats replies for
//! `fixtures/flow-corpus.txt`, and what `ovs-ofctl -O OpenFlow13 dump-flows` printed for them.

use dataplane_collector::openflow::message::FlowDecoder;
use dataplane_collector::openflow::{DecodeError, FlowTable};
use std::collections::BTreeMap;

const BIN: &[u8] = include_bytes!("fixtures/flow-corpus.of13-flow-stats.bin");
const TEXT: &str = include_str!("fixtures/flow-corpus.dump-flows-of13.txt");

fn bodies() -> Vec<&'static [u8]> {
    let mut out = Vec::new();
    let mut rest = BIN;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        out.push(&rest[4..4 + len]);
        rest = &rest[4 + len..];
    }
    out
}

fn decode(bodies: &[&[u8]]) -> Result<FlowTable, DecodeError> {
    let mut d = FlowDecoder::new(true);
    let mut out = FlowTable::default();
    for b in bodies {
        d.decode(b, &mut out)?;
    }
    Ok(out)
}

/// (table, priority) -> (match, actions) from ovs-ofctl's text.
fn expected() -> BTreeMap<(u8, u16), (String, String)> {
    let mut out = BTreeMap::new();
    for line in TEXT.lines().filter(|l| l.starts_with(" cookie=")) {
        let get = |key: &str| -> Option<&str> {
            let rest = &line[line.find(key)? + key.len()..];
            Some(&rest[..rest.find([',', ' ']).unwrap_or(rest.len())])
        };
        let table: u8 = get("table=").and_then(|v| v.parse().ok()).unwrap_or(255);
        let (head, actions) = line.split_once(" actions=").unwrap_or((line, ""));
        let last = head.rsplit(", ").next().unwrap_or("");
        let (priority, m) = match last.strip_prefix("priority=") {
            Some(r) => match r.split_once(',') {
                Some((p, m)) => (p.parse().unwrap_or(0), m.to_owned()),
                None => (r.parse().unwrap_or(0), String::new()),
            },
            None if last.starts_with("idle_age=") || last.starts_with("n_bytes=") => {
                (32768, String::new())
            }
            None => (32768, last.to_owned()),
        };
        out.insert((table, priority), (m, actions.to_owned()));
    }
    out
}

#[test]
fn captured_replies_decode_to_what_ovs_ofctl_printed() {
    let flows = decode(&bodies()).unwrap_or_else(|e| panic!("decode: {e}"));
    let want = expected();
    assert_eq!(flows.len(), want.len());
    assert!(flows.len() >= 60);
    for f in &flows {
        let (m, a) = &want[&(f.table_id, f.priority)];
        assert_eq!(
            f.match_text, m,
            "match of table {} priority {}",
            f.table_id, f.priority
        );
        assert_eq!(f.actions, Some(a.as_str()), "actions of {}", f.priority);
        // Every action the corpus uses is decoded, none left as a placeholder.
        assert!(
            !a.contains("nx_action(") && !a.contains("action(type="),
            "placeholder in {a}"
        );
    }
}

#[test]
fn truncated_and_corrupted_replies_are_errors_not_panics() {
    let bodies = bodies();
    let body = bodies[0];
    // Every truncation: an error or fewer flows, never a panic.
    for cut in 0..body.len() {
        let _ = decode(&[&body[..cut]]);
    }
    // A length field that runs past the end is a clear error.
    let mut bad = body.to_vec();
    bad[0] = 0xff;
    bad[1] = 0xff;
    let err = decode(&[&bad])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("ofp_flow_stats"), "{err}");
    // Corrupt every byte in turn (a cheap, deterministic fuzz): never a panic.
    for i in 0..body.len().min(4096) {
        let mut c = body.to_vec();
        c[i] ^= 0xa5;
        let _ = decode(&[&c]);
    }
    // Pseudo-random bytes.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..2000 {
        let len = (x % 300) as usize;
        let mut v = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push(x as u8);
        }
        let _ = decode(&[&v]);
    }
}
