//! A match written exactly as `ovs-ofctl dump-flows` writes it (Open vSwitch's `match_format()`),
//! without the leading `priority=N,`: fields in Open vSwitch's order, protocol shorthands
//! (`ip`, `tcp6`, `arp`, …), masks as CIDR prefixes where they are prefixes, ports as numbers.
//!
//! The reference is Open vSwitch 3.1 (Debian 12), checked flow by flow against a real
//! `ovs-vswitchd` in `tests/tests/flow_text.rs`. Later releases print `nw_proto=2` as `igmp`;
//! 3.1 does not, and neither do we.
//!
//! Fields Open vSwitch would print but this module does not know (`tun_metadata*`, NSH, ERSPAN,
//! GTP-U, `packet_type`) are written after the known ones as `name=0xVALUE[/0xMASK]`, with the
//! OXM class and field number when there is no name; see `docs/flows.md`.

use super::oxm::{Field, MatchFields, REGS, RawOxm};
use super::port;
use std::fmt::Write as _;

const ETH_TYPE_IP: u128 = 0x0800;
const ETH_TYPE_IPV6: u128 = 0x86dd;
const ETH_TYPE_ARP: u128 = 0x0806;
const ETH_TYPE_RARP: u128 = 0x8035;
const ETH_TYPE_MPLS: u128 = 0x8847;
const ETH_TYPE_MPLS_MCAST: u128 = 0x8848;
const ETH_TYPE_NSH: u128 = 0x894f;

const IPPROTO_ICMP: u128 = 1;
const IPPROTO_TCP: u128 = 6;
const IPPROTO_UDP: u128 = 17;
const IPPROTO_ICMPV6: u128 = 58;
const IPPROTO_SCTP: u128 = 132;

const VLAN_CFI: u128 = 0x1000;
const VLAN_VID_MASK: u128 = 0x0fff;
const VLAN_PCP_MASK: u128 = 0xe000;

const REG_BITS: u128 = MatchFields::bits_of(&REGS);
const CT_BITS: u128 = MatchFields::bits_of(&[
    Field::CtState,
    Field::CtZone,
    Field::CtMark,
    Field::CtLabel,
    Field::CtNwSrc,
    Field::CtIpv6Src,
    Field::CtNwDst,
    Field::CtIpv6Dst,
    Field::CtNwProto,
]);
const TUNNEL_BITS: u128 = MatchFields::bits_of(&[
    Field::TunId,
    Field::TunSrc,
    Field::TunDst,
    Field::TunIpv6Src,
    Field::TunIpv6Dst,
    Field::TunGbpId,
    Field::TunGbpFlags,
    Field::TunTos,
    Field::TunTtl,
    Field::TunFlags,
]);

