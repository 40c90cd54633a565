//! OXM and NXM match TLVs, decoded into Open vSwitch's flat view of a match.
//!
//! Open vSwitch answers an OpenFlow 1.3 flow-stats request with each field in the header it
//! prefers for that version: standard OXM (`OXM_OF_*`, class 0x8000) where one exists, Nicira
//! extensions (`NXM_OF_*` class 0x0000, `NXM_NX_*` class 0x0001) otherwise, and experimenter OXMs
//! (class 0xffff: ONF `ONFOXM_ET_*`, Nicira `NXOXM_ET_*`) for the newest fields. Several headers
//! can carry the same field, and some wire fields are slices of one field (`vlan_vid` and
//! `vlan_pcp` of `vlan_tci`, `ip_dscp` and `ip_ecn` of `nw_tos`, `xreg`s of `reg`s); all of them
//! land in [`MatchFields`], whose fields are the ones `ovs-ofctl` prints (see `ovs-fields(7)` for
//! the codes).

use super::DecodeError;
use super::wire::{Reader, be_uint};

/// OXM classes.
pub mod class {
    pub const NXM_0: u16 = 0x0000;
    pub const NXM_1: u16 = 0x0001;
    pub const OPENFLOW_BASIC: u16 = 0x8000;
    pub const PACKET_REGS: u16 = 0x8001;
    pub const EXPERIMENTER: u16 = 0xffff;
}

/// Experimenter IDs used with [`class::EXPERIMENTER`].
pub mod experimenter {
    pub const NICIRA: u32 = 0x0000_2320;
    pub const ONF: u32 = 0x4f4e_4600;
    pub const NSH: u32 = 0x005a_d650;
}

macro_rules! fields {
    ($($variant:ident = $name:literal, $bits:literal;)*) => {
        /// A match field as Open vSwitch keeps it (one slot per field `ovs-ofctl` prints).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Field { $($variant,)* }

        impl Field {
            pub const ALL: &'static [Field] = &[$(Field::$variant,)*];
            pub const COUNT: usize = Field::ALL.len();

            /// The name `ovs-ofctl` uses for the field.
            pub fn name(self) -> &'static str {
                match self { $(Field::$variant => $name,)* }
            }

            /// Width in bits.
            pub fn bits(self) -> u32 {
                match self { $(Field::$variant => $bits,)* }
            }
        }
    };
}

fields! {
    PktMark = "pkt_mark", 32;
    RecircId = "recirc_id", 32;
    DpHash = "dp_hash", 32;
    ConjId = "conj_id", 32;
    SkbPriority = "skb_priority", 32;
    ActsetOutput = "actset_output", 16;
    CtState = "ct_state", 8;
    CtZone = "ct_zone", 16;
    CtMark = "ct_mark", 32;
    CtLabel = "ct_label", 128;
    CtNwSrc = "ct_nw_src", 32;
    CtIpv6Src = "ct_ipv6_src", 128;
    CtNwDst = "ct_nw_dst", 32;
    CtIpv6Dst = "ct_ipv6_dst", 128;
    CtNwProto = "ct_nw_proto", 8;
    CtTpSrc = "ct_tp_src", 16;
    CtTpDst = "ct_tp_dst", 16;
    PacketType = "packet_type", 32;
    DlType = "dl_type", 16;
    Reg0 = "reg0", 32;
    Reg1 = "reg1", 32;
    Reg2 = "reg2", 32;
    Reg3 = "reg3", 32;
    Reg4 = "reg4", 32;
    Reg5 = "reg5", 32;
    Reg6 = "reg6", 32;
    Reg7 = "reg7", 32;
    Reg8 = "reg8", 32;
    Reg9 = "reg9", 32;
    Reg10 = "reg10", 32;
    Reg11 = "reg11", 32;
    Reg12 = "reg12", 32;
    Reg13 = "reg13", 32;
    Reg14 = "reg14", 32;
    Reg15 = "reg15", 32;
    TunId = "tun_id", 64;
    TunSrc = "tun_src", 32;
    TunDst = "tun_dst", 32;
    TunIpv6Src = "tun_ipv6_src", 128;
    TunIpv6Dst = "tun_ipv6_dst", 128;
    TunGbpId = "tun_gbp_id", 16;
    TunGbpFlags = "tun_gbp_flags", 8;
    TunTos = "tun_tos", 8;
    TunTtl = "tun_ttl", 8;
    TunFlags = "tun_flags", 16;
    Metadata = "metadata", 64;
    InPort = "in_port", 16;
    VlanTci = "vlan_tci", 16;
    DlSrc = "dl_src", 48;
    DlDst = "dl_dst", 48;
    Ipv6Src = "ipv6_src", 128;
    Ipv6Dst = "ipv6_dst", 128;
    Ipv6Label = "ipv6_label", 32;
    NwSrc = "nw_src", 32;
    NwDst = "nw_dst", 32;
    NwProto = "nw_proto", 8;
    ArpSha = "arp_sha", 48;
    ArpTha = "arp_tha", 48;
    NwTos = "nw_tos", 8;
    NwTtl = "nw_ttl", 8;
    MplsLse = "mpls_lse", 32;
    NwFrag = "nw_frag", 8;
    TpSrc = "tp_src", 16;
    TpDst = "tp_dst", 16;
    NdTarget = "nd_target", 128;
    TcpFlags = "tcp_flags", 16;
}

