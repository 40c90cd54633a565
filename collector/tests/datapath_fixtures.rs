//! The kernel datapath's netlink replies captured in the lab (`cargo xtask lab datapath`,
//! `fixtures/datapath/read.bin`) with `ovs-dpctl show -s` of the same moment: the decoders
//! give every figure ovs-dpctl printed, and no cut or flipped byte of the capture panics.

use dataplane_collector::sources::datapath::kernel::{KernelData, Replay, read};
use dataplane_collector::sources::vswitchd::parse::dpctl_show;
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/datapath")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn replay(bin: &[u8]) -> Result<Option<KernelData>, String> {
    let mut r = Replay::new(bin)?;
    read(&mut r).map_err(|e| format!("{e:?}"))
}

#[test]
fn the_capture_decodes_to_what_ovs_dpctl_printed() {
    let k = replay(&fixture("read.bin"))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no ovs_datapath family in the capture"));
    let text = String::from_utf8(fixture("ovs-dpctl-show-s.txt")).unwrap_or_default();
    let want = dpctl_show(&text).unwrap_or_else(|e| panic!("{e}"));
    assert!(!want.is_empty());
    assert_eq!(k.datapaths.len(), want.len());
    for (got, want) in k.datapaths.iter().zip(&want) {
        assert_eq!(got.name, want.name);
        assert_eq!(got.kind, want.kind);
        assert_eq!(
            (got.hit, got.missed, got.lost, got.flows),
            (want.hit, want.missed, want.lost, want.flows),
            "{}",
            want.name
        );
        assert_eq!((got.mask_hit, got.masks), (want.mask_hit, want.masks));
        assert_eq!(got.cache_hit, want.cache_hit);
        assert_eq!(got.caches, want.caches);
        assert_eq!(got.ports.len(), want.ports.len());
        for (g, w) in got.ports.iter().zip(&want.ports) {
            assert_eq!((g.number, &g.name, &g.kind), (w.number, &w.name, &w.kind));
            let (g, w) = (g.stats.unwrap_or_default(), w.stats.unwrap_or_default());
            assert_eq!(
                (g.rx_packets, g.rx_bytes, g.rx_errors, g.rx_dropped),
                (w.rx_packets, w.rx_bytes, w.rx_errors, w.rx_dropped)
            );
            assert_eq!(
                (g.tx_packets, g.tx_bytes, g.tx_errors, g.tx_dropped),
                (w.tx_packets, w.tx_bytes, w.tx_errors, w.tx_dropped)
            );
        }
    }
    let z = k
        .zone_limits
        .unwrap_or_else(|| panic!("no zone limits in the capture"));
    assert_eq!(z.default_limit, 1000);
    assert!(
        z.zones
            .iter()
            .any(|&(zone, limit, count)| zone == 5 && limit == 50 && count > 0)
    );
}

#[test]
fn no_cut_or_flipped_byte_panics() {
    let bin = fixture("read.bin");
    // Every cut of the file (the replay refuses a cut datagram), and every byte flipped in
    // each datagram (length prefixes kept, so the decoders see the damage).
    for n in 0..bin.len() {
        let _ = replay(&bin[..n]);
    }
    let mut at = 0;
    let mut bodies = Vec::new();
    while at + 4 <= bin.len() {
        let len = u32::from_be_bytes([bin[at], bin[at + 1], bin[at + 2], bin[at + 3]]) as usize;
        bodies.push(at + 4..at + 4 + len);
        at += 4 + len;
    }
    let mut copy = bin.clone();
    for r in bodies {
        for i in r {
            for flip in [0xff_u8, 0x01, 0x80] {
                copy[i] ^= flip;
                let _ = replay(&copy);
                copy[i] ^= flip;
            }
        }
    }
}