/// Appends the match (no priority) to `s`.
pub fn format_match(m: &MatchFields, s: &mut String) {
    let start = s.len();
    let dl_type = m.value(Field::DlType);
    let dl_type_masked = m.mask(Field::DlType) != 0;
    let nw_proto = m.value(Field::NwProto);
    let nw_proto_masked = m.mask(Field::NwProto) != 0;

    hex32(s, m, Field::PktMark);
    hex32(s, m, Field::RecircId);
    hex32(s, m, Field::DpHash);
    if let Some((v, _)) = m.get(Field::ConjId) {
        let _ = write!(s, "conj_id={v},");
    }
    if let Some((v, _)) = m.get(Field::SkbPriority) {
        let _ = write!(s, "skb_priority={},", c_hex(v));
    }
    if let Some((v, _)) = m.get(Field::ActsetOutput) {
        s.push_str("actset_output=");
        format_port(s, v as u16);
        s.push(',');
    }
    if m.any_of(CT_BITS) {
        format_ct(m, s);
    }

    let mut skip_type = false;
    let mut skip_proto = false;
    if dl_type_masked {
        skip_type = true;
        let name = match dl_type {
            ETH_TYPE_IP if nw_proto_masked => {
                skip_proto = true;
                match nw_proto {
                    IPPROTO_ICMP => "icmp",
                    IPPROTO_TCP => "tcp",
                    IPPROTO_UDP => "udp",
                    IPPROTO_SCTP => "sctp",
                    _ => {
                        skip_proto = false;
                        "ip"
                    }
                }
            }
            ETH_TYPE_IP => "ip",
            ETH_TYPE_IPV6 if nw_proto_masked => {
                skip_proto = true;
                match nw_proto {
                    IPPROTO_ICMPV6 => "icmp6",
                    IPPROTO_TCP => "tcp6",
                    IPPROTO_UDP => "udp6",
                    IPPROTO_SCTP => "sctp6",
                    _ => {
                        skip_proto = false;
                        "ipv6"
                    }
                }
            }
            ETH_TYPE_IPV6 => "ipv6",
            ETH_TYPE_ARP => "arp",
            ETH_TYPE_RARP => "rarp",
            ETH_TYPE_MPLS => "mpls",
            ETH_TYPE_MPLS_MCAST => "mplsm",
            _ => {
                skip_type = false;
                ""
            }
        };
        if !name.is_empty() {
            s.push_str(name);
            s.push(',');
        }
    }

    if m.any_of(REG_BITS) {
        for f in REGS {
            hex32(s, m, f);
        }
    }
    if m.any_of(TUNNEL_BITS) {
        format_tunnel(m, s);
    }
    hex64(s, m, Field::Metadata);
    if let Some((v, _)) = m.get(Field::InPort) {
        s.push_str("in_port=");
        format_port(s, v as u16);
        s.push(',');
    }
    if let Some((tci, mask)) = m.get(Field::VlanTci) {
        let vid_mask = mask & VLAN_VID_MASK;
        let pcp_mask = mask & VLAN_PCP_MASK;
        let cfi = mask & VLAN_CFI;
        if cfi != 0
            && tci & VLAN_CFI != 0
            && (vid_mask == 0 || vid_mask == VLAN_VID_MASK)
            && (pcp_mask == 0 || pcp_mask == VLAN_PCP_MASK)
            && (vid_mask != 0 || pcp_mask != 0)
        {
            if vid_mask != 0 {
                let _ = write!(s, "dl_vlan={},", tci & VLAN_VID_MASK);
            }
            if pcp_mask != 0 {
                let _ = write!(s, "dl_vlan_pcp={},", (tci & VLAN_PCP_MASK) >> 13);
            }
        } else if mask == 0xffff {
            let _ = write!(s, "vlan_tci=0x{tci:04x},");
        } else {
            let _ = write!(s, "vlan_tci=0x{tci:04x}/0x{mask:04x},");
        }
    }
    eth_masked(s, m, Field::DlSrc, "dl_src");
    eth_masked(s, m, Field::DlDst, "dl_dst");
    if !skip_type && dl_type_masked {
        let _ = write!(s, "dl_type=0x{dl_type:04x},");
    }

    let is_arp = dl_type == ETH_TYPE_ARP || dl_type == ETH_TYPE_RARP;
    if dl_type == ETH_TYPE_IPV6 {
        ipv6_masked(s, m, Field::Ipv6Src, "ipv6_src");
        ipv6_masked(s, m, Field::Ipv6Dst, "ipv6_dst");
        if let Some((v, mask)) = m.get(Field::Ipv6Label) {
            if mask == 0xffff_ffff {
                let _ = write!(s, "ipv6_label=0x{v:05x},");
            } else {
                let _ = write!(s, "ipv6_label=0x{v:05x}/0x{mask:05x},");
            }
        }
    } else if is_arp {
        ipv4_masked(s, m, Field::NwSrc, "arp_spa");
        ipv4_masked(s, m, Field::NwDst, "arp_tpa");
    } else if dl_type == ETH_TYPE_NSH {
        // NSH fields are not decoded (see the module docs).
    } else {
        ipv4_masked(s, m, Field::NwSrc, "nw_src");
        ipv4_masked(s, m, Field::NwDst, "nw_dst");
    }
    if !skip_proto && nw_proto_masked {
        let name = if is_arp { "arp_op" } else { "nw_proto" };
        let _ = write!(s, "{name}={nw_proto},");
    }
    if is_arp {
        eth_masked(s, m, Field::ArpSha, "arp_sha");
        eth_masked(s, m, Field::ArpTha, "arp_tha");
    }
    if let Some((tos, mask)) = m.get(Field::NwTos) {
        if mask & 0xfc != 0 {
            let _ = write!(s, "nw_tos={},", tos & 0xfc);
        }
        if mask & 0x03 != 0 {
            let _ = write!(s, "nw_ecn={},", tos & 0x03);
        }
    }
    if let Some((v, _)) = m.get(Field::NwTtl) {
        let _ = write!(s, "nw_ttl={v},");
    }
    if let Some((lse, mask)) = m.get(Field::MplsLse) {
        if mask & 0xffff_f000 != 0 {
            let _ = write!(s, "mpls_label={},", lse >> 12);
        }
        if mask & 0xe00 != 0 {
            let _ = write!(s, "mpls_tc={},", (lse >> 9) & 7);
        }
        if mask & 0xff != 0 {
            let _ = write!(s, "mpls_ttl={},", lse & 0xff);
        }
        if mask & 0x100 != 0 {
            let _ = write!(s, "mpls_bos={},", (lse >> 8) & 1);
        }
    }
    if let Some((frag, mask)) = m.get(Field::NwFrag) {
        let any = frag & 1 != 0;
        let later = frag & 2 != 0;
        let text = match mask & 3 {
            3 => match (any, later) {
                (true, true) => "later",
                (true, false) => "first",
                (false, true) => "<error>",
                (false, false) => "no",
            },
            1 => {
                if any {
                    "yes"
                } else {
                    "no"
                }
            }
            2 => {
                if later {
                    "later"
                } else {
                    "not_later"
                }
            }
            _ => "",
        };
        if !text.is_empty() {
            let _ = write!(s, "nw_frag={text},");
        }
    }
    if dl_type == ETH_TYPE_IP && nw_proto == IPPROTO_ICMP {
        be16_masked(s, m, Field::TpSrc, "icmp_type");
        be16_masked(s, m, Field::TpDst, "icmp_code");
    } else if dl_type == ETH_TYPE_IPV6 && nw_proto == IPPROTO_ICMPV6 {
        be16_masked(s, m, Field::TpSrc, "icmp_type");
        be16_masked(s, m, Field::TpDst, "icmp_code");
        ipv6_masked(s, m, Field::NdTarget, "nd_target");
        eth_masked(s, m, Field::ArpSha, "nd_sll");
        eth_masked(s, m, Field::ArpTha, "nd_tll");
    } else {
        be16_masked(s, m, Field::TpSrc, "tp_src");
        be16_masked(s, m, Field::TpDst, "tp_dst");
    }
    if (dl_type == ETH_TYPE_IP || dl_type == ETH_TYPE_IPV6)
        && nw_proto == IPPROTO_TCP
        && let Some((v, mask)) = m.get(Field::TcpFlags)
    {
        {
            format_flags_masked(
                s,
                "tcp_flags",
                (v & 0xfff) as u32,
                (mask & 0xfff) as u32,
                0xfff,
                tcp_flag_name,
            );
            s.push(',');
        }
    }
    if let Some((v, mask)) = m.get(Field::PacketType) {
        let _ = write!(s, "packet_type=(0x{:x},0x{:x})", v >> 16, v & 0xffff);
        if mask != 0xffff_ffff {
            let _ = write!(s, "/{mask:#x}");
        }
        s.push(',');
    }
    for raw in &m.unknown {
        format_raw(s, raw);
        s.push(',');
    }

    if s.len() > start && s.ends_with(',') {
        s.pop();
    }
}

