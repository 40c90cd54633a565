//! The conntrack codec on netlink replies captured from this host's kernel (6.18; the ignored
//! test `sources::conntrack::capture` refreshes them, as root): a whole read, decoded and
//! checked against `conntrack -S`, `conntrack -S expect` and `conntrack -C` printed right after
//! (`conntrack-S.txt`, an idle moment); then every truncation and byte flip of every datagram,
//! which must decode to an error or a value, never a panic.

mod common;

use common::conntrack::{datagrams, fixture, replay, replies};
use dataplane_collector::exposition::Writer;
use dataplane_collector::registry::Source;
use dataplane_collector::sources::conntrack::parse::{self, CT_STATS, EXP_STATS};
use dataplane_collector::sources::conntrack::{ConntrackSource, Snapshot};
use std::collections::BTreeMap;

/// `conntrack -S`'s `name=value` words by (section, CPU).
type ToolStats = BTreeMap<(String, u16), BTreeMap<String, u64>>;

/// `conntrack -S`'s and `conntrack -S expect`'s statistics, and `conntrack -C`'s count.
fn conntrack_s() -> (ToolStats, u64) {
    let text = String::from_utf8(fixture("conntrack-S.txt")).unwrap_or_default();
    let mut out = BTreeMap::new();
    let mut section = String::new();
    let mut count = None;
    for line in text.lines() {
        if let Some(s) = line.strip_prefix("# ") {
            section = s.to_owned();
            continue;
        }
        if section == "conntrack -C" {
            count = line.trim().parse().ok();
            continue;
        }
        let mut cpu = None;
        let mut values = BTreeMap::new();
        for w in line.split_whitespace() {
            let Some((k, v)) = w.split_once('=') else {
                continue;
            };
            let v: u64 = v.parse().unwrap_or_else(|e| panic!("{w}: {e}"));
            if k == "cpu" {
                cpu = Some(v as u16);
            } else {
                values.insert(k.to_owned(), v);
            }
        }
        out.insert(
            (section.clone(), cpu.unwrap_or_else(|| panic!("{line}"))),
            values,
        );
    }
    (out, count.unwrap_or_else(|| panic!("no count in {text}")))
}

#[test]
fn a_captured_read_equals_conntrack_s() {
    let snap = replay(&datagrams()).unwrap_or_else(|e| panic!("{e}"));
    let (tool, count) = conntrack_s();
    assert_eq!(u64::from(snap.entries), count);
    assert_eq!(
        snap.max_entries,
        Some(262_144),
        "nf_conntrack_max at capture"
    );
    let mut compared = 0;
    for (section, stats, cpus) in [
        ("conntrack -S", CT_STATS, &snap.cpus),
        ("conntrack -S expect", EXP_STATS, &snap.expect),
    ] {
        assert_eq!(
            cpus.len(),
            tool.keys().filter(|(s, _)| s == section).count(),
            "{section}: CPUs"
        );
        for c in cpus {
            let want = &tool[&(section.to_owned(), c.cpu)];
            let got: BTreeMap<String, u64> = stats
                .iter()
                .zip(&c.values)
                .filter_map(|(s, v)| v.map(|v| (s.name.to_owned(), u64::from(v))))
                .collect();
            // Every statistic conntrack prints is decoded with its value; this kernel sends
            // none of the obsolete ones.
            assert_eq!(&got, want, "{section} cpu {}", c.cpu);
            compared += got.len();
        }
    }
    assert_eq!(compared, 2 * 10 + 2 * 3);
    assert!(
        snap.cpus[0].values[3].is_some_and(|v| v > 0),
        "invalid was made nonzero"
    );
}

#[tokio::test]
async fn the_captured_read_encodes_to_the_documented_series() {
    struct Captured(Snapshot);
    impl dataplane_collector::sources::conntrack::Reader for Captured {
        fn read(
            &self,
            _: std::time::Duration,
        ) -> Result<Snapshot, dataplane_collector::sources::conntrack::ConntrackError> {
            Ok(self.0.clone())
        }
    }
    let snap = replay(&datagrams()).unwrap_or_else(|e| panic!("{e}"));
    let src = ConntrackSource::with_reader(std::sync::Arc::new(Captured(snap.clone())));
    let mut w = Writer::new();
    src.encode(&snap, &mut w);
    let text = w.into_string();
    for want in [
        "conntrack_entries 5",
        "conntrack_max_entries 262144",
        "conntrack_invalid_total{cpu=\"0\"} 6",
        "conntrack_chaintoolong_total{cpu=\"1\"} 0",
        "conntrack_expect_new_total{cpu=\"1\"} 0",
    ] {
        assert!(text.lines().any(|l| l == want), "no {want} in\n{text}");
    }
    assert!(!text.contains("conntrack_searched"), "{text}");
    common::promtool::check_metrics(&text).unwrap_or_else(|e| panic!("{e}"));
}

/// Decodes everything in `d` that frames; true when every message decoded.
fn decode_all(d: &[u8]) -> bool {
    let mut ok = true;
    for m in dataplane_collector::netlink::messages(d) {
        let Ok(m) = m else { return false };
        let r = match m.msg_type & 0xff {
            4 => parse::parse_ct_cpu(&m).map(|_| ()),
            3 if m.msg_type >> 8 != 0 => parse::parse_exp_cpu(&m).map(|_| ()),
            5 => parse::parse_global(&m).map(|_| ()),
            _ => Ok(()),
        };
        ok &= r.is_ok();
        let _ = dataplane_collector::netlink::dump_item(m, m.seq);
    }
    ok
}

#[test]
fn every_truncation_and_byte_flip_of_the_capture_is_handled() {
    let dgs = datagrams();
    assert_eq!(replies(&dgs).map(|r| r.len()).ok(), Some(3));
    for d in &dgs {
        assert!(decode_all(d));
        for cut in 0..d.len() {
            decode_all(&d[..cut]);
        }
        for i in 0..d.len() {
            for bit in [0x01u8, 0x80, 0xff] {
                let mut b = d.clone();
                b[i] ^= bit;
                decode_all(&b);
            }
        }
    }
}