pub(crate) const REGS: [Field; 16] = [
    Field::Reg0,
    Field::Reg1,
    Field::Reg2,
    Field::Reg3,
    Field::Reg4,
    Field::Reg5,
    Field::Reg6,
    Field::Reg7,
    Field::Reg8,
    Field::Reg9,
    Field::Reg10,
    Field::Reg11,
    Field::Reg12,
    Field::Reg13,
    Field::Reg14,
    Field::Reg15,
];

/// The register field `reg<i>`.
pub fn reg(i: usize) -> Option<Field> {
    REGS.get(i).copied()
}

fn ones(bits: u32) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

/// How a wire field lands in [`MatchFields`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The whole field, value and mask as they are.
    Whole(Field),
    /// Bits `shift..shift+width` of a field (`vlan_pcp` in `vlan_tci`, `mpls_tc` in `mpls_lse`, …).
    /// `extra` bits are set in both value and mask (the CFI bit that `vlan_pcp` implies).
    Part {
        field: Field,
        shift: u32,
        width: u32,
        extra: u128,
    },
    /// A narrow wire field widened into a wider one, value unchanged and mask all-ones
    /// (`icmp_type` into `tp_src`, `arp_op` into `nw_proto`).
    Widen(Field),
    /// OpenFlow 1.1+ 32-bit port numbers (`in_port` OXM, `actset_output`).
    Port32(Field),
    /// `xreg<i>`: registers `2i` (high half) and `2i+1`.
    Xreg(usize),
    /// `xxreg<i>`: registers `4i` .. `4i+3`.
    Xxreg(usize),
}

/// Describes a wire header: the field name Open vSwitch gives it, its width in bytes and where
/// it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireField {
    /// Name as printed in `load:`/`move:` subfields (`NXM_NX_REG0`, `OXM_OF_METADATA`, …).
    pub nxm_name: &'static str,
    /// Name as printed by `set_field` (`reg0`, `eth_src`, …).
    pub name: &'static str,
    pub bytes: usize,
    pub slot: Slot,
}

const fn w(nxm_name: &'static str, name: &'static str, bytes: usize, slot: Slot) -> WireField {
    WireField {
        nxm_name,
        name,
        bytes,
        slot,
    }
}

use Field as F;
use Slot::{Port32, Whole, Widen, Xreg, Xxreg};