fn format_tunnel(m: &MatchFields, s: &mut String) {
    hex64(s, m, Field::TunId);
    ipv4_masked(s, m, Field::TunSrc, "tun_src");
    ipv4_masked(s, m, Field::TunDst, "tun_dst");
    ipv6_masked(s, m, Field::TunIpv6Src, "tun_ipv6_src");
    ipv6_masked(s, m, Field::TunIpv6Dst, "tun_ipv6_dst");
    uint_masked(s, m, Field::TunGbpId, 16);
    if let Some((v, _)) = m.get(Field::TunGbpFlags) {
        let _ = write!(s, "tun_gbp_flags={},", c_hex(v));
    }
    if let Some((v, _)) = m.get(Field::TunTos) {
        let _ = write!(s, "tun_tos={v:x},");
    }
    if let Some((v, _)) = m.get(Field::TunTtl) {
        let _ = write!(s, "tun_ttl={v},");
    }
    if let Some((v, mask)) = m.get(Field::TunFlags) {
        let (v, mask) = ((v & 1) as u32, (mask & 1) as u32);
        if mask != 0 {
            format_flags_masked(s, "tun_flags", v, mask, 1, tun_flag_name);
            s.push(',');
        }
    }
}

fn format_ct(m: &MatchFields, s: &mut String) {
    if let Some((v, mask)) = m.get(Field::CtState) {
        if mask == 0xff {
            s.push_str("ct_state=");
            format_flags(s, v as u32, ct_state_name, '|');
        } else {
            format_flags_masked(s, "ct_state", v as u32, mask as u32, 0xff, ct_state_name);
        }
        s.push(',');
    }
    uint_masked(s, m, Field::CtZone, 16);
    hex32(s, m, Field::CtMark);
    if let Some((v, mask)) = m.get(Field::CtLabel) {
        s.push_str("ct_label=");
        put_hex_bytes(s, &v.to_be_bytes());
        if mask != u128::MAX {
            s.push('/');
            put_hex_bytes(s, &mask.to_be_bytes());
        }
        s.push(',');
    }
    ipv4_masked(s, m, Field::CtNwSrc, "ct_nw_src");
    ipv6_masked(s, m, Field::CtIpv6Src, "ct_ipv6_src");
    ipv4_masked(s, m, Field::CtNwDst, "ct_nw_dst");
    ipv6_masked(s, m, Field::CtIpv6Dst, "ct_ipv6_dst");
    if let Some((v, _)) = m.get(Field::CtNwProto) {
        let _ = write!(s, "ct_nw_proto={v},");
        uint_masked(s, m, Field::CtTpSrc, 16);
        uint_masked(s, m, Field::CtTpDst, 16);
    }
}

