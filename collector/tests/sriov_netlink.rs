//! VF decoding on RTM_NEWLINK bytes laid out as the kernel writes them
//! (`net/core/rtnetlink.c: rtnl_fill_vfinfo`, numbers from `include/uapi/linux/if_link.h`):
//! a PF with two VFs, every VF attribute the kernel puts in `IFLA_VF_INFO` in its order, and
//! `IFLA_VF_STATS` nested inside. Then every truncation and a set of malformed variants: the
//! decoder returns errors, never panics, and one bad link does not spoil the dump.

use dataplane_collector::sources::sriov::netlink::{
    self, IFLA_IFNAME, IFLA_NUM_VF, IFLA_VF_INFO, IFLA_VF_MAC, IFLA_VF_STATS, IFLA_VFINFO_LIST,
    Link, RTM_NEWLINK, VfParseError,
};
use dataplane_collector::sources::sriov::sysfs::VfCounters;

// if_link.h numbers not exported by the decoder (it skips them): written out here.
const IFLA_MTU: u16 = 4;
const IFLA_VF_VLAN: u16 = 2;
const IFLA_VF_TX_RATE: u16 = 3;
const IFLA_VF_SPOOFCHK: u16 = 4;
const IFLA_VF_LINK_STATE: u16 = 5;
const IFLA_VF_RATE: u16 = 6;
const IFLA_VF_RSS_QUERY_EN: u16 = 7;
const IFLA_VF_TRUST: u16 = 9;
const IFLA_VF_VLAN_LIST: u16 = 12;
const IFLA_VF_BROADCAST: u16 = 13;
const IFLA_VF_VLAN_INFO: u16 = 1;
const NLMSG_DONE: u16 = 3;
const NLM_F_MULTI: u16 = 2;

fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out
}