/// Looks up a wire header by class, field number and (for class 0xffff) experimenter.
pub fn lookup(class: u16, field: u8, exp: u32) -> Option<WireField> {
    Some(match (class, field) {
        (class::OPENFLOW_BASIC, f) => match f {
            0 => w("OXM_OF_IN_PORT", "in_port_oxm", 4, Port32(F::InPort)),
            2 => w("OXM_OF_METADATA", "metadata", 8, Whole(F::Metadata)),
            3 => w("OXM_OF_ETH_DST", "eth_dst", 6, Whole(F::DlDst)),
            4 => w("OXM_OF_ETH_SRC", "eth_src", 6, Whole(F::DlSrc)),
            5 => w("OXM_OF_ETH_TYPE", "eth_type", 2, Whole(F::DlType)),
            6 => w(
                "OXM_OF_VLAN_VID",
                "vlan_vid",
                2,
                Slot::Part {
                    field: F::VlanTci,
                    shift: 0,
                    width: 13,
                    extra: 0,
                },
            ),
            7 => w(
                "OXM_OF_VLAN_PCP",
                "vlan_pcp",
                1,
                Slot::Part {
                    field: F::VlanTci,
                    shift: 13,
                    width: 3,
                    extra: 0x1000,
                },
            ),
            8 => w(
                "OXM_OF_IP_DSCP",
                "ip_dscp",
                1,
                Slot::Part {
                    field: F::NwTos,
                    shift: 2,
                    width: 6,
                    extra: 0,
                },
            ),
            9 => w(
                "OXM_OF_IP_ECN",
                "nw_ecn",
                1,
                Slot::Part {
                    field: F::NwTos,
                    shift: 0,
                    width: 2,
                    extra: 0,
                },
            ),
            10 => w("OXM_OF_IP_PROTO", "nw_proto", 1, Whole(F::NwProto)),
            11 => w("OXM_OF_IPV4_SRC", "ip_src", 4, Whole(F::NwSrc)),
            12 => w("OXM_OF_IPV4_DST", "ip_dst", 4, Whole(F::NwDst)),
            13 => w("OXM_OF_TCP_SRC", "tcp_src", 2, Whole(F::TpSrc)),
            14 => w("OXM_OF_TCP_DST", "tcp_dst", 2, Whole(F::TpDst)),
            15 => w("OXM_OF_UDP_SRC", "udp_src", 2, Whole(F::TpSrc)),
            16 => w("OXM_OF_UDP_DST", "udp_dst", 2, Whole(F::TpDst)),
            17 => w("OXM_OF_SCTP_SRC", "sctp_src", 2, Whole(F::TpSrc)),
            18 => w("OXM_OF_SCTP_DST", "sctp_dst", 2, Whole(F::TpDst)),
            19 => w("OXM_OF_ICMPV4_TYPE", "icmp_type", 1, Widen(F::TpSrc)),
            20 => w("OXM_OF_ICMPV4_CODE", "icmp_code", 1, Widen(F::TpDst)),
            21 => w("OXM_OF_ARP_OP", "arp_op", 2, Widen(F::NwProto)),
            22 => w("OXM_OF_ARP_SPA", "arp_spa", 4, Whole(F::NwSrc)),
            23 => w("OXM_OF_ARP_TPA", "arp_tpa", 4, Whole(F::NwDst)),
            24 => w("OXM_OF_ARP_SHA", "arp_sha", 6, Whole(F::ArpSha)),
            25 => w("OXM_OF_ARP_THA", "arp_tha", 6, Whole(F::ArpTha)),
            26 => w("OXM_OF_IPV6_SRC", "ipv6_src", 16, Whole(F::Ipv6Src)),
            27 => w("OXM_OF_IPV6_DST", "ipv6_dst", 16, Whole(F::Ipv6Dst)),
            28 => w("OXM_OF_IPV6_FLABEL", "ipv6_label", 4, Whole(F::Ipv6Label)),
            29 => w("OXM_OF_ICMPV6_TYPE", "icmpv6_type", 1, Widen(F::TpSrc)),
            30 => w("OXM_OF_ICMPV6_CODE", "icmpv6_code", 1, Widen(F::TpDst)),
            31 => w("OXM_OF_IPV6_ND_TARGET", "nd_target", 16, Whole(F::NdTarget)),
            32 => w("OXM_OF_IPV6_ND_SLL", "nd_sll", 6, Whole(F::ArpSha)),
            33 => w("OXM_OF_IPV6_ND_TLL", "nd_tll", 6, Whole(F::ArpTha)),
            34 => w(
                "OXM_OF_MPLS_LABEL",
                "mpls_label",
                4,
                Slot::Part {
                    field: F::MplsLse,
                    shift: 12,
                    width: 20,
                    extra: 0,
                },
            ),
            35 => w(
                "OXM_OF_MPLS_TC",
                "mpls_tc",
                1,
                Slot::Part {
                    field: F::MplsLse,
                    shift: 9,
                    width: 3,
                    extra: 0,
                },
            ),
            36 => w(
                "OXM_OF_MPLS_BOS",
                "mpls_bos",
                1,
                Slot::Part {
                    field: F::MplsLse,
                    shift: 8,
                    width: 1,
                    extra: 0,
                },
            ),
            38 => w("OXM_OF_TUNNEL_ID", "tun_id", 8, Whole(F::TunId)),
            42 => w("OXM_OF_TCP_FLAGS", "tcp_flags", 2, Whole(F::TcpFlags)),
            43 => w(
                "OXM_OF_ACTSET_OUTPUT",
                "actset_output",
                4,
                Port32(F::ActsetOutput),
            ),
            44 => w("OXM_OF_PACKET_TYPE", "packet_type", 4, Whole(F::PacketType)),
            _ => return None,
        },
        (class::PACKET_REGS, f) if f < 8 => {
            const NAMES: [&str; 8] = [
                "OXM_OF_PKT_REG0",
                "OXM_OF_PKT_REG1",
                "OXM_OF_PKT_REG2",
                "OXM_OF_PKT_REG3",
                "OXM_OF_PKT_REG4",
                "OXM_OF_PKT_REG5",
                "OXM_OF_PKT_REG6",
                "OXM_OF_PKT_REG7",
            ];
            const XNAMES: [&str; 8] = [
                "xreg0", "xreg1", "xreg2", "xreg3", "xreg4", "xreg5", "xreg6", "xreg7",
            ];
            w(NAMES[f as usize], XNAMES[f as usize], 8, Xreg(f as usize))
        }
        (class::NXM_0, f) => match f {
            0 => w("NXM_OF_IN_PORT", "in_port", 2, Whole(F::InPort)),
            1 => w("NXM_OF_ETH_DST", "eth_dst", 6, Whole(F::DlDst)),
            2 => w("NXM_OF_ETH_SRC", "eth_src", 6, Whole(F::DlSrc)),
            3 => w("NXM_OF_ETH_TYPE", "eth_type", 2, Whole(F::DlType)),
            4 => w("NXM_OF_VLAN_TCI", "vlan_tci", 2, Whole(F::VlanTci)),
            5 => w(
                "NXM_OF_IP_TOS",
                "nw_tos",
                1,
                Slot::Part {
                    field: F::NwTos,
                    shift: 0,
                    width: 8,
                    extra: 0,
                },
            ),
            6 => w("NXM_OF_IP_PROTO", "nw_proto", 1, Whole(F::NwProto)),
            7 => w("NXM_OF_IP_SRC", "ip_src", 4, Whole(F::NwSrc)),
            8 => w("NXM_OF_IP_DST", "ip_dst", 4, Whole(F::NwDst)),
            9 => w("NXM_OF_TCP_SRC", "tcp_src", 2, Whole(F::TpSrc)),
            10 => w("NXM_OF_TCP_DST", "tcp_dst", 2, Whole(F::TpDst)),
            11 => w("NXM_OF_UDP_SRC", "udp_src", 2, Whole(F::TpSrc)),
            12 => w("NXM_OF_UDP_DST", "udp_dst", 2, Whole(F::TpDst)),
            13 => w("NXM_OF_ICMP_TYPE", "icmp_type", 1, Widen(F::TpSrc)),
            14 => w("NXM_OF_ICMP_CODE", "icmp_code", 1, Widen(F::TpDst)),
            15 => w("NXM_OF_ARP_OP", "arp_op", 2, Widen(F::NwProto)),
            16 => w("NXM_OF_ARP_SPA", "arp_spa", 4, Whole(F::NwSrc)),
            17 => w("NXM_OF_ARP_TPA", "arp_tpa", 4, Whole(F::NwDst)),
            _ => return None,
        },
        (class::NXM_1, f) => match f {
            0..=15 => {
                const NAMES: [&str; 16] = [
                    "NXM_NX_REG0",
                    "NXM_NX_REG1",
                    "NXM_NX_REG2",
                    "NXM_NX_REG3",
                    "NXM_NX_REG4",
                    "NXM_NX_REG5",
                    "NXM_NX_REG6",
                    "NXM_NX_REG7",
                    "NXM_NX_REG8",
                    "NXM_NX_REG9",
                    "NXM_NX_REG10",
                    "NXM_NX_REG11",
                    "NXM_NX_REG12",
                    "NXM_NX_REG13",
                    "NXM_NX_REG14",
                    "NXM_NX_REG15",
                ];
                let field = REGS[f as usize];
                w(NAMES[f as usize], field.name(), 4, Whole(field))
            }
            16 => w("NXM_NX_TUN_ID", "tun_id", 8, Whole(F::TunId)),
            17 => w("NXM_NX_ARP_SHA", "arp_sha", 6, Whole(F::ArpSha)),
            18 => w("NXM_NX_ARP_THA", "arp_tha", 6, Whole(F::ArpTha)),
            19 => w("NXM_NX_IPV6_SRC", "ipv6_src", 16, Whole(F::Ipv6Src)),
            20 => w("NXM_NX_IPV6_DST", "ipv6_dst", 16, Whole(F::Ipv6Dst)),
            21 => w("NXM_NX_ICMPV6_TYPE", "icmpv6_type", 1, Widen(F::TpSrc)),
            22 => w("NXM_NX_ICMPV6_CODE", "icmpv6_code", 1, Widen(F::TpDst)),
            23 => w("NXM_NX_ND_TARGET", "nd_target", 16, Whole(F::NdTarget)),
            24 => w("NXM_NX_ND_SLL", "nd_sll", 6, Whole(F::ArpSha)),
            25 => w("NXM_NX_ND_TLL", "nd_tll", 6, Whole(F::ArpTha)),
            26 => w("NXM_NX_IP_FRAG", "ip_frag", 1, Whole(F::NwFrag)),
            27 => w("NXM_NX_IPV6_LABEL", "ipv6_label", 4, Whole(F::Ipv6Label)),
            28 => w(
                "NXM_NX_IP_ECN",
                "nw_ecn",
                1,
                Slot::Part {
                    field: F::NwTos,
                    shift: 0,
                    width: 2,
                    extra: 0,
                },
            ),
            29 => w("NXM_NX_IP_TTL", "nw_ttl", 1, Whole(F::NwTtl)),
            30 => w(
                "NXM_NX_MPLS_TTL",
                "mpls_ttl",
                1,
                Slot::Part {
                    field: F::MplsLse,
                    shift: 0,
                    width: 8,
                    extra: 0,
                },
            ),
            31 => w("NXM_NX_TUN_IPV4_SRC", "tun_src", 4, Whole(F::TunSrc)),
            32 => w("NXM_NX_TUN_IPV4_DST", "tun_dst", 4, Whole(F::TunDst)),
            33 => w("NXM_NX_PKT_MARK", "pkt_mark", 4, Whole(F::PktMark)),
            34 => w("NXM_NX_TCP_FLAGS", "tcp_flags", 2, Whole(F::TcpFlags)),
            35 => w("NXM_NX_DP_HASH", "dp_hash", 4, Whole(F::DpHash)),
            36 => w("NXM_NX_RECIRC_ID", "recirc_id", 4, Whole(F::RecircId)),
            37 => w("NXM_NX_CONJ_ID", "conj_id", 4, Whole(F::ConjId)),
            38 => w("NXM_NX_TUN_GBP_ID", "tun_gbp_id", 2, Whole(F::TunGbpId)),
            39 => w(
                "NXM_NX_TUN_GBP_FLAGS",
                "tun_gbp_flags",
                1,
                Whole(F::TunGbpFlags),
            ),
            104 => w("NXM_NX_TUN_FLAGS", "tun_flags", 2, Whole(F::TunFlags)),
            105 => w("NXM_NX_CT_STATE", "ct_state", 4, Whole(F::CtState)),
            106 => w("NXM_NX_CT_ZONE", "ct_zone", 2, Whole(F::CtZone)),
            107 => w("NXM_NX_CT_MARK", "ct_mark", 4, Whole(F::CtMark)),
            108 => w("NXM_NX_CT_LABEL", "ct_label", 16, Whole(F::CtLabel)),
            109 => w(
                "NXM_NX_TUN_IPV6_SRC",
                "tun_ipv6_src",
                16,
                Whole(F::TunIpv6Src),
            ),
            110 => w(
                "NXM_NX_TUN_IPV6_DST",
                "tun_ipv6_dst",
                16,
                Whole(F::TunIpv6Dst),
            ),
            111..=114 => {
                const NAMES: [&str; 4] = [
                    "NXM_NX_XXREG0",
                    "NXM_NX_XXREG1",
                    "NXM_NX_XXREG2",
                    "NXM_NX_XXREG3",
                ];
                const XX: [&str; 4] = ["xxreg0", "xxreg1", "xxreg2", "xxreg3"];
                let i = (f - 111) as usize;
                w(NAMES[i], XX[i], 16, Xxreg(i))
            }
            119 => w("NXM_NX_CT_NW_PROTO", "ct_nw_proto", 1, Whole(F::CtNwProto)),
            120 => w("NXM_NX_CT_NW_SRC", "ct_nw_src", 4, Whole(F::CtNwSrc)),
            121 => w("NXM_NX_CT_NW_DST", "ct_nw_dst", 4, Whole(F::CtNwDst)),
            122 => w("NXM_NX_CT_IPV6_SRC", "ct_ipv6_src", 16, Whole(F::CtIpv6Src)),
            123 => w("NXM_NX_CT_IPV6_DST", "ct_ipv6_dst", 16, Whole(F::CtIpv6Dst)),
            124 => w("NXM_NX_CT_TP_SRC", "ct_tp_src", 2, Whole(F::CtTpSrc)),
            125 => w("NXM_NX_CT_TP_DST", "ct_tp_dst", 2, Whole(F::CtTpDst)),
            _ => return None,
        },
        (class::EXPERIMENTER, f) => match (exp, f) {
            (experimenter::ONF, 42) => w("ONFOXM_ET_TCP_FLAGS", "tcp_flags", 2, Whole(F::TcpFlags)),
            (experimenter::ONF, 43) => w(
                "ONFOXM_ET_ACTSET_OUTPUT",
                "actset_output",
                4,
                Port32(F::ActsetOutput),
            ),
            _ => return None,
        },
        _ => return None,
    })
}