fn format_raw(s: &mut String, raw: &RawOxm) {
    let _ = match raw.experimenter {
        Some(exp) => write!(s, "oxm(0x{:04x},{:#x},{})=", raw.class, exp, raw.field),
        None => write!(s, "oxm(0x{:04x},{})=", raw.class, raw.field),
    };
    s.push_str("0x");
    for b in &raw.value {
        let _ = write!(s, "{b:02x}");
    }
    if let Some(mask) = &raw.mask {
        s.push_str("/0x");
        for b in mask {
            let _ = write!(s, "{b:02x}");
        }
    }
}

/// `%#x` as C prints it: `0` for zero, `0x…` otherwise.
pub(crate) struct CHex(pub u128);

impl std::fmt::Display for CHex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 == 0 {
            f.write_str("0")
        } else {
            write!(f, "{:#x}", self.0)
        }
    }
}

pub(crate) fn c_hex(v: u128) -> CHex {
    CHex(v)
}

/// `name=%#x[/%#x],` for 32-bit hex fields (registers, marks).
fn hex32(s: &mut String, m: &MatchFields, f: Field) {
    if let Some((v, mask)) = m.get(f) {
        let _ = write!(s, "{}={}", f.name(), c_hex(v));
        if mask != 0xffff_ffff {
            let _ = write!(s, "/{}", c_hex(mask));
        }
        s.push(',');
    }
}

fn hex64(s: &mut String, m: &MatchFields, f: Field) {
    if let Some((v, mask)) = m.get(f) {
        let _ = write!(s, "{}={}", f.name(), c_hex(v));
        if mask != u128::from(u64::MAX) {
            let _ = write!(s, "/{}", c_hex(mask));
        }
        s.push(',');
    }
}

/// Decimal when exact, `0x%x/0x%x` when masked (`format_uint16_masked`).
fn uint_masked(s: &mut String, m: &MatchFields, f: Field, bits: u32) {
    if let Some((v, mask)) = m.get(f) {
        if mask == (1u128 << bits) - 1 {
            let _ = write!(s, "{}={v},", f.name());
        } else {
            let _ = write!(s, "{}=0x{v:x}/0x{mask:x},", f.name());
        }
    }
}