fn u32s(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

/// `IFLA_VF_STATS` as the kernel fills it: RX_PACKETS, TX_PACKETS, RX_BYTES, TX_BYTES,
/// BROADCAST, MULTICAST, RX_DROPPED, TX_DROPPED (u64 each; `pad` puts the zero-length
/// IFLA_VF_STATS_PAD the kernel inserts before a u64 on architectures that need alignment).
fn vf_stats(c: [u64; 8], pad: bool) -> Vec<u8> {
    let kinds = [0u16, 1, 2, 3, 4, 5, 7, 8];
    let mut body = Vec::new();
    for (k, v) in kinds.iter().zip(c) {
        if pad {
            body.extend(nla(6, &[]));
        }
        body.extend(nla(*k, &v.to_ne_bytes()));
    }
    nla(IFLA_VF_STATS, &body)
}

fn vf_info(vf: u32, mac: [u8; 6], stats: Option<Vec<u8>>) -> Vec<u8> {
    let mut mac32 = [0u8; 32];
    mac32[..6].copy_from_slice(&mac);
    let mut ifla_vf_mac = vf.to_ne_bytes().to_vec();
    ifla_vf_mac.extend_from_slice(&mac32);
    let mut body = Vec::new();
    body.extend(nla(IFLA_VF_MAC, &ifla_vf_mac));
    body.extend(nla(IFLA_VF_BROADCAST, &[0xff; 32]));
    body.extend(nla(IFLA_VF_VLAN, &u32s(&[vf, 100, 0])));
    body.extend(nla(IFLA_VF_RATE, &u32s(&[vf, 0, 10_000])));
    body.extend(nla(IFLA_VF_TX_RATE, &u32s(&[vf, 10_000])));
    body.extend(nla(IFLA_VF_SPOOFCHK, &u32s(&[vf, 1])));
    body.extend(nla(IFLA_VF_LINK_STATE, &u32s(&[vf, 0])));
    body.extend(nla(IFLA_VF_RSS_QUERY_EN, &u32s(&[vf, 0])));
    body.extend(nla(IFLA_VF_TRUST, &u32s(&[vf, 0])));
    let mut vlan_info = u32s(&[vf, 100, 0]);
    vlan_info.extend_from_slice(&0x8100u16.to_be_bytes());
    vlan_info.extend_from_slice(&[0, 0]);
    body.extend(nla(IFLA_VF_VLAN_LIST, &nla(IFLA_VF_VLAN_INFO, &vlan_info)));
    if let Some(s) = stats {
        body.extend(s);
    }
    nla(IFLA_VF_INFO, &body)
}

fn link_message(seq: u32, index: i32, name: &str, vfs: &[Vec<u8>]) -> Vec<u8> {
    let mut payload = Vec::new();
    // ifinfomsg: family AF_UNSPEC, pad, type ARPHRD_ETHER (1), index, flags, change.
    payload.extend_from_slice(&[0, 0]);
    payload.extend_from_slice(&1u16.to_ne_bytes());
    payload.extend_from_slice(&index.to_ne_bytes());
    payload.extend_from_slice(&u32s(&[0x1003, 0]));
    let mut ifname = name.as_bytes().to_vec();
    ifname.push(0);
    payload.extend(nla(IFLA_IFNAME, &ifname));
    payload.extend(nla(IFLA_MTU, &u32s(&[1500])));
    if !vfs.is_empty() {
        payload.extend(nla(IFLA_NUM_VF, &u32s(&[vfs.len() as u32])));
        payload.extend(nla(IFLA_VFINFO_LIST, &vfs.concat()));
    }
    message(RTM_NEWLINK, NLM_F_MULTI, seq, &payload)
}

fn message(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(payload);
    out
}

fn done(seq: u32) -> Vec<u8> {
    message(NLMSG_DONE, NLM_F_MULTI, seq, &0i32.to_ne_bytes())
}

const C0: [u64; 8] = [10, 20, 3000, 4000, 5, 6, 7, 8];
const C1: [u64; 8] = [u64::MAX, 1 << 40, 1, 2, 0, 0, 0, 9];

fn counters(c: [u64; 8]) -> VfCounters {
    VfCounters {
        rx_packets: Some(c[0]),
        tx_packets: Some(c[1]),
        rx_bytes: Some(c[2]),
        tx_bytes: Some(c[3]),
        rx_broadcast: Some(c[4]),
        rx_multicast: Some(c[5]),
        rx_dropped: Some(c[6]),
        tx_dropped: Some(c[7]),
        ..VfCounters::default()
    }
}

fn pf_with_two_vfs(seq: u32) -> Vec<u8> {
    link_message(
        seq,
        6,
        "ens801f0",
        &[
            vf_info(0, [2, 0, 0, 0, 0, 1], Some(vf_stats(C0, false))),
            vf_info(1, [2, 0, 0, 0, 0, 2], Some(vf_stats(C1, true))),
        ],
    )
}

fn payload(msg: &[u8]) -> &[u8] {
    &msg[16..]
}

#[test]
fn pf_with_two_vfs_decodes_every_counter() {
    let msg = pf_with_two_vfs(1);
    let link = netlink::parse_link(payload(&msg)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(link.index, 6);
    assert_eq!(link.name, "ens801f0");
    assert_eq!(link.num_vf, Some(2));
    let got: Vec<_> = link.vfs.iter().map(|v| (v.id, v.stats)).collect();
    assert_eq!(
        got,
        [(0, Some(counters(C0))), (1, Some(counters(C1)))],
        "IFLA_VF_STATS_* must land in the right fields"
    );
}

#[test]
fn links_without_vfs_and_vfs_without_stats() {
    let plain = link_message(1, 1, "lo", &[]);
    let link = netlink::parse_link(payload(&plain)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        link,
        Link {
            index: 1,
            name: "lo".into(),
            num_vf: None,
            vfs: vec![]
        }
    );
    // A driver (or RTEXT_FILTER_SKIP_STATS) without IFLA_VF_STATS.
    let msg = link_message(1, 4, "ens785f0", &[vf_info(0, [2; 6], None)]);
    let link = netlink::parse_link(payload(&msg)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(link.vfs.len(), 1);
    assert_eq!(link.vfs[0].stats, None);
}

#[test]
fn a_whole_dump_with_one_bad_link_keeps_the_others() {
    let seq = 77;
    let good = pf_with_two_vfs(seq);
    // A VF whose IFLA_VF_RX_BYTES is 4 bytes long.
    let mut bad_stats = Vec::new();
    bad_stats.extend(nla(2, &7u32.to_ne_bytes()));
    let bad = link_message(
        seq,
        9,
        "ens9",
        &[vf_info(0, [2; 6], Some(nla(IFLA_VF_STATS, &bad_stats)))],
    );
    let lo = link_message(seq, 1, "lo", &[]);
    let mut datagram = [lo, bad, good].concat();
    let mut links = Vec::new();
    let end = netlink::collect_links(&datagram, seq, &mut links).unwrap_or_else(|e| panic!("{e}"));
    assert!(!end, "no NLMSG_DONE yet");
    assert_eq!(links.len(), 3);
    assert!(matches!(&links[0], Ok(l) if l.name == "lo"));
    assert!(
        matches!(
            &links[1],
            Err((
                9,
                VfParseError::CounterSize {
                    attribute: 2,
                    len: 4
                }
            ))
        ),
        "{:?}",
        links[1]
    );
    assert!(matches!(&links[2], Ok(l) if l.vfs.len() == 2));
    datagram = done(seq);
    let end = netlink::collect_links(&datagram, seq, &mut links).unwrap_or_else(|e| panic!("{e}"));
    assert!(end);
    // A reply to another request is an error, not data.
    let mut other = Vec::new();
    assert!(netlink::collect_links(&done(seq + 1), seq, &mut other).is_err());
    // The kernel's refusal comes back as its errno.
    let refused = message(2, 0, seq, &(-1i32).to_ne_bytes().repeat(5));
    let err = netlink::collect_links(&refused, seq, &mut other).err();
    assert!(
        matches!(err, Some(dataplane_collector::netlink::NetlinkError::Kernel { errno, .. }) if errno == nix::errno::Errno::EPERM),
        "{err:?}"
    );
}

#[test]
fn malformed_vf_attributes_are_errors() {
    // No IFLA_VF_MAC: no VF number.
    let no_mac = nla(IFLA_VF_INFO, &vf_stats(C0, false));
    let msg = link_message(1, 2, "x", &[no_mac]);
    assert_eq!(
        netlink::parse_link(payload(&msg)).err(),
        Some(VfParseError::NoVfNumber)
    );
    // IFLA_VF_MAC shorter than its u32.
    let short_mac = nla(IFLA_VF_INFO, &nla(IFLA_VF_MAC, &[1, 2]));
    let msg = link_message(1, 2, "x", &[short_mac]);
    assert!(matches!(
        netlink::parse_link(payload(&msg)).err(),
        Some(VfParseError::ShortVfStruct { len: 2, .. })
    ));
    // A nested length that overruns its parent.
    let mut overrun = vf_info(0, [2; 6], Some(vf_stats(C0, false)));
    let n = overrun.len();
    // The last counter's nla_len grows past the end of IFLA_VF_STATS.
    overrun[n - 12..n - 10].copy_from_slice(&200u16.to_ne_bytes());
    let msg = link_message(1, 2, "x", &[overrun]);
    assert!(matches!(
        netlink::parse_link(payload(&msg)).err(),
        Some(VfParseError::Attributes {
            within: "IFLA_VF_STATS",
            ..
        })
    ));
    // An ifinfomsg cut short.
    assert_eq!(
        netlink::parse_link(&[0; 10]).err(),
        Some(VfParseError::ShortLink { len: 10 })
    );
}

#[test]
fn every_truncation_is_an_error_or_a_shorter_link_never_a_panic() {
    let msg = pf_with_two_vfs(1);
    let full = netlink::parse_link(payload(&msg)).unwrap_or_else(|e| panic!("{e}"));
    for cut in 0..payload(&msg).len() {
        match netlink::parse_link(&payload(&msg)[..cut]) {
            Err(_) => {}
            // A cut on an attribute boundary is a shorter, well-formed message.
            Ok(l) => assert!(l.vfs.len() <= full.vfs.len(), "cut {cut}"),
        }
    }
    // The framing layer on a datagram cut anywhere.
    let datagram = [msg.clone(), done(1)].concat();
    for cut in 0..datagram.len() {
        let mut links = Vec::new();
        let _ = netlink::collect_links(&datagram[..cut], 1, &mut links);
    }
    // Every single byte flipped.
    for i in 0..payload(&msg).len() {
        let mut m = payload(&msg).to_vec();
        m[i] ^= 0xff;
        let _ = netlink::parse_link(&m);
    }
}

mod independent_decoder {
    //! The same bytes through netlink-packet-route (rust-netlink's decoder, written from the same
    //! `if_link.h`, tested on its own nlmon captures of a PF with VFs): if our constructed
    //! layout were wrong, the two would disagree.

    use super::*;
    use netlink_packet_core::{Emitable, Parseable};
    use netlink_packet_route::link::{
        LinkAttribute, LinkMessage, LinkVfInfo, VfInfo as NprVfInfo, VfInfoMac, VfStats,
    };

    fn their_counters(stats: &[VfStats]) -> VfCounters {
        let mut c = VfCounters::default();
        for s in stats {
            match s {
                VfStats::RxPackets(v) => c.rx_packets = Some(*v),
                VfStats::TxPackets(v) => c.tx_packets = Some(*v),
                VfStats::RxBytes(v) => c.rx_bytes = Some(*v),
                VfStats::TxBytes(v) => c.tx_bytes = Some(*v),
                VfStats::Broadcast(v) => c.rx_broadcast = Some(*v),
                VfStats::Multicast(v) => c.rx_multicast = Some(*v),
                VfStats::RxDropped(v) => c.rx_dropped = Some(*v),
                VfStats::TxDropped(v) => c.tx_dropped = Some(*v),
                _ => {}
            }
        }
        c
    }

    #[test]
    fn netlink_packet_route_reads_our_kernel_layout_the_same() {
        let msg = pf_with_two_vfs(1);
        let theirs = LinkMessage::parse(payload(&msg)).unwrap_or_else(|e| panic!("{e}"));
        let ours = netlink::parse_link(payload(&msg)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(theirs.header.index, 6);
        let mut vfs = Vec::new();
        for a in &theirs.attributes {
            match a {
                LinkAttribute::IfName(n) => assert_eq!(n, &ours.name),
                LinkAttribute::NumVf(n) => assert_eq!(Some(*n), ours.num_vf),
                LinkAttribute::VfInfoList(list) => {
                    for LinkVfInfo(attrs) in list {
                        let mut id = None;
                        let mut stats = None;
                        for x in attrs {
                            match x {
                                NprVfInfo::Mac(m) => id = Some(m.vf_id),
                                NprVfInfo::Stats(s) => stats = Some(their_counters(s)),
                                _ => {}
                            }
                        }
                        vfs.push((id, stats));
                    }
                }
                _ => {}
            }
        }
        let want: Vec<_> = ours.vfs.iter().map(|v| (Some(v.id), v.stats)).collect();
        assert_eq!(vfs, want);
        assert_eq!(vfs.len(), 2);
    }

    #[test]
    fn we_read_what_netlink_packet_route_emits() {
        let mut m = LinkMessage::default();
        m.header.index = 42;
        m.attributes = vec![
            LinkAttribute::IfName("ens1f0".into()),
            LinkAttribute::NumVf(3),
            LinkAttribute::VfInfoList(
                (0..3u32)
                    .map(|vf| {
                        let n = u64::from(vf) * 1000;
                        LinkVfInfo(vec![
                            NprVfInfo::Mac(VfInfoMac::new(vf, &[2, 0, 0, 0, 0, vf as u8])),
                            NprVfInfo::Stats(vec![
                                VfStats::RxPackets(n + 1),
                                VfStats::TxPackets(n + 2),
                                VfStats::RxBytes(n + 3),
                                VfStats::TxBytes(n + 4),
                                VfStats::Broadcast(n + 5),
                                VfStats::Multicast(n + 6),
                                VfStats::RxDropped(n + 7),
                                VfStats::TxDropped(n + 8),
                            ]),
                        ])
                    })
                    .collect(),
            ),
        ];
        let mut buf = vec![0u8; m.buffer_len()];
        m.emit(&mut buf);
        let ours = netlink::parse_link(&buf).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ours.index, 42);
        assert_eq!(ours.name, "ens1f0");
        assert_eq!(ours.num_vf, Some(3));
        assert_eq!(ours.vfs.len(), 3);
        for (i, v) in ours.vfs.iter().enumerate() {
            let n = i as u64 * 1000;
            assert_eq!(v.id, i as u32);
            assert_eq!(
                v.stats,
                Some(counters([
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4,
                    n + 5,
                    n + 6,
                    n + 7,
                    n + 8
                ]))
            );
        }
    }
}