/// A TLV we could not place: kept so the match is still shown, as `name=value/mask` in hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOxm {
    pub class: u16,
    pub field: u8,
    pub experimenter: Option<u32>,
    pub value: Vec<u8>,
    pub mask: Option<Vec<u8>>,
}

/// The decoded fields of one match. Reused from flow to flow: [`MatchFields::clear`] is cheap.
#[derive(Clone)]
pub struct MatchFields {
    set: u128,
    value: [u128; Field::COUNT],
    mask: [u128; Field::COUNT],
    pub unknown: Vec<RawOxm>,
}

impl Default for MatchFields {
    fn default() -> Self {
        MatchFields {
            set: 0,
            value: [0; Field::COUNT],
            mask: [0; Field::COUNT],
            unknown: Vec::new(),
        }
    }
}

impl std::fmt::Debug for MatchFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for &field in Field::ALL {
            if let Some((v, mask)) = self.get(field) {
                m.entry(&field.name(), &format_args!("{v:#x}/{mask:#x}"));
            }
        }
        m.finish()
    }
}

impl MatchFields {
    pub fn clear(&mut self) {
        self.set = 0;
        self.unknown.clear();
    }

    /// Value and mask of `field`, if the match constrains it (mask not zero).
    #[inline]
    pub fn get(&self, field: Field) -> Option<(u128, u128)> {
        let i = field as usize;
        if self.set & (1u128 << i) != 0 && self.mask[i] != 0 {
            Some((self.value[i], self.mask[i]))
        } else {
            None
        }
    }