fn be16_masked(s: &mut String, m: &MatchFields, f: Field, name: &str) {
    if let Some((v, mask)) = m.get(f) {
        if mask == 0xffff {
            let _ = write!(s, "{name}={v},");
        } else {
            let _ = write!(s, "{name}=0x{v:x}/0x{mask:x},");
        }
    }
}

fn ipv4_masked(s: &mut String, m: &MatchFields, f: Field, name: &str) {
    if let Some((v, mask)) = m.get(f) {
        s.push_str(name);
        s.push('=');
        put_ipv4(s, v as u32);
        let mask = mask as u32;
        if mask != u32::MAX {
            if mask.leading_ones() + mask.trailing_zeros() == 32 {
                let _ = write!(s, "/{}", mask.leading_ones());
            } else {
                s.push('/');
                put_ipv4(s, mask);
            }
        }
        s.push(',');
    }
}

fn ipv6_masked(s: &mut String, m: &MatchFields, f: Field, name: &str) {
    if let Some((v, mask)) = m.get(f) {
        s.push_str(name);
        s.push('=');
        put_ipv6(s, v);
        if mask != u128::MAX {
            if mask.leading_ones() + mask.trailing_zeros() == 128 {
                let _ = write!(s, "/{}", mask.leading_ones());
            } else {
                s.push('/');
                put_ipv6(s, mask);
            }
        }
        s.push(',');
    }
}

fn eth_masked(s: &mut String, m: &MatchFields, f: Field, name: &str) {
    if let Some((v, mask)) = m.get(f) {
        s.push_str(name);
        s.push('=');
        put_eth(s, v as u64);
        if mask != 0xffff_ffff_ffff {
            s.push('/');
            put_eth(s, mask as u64);
        }
        s.push(',');
    }
}

/// Dotted-quad IPv4.
pub fn put_ipv4(s: &mut String, v: u32) {
    let b = v.to_be_bytes();
    let mut buf = itoa::Buffer::new();
    for (i, octet) in b.iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        s.push_str(buf.format(*octet));
    }
}

/// `xx:xx:xx:xx:xx:xx`.
pub fn put_eth(s: &mut String, v: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let b = v.to_be_bytes();
    for (i, octet) in b[2..].iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push(HEX[(octet >> 4) as usize] as char);
        s.push(HEX[(octet & 0xf) as usize] as char);
    }
}

/// IPv6 as glibc's `inet_ntop()` writes it (which Open vSwitch uses), including its dotted
/// IPv4 tail for IPv4-compatible and IPv4-mapped addresses.
pub fn put_ipv6(s: &mut String, v: u128) {
    let b = v.to_be_bytes();
    let words: [u16; 8] = std::array::from_fn(|i| u16::from_be_bytes([b[2 * i], b[2 * i + 1]]));
    // The longest run of two or more zero words, the first one on a tie.
    let (mut best_base, mut best_len) = (usize::MAX, 0usize);
    let (mut cur_base, mut cur_len) = (usize::MAX, 0usize);
    for (i, &w) in words.iter().enumerate() {
        if w == 0 {
            if cur_base == usize::MAX {
                cur_base = i;
                cur_len = 1;
            } else {
                cur_len += 1;
            }
        } else if cur_base != usize::MAX {
            if best_base == usize::MAX || cur_len > best_len {
                (best_base, best_len) = (cur_base, cur_len);
            }
            cur_base = usize::MAX;
        }
    }
    if cur_base != usize::MAX && (best_base == usize::MAX || cur_len > best_len) {
        (best_base, best_len) = (cur_base, cur_len);
    }
    if best_base != usize::MAX && best_len < 2 {
        best_base = usize::MAX;
    }
    let mut i = 0;
    while i < 8 {
        if best_base != usize::MAX && i >= best_base && i < best_base + best_len {
            if i == best_base {
                s.push(':');
            }
            i += 1;
            continue;
        }
        if i != 0 {
            s.push(':');
        }
        if i == 6 && best_base == 0 && (best_len == 6 || (best_len == 5 && words[5] == 0xffff)) {
            put_ipv4(s, v as u32);
            return;
        }
        let _ = write!(s, "{:x}", words[i]);
        i += 1;
    }
    if best_base != usize::MAX && best_base + best_len == 8 {
        s.push(':');
    }
}