    /// The field's value if it is matched exactly or partially, else 0 (as OVS's `struct flow`).
    #[inline]
    pub fn value(&self, field: Field) -> u128 {
        self.get(field).map_or(0, |(v, _)| v)
    }

    /// The field's mask (0 when wildcarded).
    #[inline]
    pub fn mask(&self, field: Field) -> u128 {
        self.get(field).map_or(0, |(_, m)| m)
    }

    /// True if any of `fields` is set (cheap: one mask test), to skip groups of absent fields.
    #[inline]
    pub fn any_of(&self, fields: u128) -> bool {
        self.set & fields != 0
    }

    /// The bit set of `fields`, for [`MatchFields::any_of`].
    pub const fn bits_of(fields: &[Field]) -> u128 {
        let mut bits = 0u128;
        let mut i = 0;
        while i < fields.len() {
            bits |= 1u128 << (fields[i] as u8);
            i += 1;
        }
        bits
    }

    /// True if nothing is matched at all.
    pub fn is_empty(&self) -> bool {
        Field::ALL.iter().all(|&f| self.get(f).is_none()) && self.unknown.is_empty()
    }

    /// Sets bits of `field`: `value` and `mask` are or-ed into what is there.
    pub fn merge(&mut self, field: Field, value: u128, mask: u128) {
        let i = field as usize;
        let all = ones(field.bits());
        if self.set & (1u128 << i) == 0 {
            self.value[i] = 0;
            self.mask[i] = 0;
            self.set |= 1u128 << i;
        }
        let mask = mask & all;
        self.value[i] = (self.value[i] & !mask) | (value & mask);
        self.mask[i] |= mask;
    }

    /// Places one decoded wire value (and optional mask) into the fields.
    pub fn apply(&mut self, wf: &WireField, value: u128, mask: Option<u128>) {
        let wire_ones = ones(wf.bytes as u32 * 8);
        let mask = mask.unwrap_or(wire_ones);
        match wf.slot {
            Slot::Whole(f) => self.merge(f, value, mask),
            Slot::Part {
                field,
                shift,
                width,
                extra,
            } => {
                let m = mask & ones(width);
                self.merge(field, (value << shift) | extra, (m << shift) | extra);
            }
            Slot::Widen(f) => self.merge(f, value, ones(f.bits())),
            Slot::Port32(f) => {
                let port = super::port::from_ofp11(value as u32).unwrap_or(value as u16);
                self.merge(f, u128::from(port), ones(f.bits()));
            }
            Slot::Xreg(i) => {
                for (half, shift) in [(0usize, 32u32), (1, 0)] {
                    if let Some(r) = reg(2 * i + half) {
                        let m = (mask >> shift) & 0xffff_ffff;
                        if m != 0 {
                            self.merge(r, (value >> shift) & 0xffff_ffff, m);
                        }
                    }
                }
            }
            Slot::Xxreg(i) => {
                for part in 0..4usize {
                    let shift = 96 - 32 * part as u32;
                    if let Some(r) = reg(4 * i + part) {
                        let m = (mask >> shift) & 0xffff_ffff;
                        if m != 0 {
                            self.merge(r, (value >> shift) & 0xffff_ffff, m);
                        }
                    }
                }
            }
        }
    }
}