/// Open vSwitch's `ds_put_hex()`: `0x` and the bytes from the first non-zero one, or `0`.
fn put_hex_bytes(s: &mut String, bytes: &[u8]) {
    let mut printed = false;
    for &b in bytes {
        if b != 0 || printed {
            if printed {
                let _ = write!(s, "{b:02x}");
            } else {
                let _ = write!(s, "0x{b:x}");
            }
            printed = true;
        }
    }
    if !printed {
        s.push('0');
    }
}

/// A port as Open vSwitch prints it without a name map: a number, or a reserved name.
pub fn format_port(s: &mut String, p: u16) {
    match port::reserved_name(p) {
        Some(name) => s.push_str(name),
        None => {
            let mut b = itoa::Buffer::new();
            s.push_str(b.format(p));
        }
    }
}

fn ct_state_name(bit: u32) -> Option<&'static str> {
    Some(match bit {
        0x01 => "new",
        0x02 => "est",
        0x04 => "rel",
        0x08 => "rpl",
        0x10 => "inv",
        0x20 => "trk",
        0x40 => "snat",
        0x80 => "dnat",
        _ => return None,
    })
}

fn tcp_flag_name(bit: u32) -> Option<&'static str> {
    Some(match bit {
        0x001 => "fin",
        0x002 => "syn",
        0x004 => "rst",
        0x008 => "psh",
        0x010 => "ack",
        0x020 => "urg",
        0x040 => "ece",
        0x080 => "cwr",
        0x100 => "ns",
        0x200 => "[200]",
        0x400 => "[400]",
        0x800 => "[800]",
        _ => return None,
    })
}

fn tun_flag_name(bit: u32) -> Option<&'static str> {
    (bit == 1).then_some("oam")
}

/// Open vSwitch's `format_flags()`.
fn format_flags(s: &mut String, flags: u32, name: fn(u32) -> Option<&'static str>, del: char) {
    if flags == 0 {
        s.push('0');
        return;
    }
    let mut bad = 0u32;
    let mut rest = flags;
    let mut any = false;
    while rest != 0 {
        let bit = rest & rest.wrapping_neg();
        match name(bit) {
            Some(n) => {
                s.push_str(n);
                s.push(del);
                any = true;
            }
            None => bad |= bit,
        }
        rest &= !bit;
    }
    if bad != 0 {
        let _ = write!(s, "0x{bad:x}{del}");
        any = true;
    }
    if any && s.ends_with(del) {
        s.pop();
    }
}