/// One TLV header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OxmHeader {
    pub class: u16,
    pub field: u8,
    pub has_mask: bool,
    /// Payload length (after the 4-byte header, including an experimenter ID).
    pub len: usize,
}

impl OxmHeader {
    pub fn parse(h: u32) -> Self {
        OxmHeader {
            class: (h >> 16) as u16,
            field: ((h >> 9) & 0x7f) as u8,
            has_mask: (h >> 8) & 1 == 1,
            len: (h & 0xff) as usize,
        }
    }
}

/// Decodes a sequence of OXM TLVs (the body of an `ofp_match` of type OXM) into `out`.
pub fn decode_oxms(data: &[u8], out: &mut MatchFields) -> Result<(), DecodeError> {
    decode_oxms_reader(&mut Reader::new(data), out)
}

pub(crate) fn decode_oxms_reader(
    r: &mut Reader<'_>,
    out: &mut MatchFields,
) -> Result<(), DecodeError> {
    while !r.is_empty() {
        let at = r.offset();
        let h = OxmHeader::parse(r.u32("oxm header")?);
        let mut payload = r.sub(h.len, "oxm payload")?;
        let exp = if h.class == class::EXPERIMENTER {
            Some(payload.u32("oxm experimenter id")?)
        } else {
            None
        };
        let body = payload.bytes(payload.remaining(), "oxm value")?;
        let (value, mask) = if h.has_mask {
            if body.len() % 2 != 0 {
                return Err(DecodeError::BadLength {
                    what: "masked oxm",
                    offset: at,
                    len: body.len(),
                    reason: "value and mask must be the same size",
                });
            }
            body.split_at(body.len() / 2)
        } else {
            (body, &body[body.len()..])
        };
        match lookup(h.class, h.field, exp.unwrap_or(0)) {
            Some(wf) if wf.bytes == value.len() => {
                let m = if h.has_mask {
                    Some(be_uint(mask))
                } else {
                    None
                };
                out.apply(&wf, be_uint(value), m);
            }
            Some(wf) => {
                return Err(DecodeError::BadLength {
                    what: wf.nxm_name,
                    offset: at,
                    len: value.len(),
                    reason: "field has a different width",
                });
            }
            None => out.unknown.push(RawOxm {
                class: h.class,
                field: h.field,
                experimenter: exp,
                value: value.to_vec(),
                mask: h.has_mask.then(|| mask.to_vec()),
            }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(class: u16, field: u8, value: &[u8], mask: Option<&[u8]>) -> Vec<u8> {
        let len = value.len() + mask.map_or(0, <[u8]>::len);
        let h = (u32::from(class) << 16)
            | (u32::from(field) << 9)
            | (u32::from(mask.is_some()) << 8)
            | len as u32;
        let mut v = h.to_be_bytes().to_vec();
        v.extend_from_slice(value);
        if let Some(m) = mask {
            v.extend_from_slice(m);
        }
        v
    }

    #[test]
    fn decodes_basic_and_nicira_fields() {
        let mut data = tlv(class::OPENFLOW_BASIC, 5, &[0x08, 0x00], None);
        data.extend(tlv(
            class::OPENFLOW_BASIC,
            12,
            &[10, 244, 0, 0],
            Some(&[255, 255, 0, 0]),
        ));
        data.extend(tlv(class::NXM_1, 3, &[0, 0, 0, 7], None));
        data.extend(tlv(class::OPENFLOW_BASIC, 6, &[0x10, 0x05], None));
        data.extend(tlv(class::OPENFLOW_BASIC, 7, &[3], None));
        let mut m = MatchFields::default();
        assert_eq!(decode_oxms(&data, &mut m), Ok(()));
        assert_eq!(m.get(Field::DlType), Some((0x0800, 0xffff)));
        assert_eq!(m.get(Field::NwDst), Some((0x0af4_0000, 0xffff_0000)));
        assert_eq!(m.get(Field::Reg3), Some((7, 0xffff_ffff)));
        assert_eq!(m.get(Field::VlanTci), Some((0x7005, 0xffff)));
        assert!(m.unknown.is_empty());
        m.clear();
        assert!(m.is_empty());
    }

    #[test]
    fn xreg_splits_into_registers() {
        let data = tlv(
            class::PACKET_REGS,
            1,
            &[0, 0, 0, 1, 0, 0, 0, 2],
            Some(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
        );
        let mut m = MatchFields::default();
        assert_eq!(decode_oxms(&data, &mut m), Ok(()));
        assert_eq!(m.get(Field::Reg2), None);
        assert_eq!(m.get(Field::Reg3), Some((2, 0xffff_ffff)));
    }

    #[test]
    fn unknown_and_malformed() {
        let mut m = MatchFields::default();
        let data = tlv(class::NXM_1, 99, &[1, 2], None);
        assert_eq!(decode_oxms(&data, &mut m), Ok(()));
        assert_eq!(m.unknown.len(), 1);

        // Wrong width for a known field.
        let data = tlv(class::OPENFLOW_BASIC, 12, &[1, 2], None);
        assert!(matches!(
            decode_oxms(&data, &mut m),
            Err(DecodeError::BadLength { .. })
        ));
        // Length runs past the end.
        let mut data = tlv(class::OPENFLOW_BASIC, 12, &[1, 2, 3, 4], None);
        data.truncate(6);
        assert!(matches!(
            decode_oxms(&data, &mut m),
            Err(DecodeError::Truncated { .. })
        ));
        // Odd masked length.
        let data = tlv(class::OPENFLOW_BASIC, 12, &[1, 2, 3], None);
        let mut data2 = data.clone();
        data2[2] |= 1; // has_mask
        assert!(decode_oxms(&data2, &mut m).is_err());
    }
}