/// Open vSwitch's `format_flags_masked()`: `+flag-flag` for partial masks.
fn format_flags_masked(
    s: &mut String,
    field: &str,
    flags: u32,
    mask: u32,
    max_mask: u32,
    name: fn(u32) -> Option<&'static str>,
) {
    s.push_str(field);
    s.push('=');
    if mask == max_mask {
        format_flags(s, flags, name, '|');
        return;
    }
    if mask == 0 {
        s.push_str("0/0");
        return;
    }
    let mut rest = mask;
    while rest != 0 {
        let bit = rest & rest.wrapping_neg();
        s.push(if flags & bit != 0 { '+' } else { '-' });
        s.push_str(name(bit).unwrap_or("[Unknown]"));
        rest &= !bit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openflow::oxm::Field as F;

    fn fmt(set: &[(F, u128, u128)]) -> String {
        let mut m = MatchFields::default();
        for &(f, v, mask) in set {
            m.merge(f, v, mask);
        }
        let mut s = String::new();
        format_match(&m, &mut s);
        s
    }

    #[test]
    fn shorthands_and_order() {
        assert_eq!(fmt(&[]), "");
        assert_eq!(
            fmt(&[
                (F::DlType, 0x800, 0xffff),
                (F::NwDst, 0x0af4_0003, 0xffff_ffff)
            ]),
            "ip,nw_dst=10.244.0.3"
        );
        assert_eq!(
            fmt(&[
                (F::TpDst, 80, 0xffff),
                (F::NwProto, 6, 0xff),
                (F::DlType, 0x800, 0xffff),
                (F::InPort, 2, 0xffff),
                (F::NwSrc, 0x0a00_0000, 0xff00_0000),
                (F::Reg0, 1, 0xffff_ffff),
            ]),
            "tcp,reg0=0x1,in_port=2,nw_src=10.0.0.0/8,tp_dst=80"
        );
        assert_eq!(
            fmt(&[
                (F::DlType, 0x806, 0xffff),
                (F::NwProto, 1, 0xff),
                (F::NwDst, 0x0a000001, 0xffff_ffff)
            ]),
            "arp,arp_tpa=10.0.0.1,arp_op=1"
        );
        assert_eq!(fmt(&[(F::DlType, 0x88cc, 0xffff)]), "dl_type=0x88cc");
        assert_eq!(
            fmt(&[(F::InPort, u128::from(port::LOCAL), 0xffff)]),
            "in_port=LOCAL"
        );
    }

    #[test]
    fn c_style_hex_for_zero() {
        assert_eq!(fmt(&[(F::Reg1, 0, 0xffff_ffff)]), "reg1=0");
        assert_eq!(fmt(&[(F::Metadata, 0, 0xff)]), "metadata=0/0xff");
    }

    #[test]
    fn ct_state_and_tcp_flags() {
        assert_eq!(fmt(&[(F::CtState, 0x22, 0x23)]), "ct_state=-new+est+trk");
        assert_eq!(fmt(&[(F::CtState, 0x21, 0xff)]), "ct_state=new|trk");
        assert_eq!(
            fmt(&[
                (F::DlType, 0x800, 0xffff),
                (F::NwProto, 6, 0xff),
                (F::TcpFlags, 0x002, 0x012)
            ]),
            "tcp,tcp_flags=+syn-ack"
        );
    }

    #[test]
    fn vlan_forms() {
        assert_eq!(fmt(&[(F::VlanTci, 0x1005, 0x1fff)]), "dl_vlan=5");
        assert_eq!(
            fmt(&[(F::VlanTci, 0x7005, 0xffff)]),
            "dl_vlan=5,dl_vlan_pcp=3"
        );
        assert_eq!(fmt(&[(F::VlanTci, 0x0000, 0xffff)]), "vlan_tci=0x0000");
        assert_eq!(
            fmt(&[(F::VlanTci, 0x0000, 0x1fff)]),
            "vlan_tci=0x0000/0x1fff"
        );
    }

    #[test]
    fn ipv6_like_glibc() {
        let cases: [(u128, &str); 9] = [
            (0, "::"),
            (1, "::1"),
            (2, "::2"),
            (0x0102_0304, "::1.2.3.4"),
            (0x2001_0db8_0000_0000_0000_0000_0000_0001, "2001:db8::1"),
            (0x0000_0000_0000_0000_0000_ffff_0a00_0001, "::ffff:10.0.0.1"),
            (0xfe80_0000_0000_0000_0000_0000_0000_0000, "fe80::"),
            (
                0x2001_0db8_0000_0001_0000_0000_0001_0001,
                "2001:db8:0:1::1:1",
            ),
            (0x0001_0000_0001_0000_0000_0001_0000_0001, "1:0:1::1:0:1"),
        ];
        for (v, want) in cases {
            let mut s = String::new();
            put_ipv6(&mut s, v);
            assert_eq!(s, want, "{v:#x}");
        }
        assert_eq!(
            fmt(&[
                (F::DlType, 0x86dd, 0xffff),
                (F::Ipv6Dst, 0x2001_0db8 << 96, u128::MAX << 96),
            ]),
            "ipv6,ipv6_dst=2001:db8::/32"
        );
    }

    #[test]
    fn ct_label_hex() {
        assert_eq!(fmt(&[(F::CtLabel, 1, 1)]), "ct_label=0x1/0x1");
        assert_eq!(fmt(&[(F::CtLabel, 0x1234, u128::MAX)]), "ct_label=0x1234");
    }
}
