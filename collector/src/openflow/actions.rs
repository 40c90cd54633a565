//! OpenFlow 1.3 instructions and actions, written as `ovs-ofctl -O OpenFlow13 dump-flows` writes
//! them (the `actions=` part).
//!
//! Covered: every OpenFlow 1.3 action Open vSwitch implements, and the Nicira extensions
//! `resubmit`, `load`, `move`, `set_field` via `reg_load2`, `ct` with `nat` and `exec`,
//! `ct_clear`, `conjunction`, `note`, `controller`, `dec_ttl`, `exit`, `fin_timeout`,
//! `set_tunnel`, `learn` (NXAST_LEARN and LEARN2), `bundle`, `bundle_load`, `multipath`,
//! `clone`, `sample` (NXAST_SAMPLE, SAMPLE2, SAMPLE3), `check_pkt_larger`, `encap` (with NSH
//! properties) and `decap`. Anything else is written as `nx_action(subtype=N)` or
//! `action(type=N)` so the text still says something is there; see `docs/flows.md`.

use super::DecodeError;
use super::format::{c_hex, format_port, put_eth, put_ipv4, put_ipv6};
use super::oxm::{OxmHeader, WireField, class, experimenter, lookup};
use super::port;
use super::wire::{Reader, be_uint};
use std::fmt::Write as _;

mod instruction {
    pub const GOTO_TABLE: u16 = 1;
    pub const WRITE_METADATA: u16 = 2;
    pub const WRITE_ACTIONS: u16 = 3;
    pub const APPLY_ACTIONS: u16 = 4;
    pub const CLEAR_ACTIONS: u16 = 5;
    pub const METER: u16 = 6;
}

/// Writes a flow's instructions. Open vSwitch's order: meter, the apply-actions, clear_actions,
/// write_actions(…), write_metadata, goto_table. Nothing at all is `drop`.
pub fn format_instructions(data: &[u8], s: &mut String) -> Result<(), DecodeError> {
    let mut r = Reader::new(data);
    let mut meter = None;
    let mut apply: Option<Reader<'_>> = None;
    let mut clear = false;
    let mut write: Option<Reader<'_>> = None;
    let mut metadata = None;
    let mut goto = None;
    let mut other = Vec::new();
    while !r.is_empty() {
        let at = r.offset();
        let kind = r.u16("instruction type")?;
        let len = r.u16("instruction length")? as usize;
        if len < 4 {
            return Err(DecodeError::BadLength {
                what: "instruction",
                offset: at,
                len,
                reason: "shorter than its header",
            });
        }
        let mut body = r.sub(len - 4, "instruction body")?;
        match kind {
            instruction::GOTO_TABLE => goto = Some(body.u8("goto_table id")?),
            instruction::WRITE_METADATA => {
                body.skip(4, "write_metadata pad")?;
                metadata = Some((body.u64("metadata")?, body.u64("metadata mask")?));
            }
            instruction::WRITE_ACTIONS => {
                body.skip(4, "write_actions pad")?;
                write = Some(body);
            }
            instruction::APPLY_ACTIONS => {
                body.skip(4, "apply_actions pad")?;
                apply = Some(body);
            }
            instruction::CLEAR_ACTIONS => clear = true,
            instruction::METER => meter = Some(body.u32("meter id")?),
            other_kind => other.push(other_kind),
        }
    }
    let start = s.len();
    if let Some(m) = meter {
        let _ = write!(s, "meter:{m},");
    }
    if let Some(mut a) = apply {
        format_actions_reader(&mut a, s)?;
    }
    if clear {
        s.push_str("clear_actions,");
    }
    if let Some(mut a) = write {
        s.push_str("write_actions(");
        format_actions_reader(&mut a, s)?;
        if s.ends_with(',') {
            s.pop();
        }
        s.push_str("),");
    }
    if let Some((v, m)) = metadata {
        let _ = write!(s, "write_metadata:{}", c_hex(u128::from(v)));
        if m != u64::MAX {
            let _ = write!(s, "/{}", c_hex(u128::from(m)));
        }
        s.push(',');
    }
    if let Some(t) = goto {
        let _ = write!(s, "goto_table:{t},");
    }
    for k in other {
        let _ = write!(s, "instruction(type={k}),");
    }
    if s.len() == start {
        s.push_str("drop");
    } else if s.ends_with(',') {
        s.pop();
    }
    Ok(())
}

/// The tables a flow's instructions send packets on to, in execution order: `resubmit` to a
/// table (in the apply-actions) and then `goto_table`. `resubmit` without a table resubmits to
/// `current` (with another in_port, which classification does not follow).
pub fn next_tables(data: &[u8], current: u8) -> Result<Vec<u8>, DecodeError> {
    let mut r = Reader::new(data);
    let mut out = Vec::new();
    let mut goto = None;
    while !r.is_empty() {
        let at = r.offset();
        let kind = r.u16("instruction type")?;
        let len = r.u16("instruction length")? as usize;
        if len < 4 {
            return Err(DecodeError::BadLength {
                what: "instruction",
                offset: at,
                len,
                reason: "shorter than its header",
            });
        }
        let mut body = r.sub(len - 4, "instruction body")?;
        match kind {
            instruction::GOTO_TABLE => goto = Some(body.u8("goto_table id")?),
            instruction::APPLY_ACTIONS => {
                body.skip(4, "apply_actions pad")?;
                action_tables(&mut body, current, 0, &mut out)?;
            }
            _ => {}
        }
    }
    out.extend(goto);
    // A resubmit to its own table would loop: not followed.
    out.retain(|&t| t != current);
    Ok(out)
}

/// Actions nested deeper than this (`clone` in `clone` in …) are refused rather than followed:
/// Open vSwitch's own limit for parsing nested actions (`MAX_OFPACT_PARSE_DEPTH`).
const MAX_NESTING: u32 = 100;

fn check_depth(depth: u32, r: &Reader<'_>) -> Result<(), DecodeError> {
    if depth >= MAX_NESTING {
        return Err(DecodeError::Invalid {
            what: "nested actions",
            offset: r.offset(),
            detail: format!("nested more than {MAX_NESTING} deep"),
        });
    }
    Ok(())
}

/// Splits the next action off an action list: its type and its body after the 4-byte
/// type/length header. Every walk over actions (writing them, following tables) uses this, so
/// they agree on what is malformed.
fn next_action<'a>(r: &mut Reader<'a>) -> Result<(u16, Reader<'a>), DecodeError> {
    let at = r.offset();
    let kind = r.u16("action type")?;
    let len = r.u16("action length")? as usize;
    if len < 8 || !len.is_multiple_of(8) {
        return Err(DecodeError::BadLength {
            what: "action",
            offset: at,
            len,
            reason: "actions are a multiple of 8 bytes, at least 8",
        });
    }
    let body = r.sub(len - 4, "action body")?;
    Ok((kind, body))
}

/// The tables an action list resubmits to, `clone(…)`'s nested actions included.
fn action_tables(
    r: &mut Reader<'_>,
    current: u8,
    depth: u32,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    check_depth(depth, r)?;
    while !r.is_empty() {
        let (kind, mut a) = next_action(r)?;
        if kind != 0xffff || a.u32("experimenter")? != experimenter::NICIRA {
            continue;
        }
        match a.u16("subtype")? {
            nx::RESUBMIT_TABLE | nx::RESUBMIT_TABLE_CT => {
                let _in_port = a.u16("resubmit port")?;
                let table = a.u8("resubmit table")?;
                out.push(if table == 255 { current } else { table });
            }
            nx::CLONE => {
                a.skip(6, "clone pad")?;
                action_tables(&mut a, current, depth + 1, out)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Writes an action list (a group bucket's actions, say), comma-separated; empty is `drop`.
pub fn format_actions(data: &[u8], s: &mut String) -> Result<(), DecodeError> {
    let start = s.len();
    format_actions_reader(&mut Reader::new(data), s)?;
    if s.len() == start {
        s.push_str("drop");
    } else if s.ends_with(',') {
        s.pop();
    }
    Ok(())
}

/// Writes each action followed by a comma.
fn format_actions_reader(r: &mut Reader<'_>, s: &mut String) -> Result<(), DecodeError> {
    format_actions_nested(r, s, 0)
}

fn format_actions_nested(
    r: &mut Reader<'_>,
    s: &mut String,
    depth: u32,
) -> Result<(), DecodeError> {
    check_depth(depth, r)?;
    while !r.is_empty() {
        let (kind, mut body) = next_action(r)?;
        format_action(kind, &mut body, s, depth)?;
        s.push(',');
    }
    Ok(())
}

fn format_action(
    kind: u16,
    b: &mut Reader<'_>,
    s: &mut String,
    depth: u32,
) -> Result<(), DecodeError> {
    match kind {
        0 => {
            let p = b.u32("output port")?;
            let max_len = b.u16("output max_len")?;
            match port::from_ofp11(p) {
                Some(port::CONTROLLER) => {
                    let _ = write!(s, "CONTROLLER:{max_len}");
                }
                Some(p16) if p16 < port::MAX => {
                    let _ = write!(s, "output:{p16}");
                }
                Some(p16) => format_port(s, p16),
                None => {
                    let _ = write!(s, "output:{p}");
                }
            }
        }
        11 => s.push_str("copy_ttl_out"),
        12 => s.push_str("copy_ttl_in"),
        15 => {
            let _ = write!(s, "set_mpls_ttl({})", b.u8("mpls ttl")?);
        }
        16 => s.push_str("dec_mpls_ttl"),
        17 => {
            let _ = write!(s, "push_vlan:0x{:04x}", b.u16("ethertype")?);
        }
        18 => s.push_str("pop_vlan"),
        19 => {
            let _ = write!(s, "push_mpls:0x{:04x}", b.u16("ethertype")?);
        }
        20 => {
            let _ = write!(s, "pop_mpls:0x{:04x}", b.u16("ethertype")?);
        }
        21 => {
            let _ = write!(s, "set_queue:{}", b.u32("queue id")?);
        }
        22 => {
            let _ = write!(s, "group:{}", b.u32("group id")?);
        }
        23 => {
            let _ = write!(s, "mod_nw_ttl:{}", b.u8("nw ttl")?);
        }
        24 => s.push_str("dec_ttl"),
        25 => format_set_field(b, s)?,
        26 => {
            let _ = write!(s, "push_pbb:0x{:04x}", b.u16("ethertype")?);
        }
        27 => s.push_str("pop_pbb"),
        0xffff => {
            let exp = b.u32("action experimenter")?;
            if exp == experimenter::NICIRA {
                let subtype = b.u16("nicira subtype")?;
                format_nicira(subtype, b, s, depth)?;
            } else {
                let _ = write!(s, "experimenter_action(experimenter={exp:#x})");
            }
        }
        other => {
            let _ = write!(s, "action(type={other})");
        }
    }
    Ok(())
}

/// Reads an OXM/NXM header (4 bytes, or 8 with an experimenter ID).
fn read_field_header(b: &mut Reader<'_>) -> Result<(OxmHeader, u32), DecodeError> {
    let h = OxmHeader::parse(b.u32("field header")?);
    let exp = if h.class == class::EXPERIMENTER {
        b.u32("field experimenter")?
    } else {
        0
    };
    Ok((h, exp))
}

fn unknown_field_name(h: &OxmHeader) -> String {
    format!("oxm(0x{:04x},{})", h.class, h.field)
}

/// `set_field:VALUE[/MASK]->FIELD`.
fn format_set_field(b: &mut Reader<'_>, s: &mut String) -> Result<(), DecodeError> {
    let at = b.offset();
    let (h, exp) = read_field_header(b)?;
    let exp_len = if h.class == class::EXPERIMENTER { 4 } else { 0 };
    let payload_len = h.len.checked_sub(exp_len).ok_or(DecodeError::BadLength {
        what: "set_field experimenter field",
        offset: at,
        len: h.len,
        reason: "shorter than its 4-byte experimenter ID",
    })?;
    let payload = b.bytes(payload_len, "set_field value")?;
    let (value, mask) = if h.has_mask {
        let (v, m) = payload.split_at(payload.len() / 2);
        (v, Some(m))
    } else {
        (payload, None)
    };
    s.push_str("set_field:");
    match lookup(h.class, h.field, exp) {
        Some(wf) if wf.bytes == value.len() => {
            put_field_value(s, &wf, be_uint(value));
            if let Some(m) = mask {
                s.push('/');
                put_field_value(s, &wf, be_uint(m));
            }
            s.push_str("->");
            s.push_str(wf.name);
        }
        Some(wf) => {
            return Err(DecodeError::BadLength {
                what: wf.nxm_name,
                offset: at,
                len: value.len(),
                reason: "set_field value has a different width",
            });
        }
        None => {
            put_hex_value(s, value);
            if let Some(m) = mask {
                s.push('/');
                put_hex_value(s, m);
            }
            s.push_str("->");
            s.push_str(&unknown_field_name(&h));
        }
    }
    Ok(())
}

fn put_hex_value(s: &mut String, bytes: &[u8]) {
    let v = be_uint(bytes);
    let _ = write!(s, "{}", c_hex(v));
}

/// A field value as Open vSwitch's `mf_format()` writes it for that field.
fn put_field_value(s: &mut String, wf: &WireField, v: u128) {
    match wf.name {
        "eth_src" | "eth_dst" | "arp_sha" | "arp_tha" | "nd_sll" | "nd_tll" => put_eth(s, v as u64),
        "ip_src" | "ip_dst" | "arp_spa" | "arp_tpa" | "tun_src" | "tun_dst" | "ct_nw_src"
        | "ct_nw_dst" => put_ipv4(s, v as u32),
        "ipv6_src" | "ipv6_dst" | "nd_target" | "tun_ipv6_src" | "tun_ipv6_dst" | "ct_ipv6_src"
        | "ct_ipv6_dst" => put_ipv6(s, v),
        "in_port" => format_port(s, v as u16),
        "in_port_oxm" | "actset_output" => {
            format_port(s, port::from_ofp11(v as u32).unwrap_or(v as u16))
        }
        "conj_id" | "tun_gbp_id" | "vlan_vid" | "vlan_pcp" | "mpls_label" | "mpls_tc"
        | "mpls_bos" | "mpls_ttl" | "nw_proto" | "nw_ttl" | "nw_tos" | "ip_dscp" | "nw_ecn"
        | "arp_op" | "tcp_src" | "tcp_dst" | "udp_src" | "udp_dst" | "sctp_src" | "sctp_dst"
        | "icmp_type" | "icmp_code" | "icmpv6_type" | "icmpv6_code" | "ct_nw_proto"
        | "ct_tp_src" | "ct_tp_dst" => {
            let _ = write!(s, "{v}");
        }
        _ => {
            let _ = write!(s, "{}", c_hex(v));
        }
    }
}

/// `NAME[]`, `NAME[ofs]` or `NAME[ofs..end]`.
fn put_subfield(s: &mut String, h: &OxmHeader, exp: u32, ofs: u32, n_bits: u32) {
    let (name, width) = match lookup(h.class, h.field, exp) {
        Some(wf) => (wf.nxm_name.to_owned(), wf.bytes as u32 * 8),
        None => (unknown_field_name(h), h.len as u32 * 8),
    };
    s.push_str(&name);
    if ofs == 0 && n_bits == width {
        s.push_str("[]");
    } else if n_bits == 1 {
        let _ = write!(s, "[{ofs}]");
    } else {
        match (ofs + n_bits).checked_sub(1) {
            // n_bits == 0 is invalid (OVS refuses it); print it rather than underflow.
            Some(end) if n_bits > 0 => {
                let _ = write!(s, "[{ofs}..{end}]");
            }
            _ => {
                let _ = write!(s, "[{ofs}](n_bits=0)");
            }
        }
    }
}

mod nx {
    pub const RESUBMIT: u16 = 1;
    pub const SET_TUNNEL: u16 = 2;
    pub const REG_MOVE: u16 = 6;
    pub const REG_LOAD: u16 = 7;
    pub const NOTE: u16 = 8;
    pub const SET_TUNNEL64: u16 = 9;
    pub const MULTIPATH: u16 = 10;
    pub const BUNDLE: u16 = 12;
    pub const BUNDLE_LOAD: u16 = 13;
    pub const RESUBMIT_TABLE: u16 = 14;
    pub const LEARN: u16 = 16;
    pub const EXIT: u16 = 17;
    pub const DEC_TTL: u16 = 18;
    pub const FIN_TIMEOUT: u16 = 19;
    pub const CONTROLLER: u16 = 20;
    pub const DEC_TTL_CNT_IDS: u16 = 21;
    pub const SAMPLE: u16 = 29;
    pub const REG_LOAD2: u16 = 33;
    pub const CONJUNCTION: u16 = 34;
    pub const CT: u16 = 35;
    pub const NAT: u16 = 36;
    pub const SAMPLE2: u16 = 38;
    pub const SAMPLE3: u16 = 41;
    pub const CLONE: u16 = 42;
    pub const CT_CLEAR: u16 = 43;
    pub const RESUBMIT_TABLE_CT: u16 = 44;
    pub const LEARN2: u16 = 45;
    pub const ENCAP: u16 = 46;
    pub const DECAP: u16 = 47;
    pub const CHECK_PKT_LARGER: u16 = 49;
}

fn format_nicira(
    subtype: u16,
    b: &mut Reader<'_>,
    s: &mut String,
    depth: u32,
) -> Result<(), DecodeError> {
    match subtype {
        nx::RESUBMIT => {
            s.push_str("resubmit:");
            format_port(s, b.u16("resubmit port")?);
        }
        nx::RESUBMIT_TABLE | nx::RESUBMIT_TABLE_CT => {
            let in_port = b.u16("resubmit port")?;
            let table = b.u8("resubmit table")?;
            if in_port != port::IN_PORT && table == 255 && subtype == nx::RESUBMIT_TABLE {
                s.push_str("resubmit:");
                format_port(s, in_port);
            } else {
                s.push_str("resubmit(");
                if in_port != port::IN_PORT {
                    format_port(s, in_port);
                }
                s.push(',');
                if table != 255 {
                    let _ = write!(s, "{table}");
                }
                if subtype == nx::RESUBMIT_TABLE_CT {
                    s.push_str(",ct");
                }
                s.push(')');
            }
        }
        nx::SET_TUNNEL => {
            let _ = write!(s, "set_tunnel:{}", c_hex(u128::from(b.u32("tunnel id")?)));
        }
        nx::SET_TUNNEL64 => {
            b.skip(2, "pad")?;
            let _ = write!(s, "set_tunnel64:{}", c_hex(u128::from(b.u64("tunnel id")?)));
        }
        nx::REG_MOVE => {
            let n_bits = u32::from(b.u16("move n_bits")?);
            let src_ofs = u32::from(b.u16("move src_ofs")?);
            let dst_ofs = u32::from(b.u16("move dst_ofs")?);
            let (src, src_exp) = read_field_header(b)?;
            let (dst, dst_exp) = read_field_header(b)?;
            s.push_str("move:");
            put_subfield(s, &src, src_exp, src_ofs, n_bits);
            s.push_str("->");
            put_subfield(s, &dst, dst_exp, dst_ofs, n_bits);
        }
        nx::REG_LOAD => {
            let ofs_nbits = b.u16("load ofs_nbits")?;
            let (dst, dst_exp) = read_field_header(b)?;
            let value = b.u64("load value")?;
            let _ = write!(s, "load:{}->", c_hex(u128::from(value)));
            put_subfield(
                s,
                &dst,
                dst_exp,
                u32::from(ofs_nbits >> 6),
                u32::from(ofs_nbits & 0x3f) + 1,
            );
        }
        nx::REG_LOAD2 => format_set_field(b, s)?,
        nx::NOTE => {
            s.push_str("note:");
            let bytes = b.bytes(b.remaining(), "note")?;
            for (i, byte) in bytes.iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                let _ = write!(s, "{byte:02x}");
            }
        }
        nx::EXIT => s.push_str("exit"),
        nx::DEC_TTL => s.push_str("dec_ttl"),
        nx::DEC_TTL_CNT_IDS => {
            let n = b.u16("dec_ttl n_controllers")?;
            b.skip(4, "pad")?;
            s.push_str("dec_ttl(");
            for i in 0..n {
                if i > 0 {
                    s.push(',');
                }
                let _ = write!(s, "{}", b.u16("controller id")?);
            }
            s.push(')');
        }
        nx::FIN_TIMEOUT => {
            let idle = b.u16("fin idle")?;
            let hard = b.u16("fin hard")?;
            s.push_str("fin_timeout(");
            if idle != 0 {
                let _ = write!(s, "idle_timeout={idle},");
            }
            if hard != 0 {
                let _ = write!(s, "hard_timeout={hard},");
            }
            if s.ends_with(',') {
                s.pop();
            }
            s.push(')');
        }
        nx::CONTROLLER => {
            let max_len = b.u16("controller max_len")?;
            let id = b.u16("controller id")?;
            let reason = b.u8("controller reason")?;
            if reason == 1 && id == 0 {
                let _ = write!(s, "CONTROLLER:{max_len}");
            } else {
                s.push_str("controller(");
                if reason != 1 {
                    let _ = write!(s, "reason={},", packet_in_reason(reason));
                }
                if max_len != u16::MAX {
                    let _ = write!(s, "max_len={max_len},");
                }
                if id != 0 {
                    let _ = write!(s, "id={id},");
                }
                if s.ends_with(',') {
                    s.pop();
                }
                s.push(')');
            }
        }
        nx::CONJUNCTION => {
            let clause = b.u8("conjunction clause")?;
            let n_clauses = b.u8("conjunction n_clauses")?;
            let id = b.u32("conjunction id")?;
            let _ = write!(s, "conjunction({id},{}/{n_clauses})", u32::from(clause) + 1);
        }
        nx::CT => format_ct(b, s, depth)?,
        nx::NAT => format_nat(b, s)?,
        nx::CT_CLEAR => s.push_str("ct_clear"),
        nx::LEARN | nx::LEARN2 => format_learn(subtype == nx::LEARN2, b, s)?,
        nx::BUNDLE | nx::BUNDLE_LOAD => format_bundle(subtype == nx::BUNDLE_LOAD, b, s)?,
        nx::MULTIPATH => format_multipath(b, s)?,
        nx::SAMPLE | nx::SAMPLE2 | nx::SAMPLE3 => format_sample(subtype, b, s)?,
        nx::CLONE => {
            b.skip(6, "clone pad")?;
            s.push_str("clone(");
            let start = s.len();
            format_actions_nested(b, s, depth + 1)?;
            if s.len() == start {
                s.push_str("drop");
            } else if s.ends_with(',') {
                s.pop();
            }
            s.push(')');
        }
        nx::CHECK_PKT_LARGER => {
            let pkt_len = b.u16("check_pkt_larger pkt_len")?;
            let ofs = b.u16("check_pkt_larger offset")?;
            let (dst, dst_exp) = read_field_header(b)?;
            b.skip(b.remaining(), "check_pkt_larger pad")?;
            let _ = write!(s, "check_pkt_larger({pkt_len})->");
            put_subfield(s, &dst, dst_exp, u32::from(ofs), 1);
        }
        nx::ENCAP => format_encap(b, s)?,
        nx::DECAP => {
            b.skip(2, "decap pad")?;
            let pkt_type = b.u32("decap new_pkt_type")?;
            s.push_str("decap(");
            if pkt_type != PT_USE_NEXT_PROTO {
                let _ = write!(
                    s,
                    "packet_type(ns={},type={})",
                    pkt_type >> 16,
                    c_hex(u128::from(pkt_type & 0xffff))
                );
            }
            s.push(')');
        }
        other => {
            let _ = write!(s, "nx_action(subtype={other})");
        }
    }
    Ok(())
}

/// `ds_put_hex()`: the bytes as one big-endian number, `0x` and no leading zeros; `0` if zero.
fn put_hex_bytes(s: &mut String, bytes: &[u8]) {
    let mut printed = false;
    for &b in bytes {
        if printed {
            let _ = write!(s, "{b:02x}");
        } else if b != 0 {
            let _ = write!(s, "{b:#x}");
            printed = true;
        }
    }
    if !printed {
        s.push('0');
    }
}

/// A subfield as `ofs_nbits` packs it: `(ofs << 6) | (n_bits - 1)`.
fn put_ofs_nbits_subfield(s: &mut String, h: &OxmHeader, exp: u32, ofs_nbits: u16) {
    put_subfield(
        s,
        h,
        exp,
        u32::from(ofs_nbits >> 6),
        u32::from(ofs_nbits & 0x3f) + 1,
    );
}

/// `flow_hash_fields_to_str()`.
fn hash_fields_name(fields: u16) -> &'static str {
    match fields {
        0 => "eth_src",
        1 => "symmetric_l4",
        2 => "symmetric_l3l4",
        3 => "symmetric_l3l4+udp",
        4 => "nw_src",
        5 => "nw_dst",
        6 => "symmetric_l3",
        _ => "<unknown>",
    }
}

mod learn_spec {
    pub const N_BITS_MASK: u16 = 0x3ff;
    pub const SRC_IMMEDIATE: u16 = 1 << 13;
    pub const DST_MASK: u16 = 3 << 11;
    pub const DST_MATCH: u16 = 0;
    pub const DST_LOAD: u16 = 1 << 11;
    pub const DST_OUTPUT: u16 = 2 << 11;
}

/// `learn(…)` from NXAST_LEARN (`struct nx_action_learn`) or NXAST_LEARN2 (that, then `limit`,
/// `result_dst_ofs`, pad and, with `NX_LEARN_F_WRITE_RESULT`, the result field's header), then
/// the flow_mod specs up to a zero header or the end. Written as `learn_format()` does.
fn format_learn(learn2: bool, b: &mut Reader<'_>, s: &mut String) -> Result<(), DecodeError> {
    const SEND_FLOW_REM: u16 = 1 << 0;
    const DELETE_LEARNED: u16 = 1 << 1;
    const WRITE_RESULT: u16 = 1 << 2;
    let idle = b.u16("learn idle_timeout")?;
    let hard = b.u16("learn hard_timeout")?;
    let priority = b.u16("learn priority")?;
    let cookie = b.u64("learn cookie")?;
    let flags = b.u16("learn flags")?;
    let table = b.u8("learn table_id")?;
    b.skip(1, "learn pad")?;
    let fin_idle = b.u16("learn fin_idle_timeout")?;
    let fin_hard = b.u16("learn fin_hard_timeout")?;
    let mut limit = 0;
    let mut result_dst = None;
    if learn2 {
        limit = b.u32("learn limit")?;
        let result_ofs = b.u16("learn result_dst_ofs")?;
        b.skip(2, "learn pad2")?;
        if flags & WRITE_RESULT != 0 {
            let (h, exp) = read_field_header(b)?;
            result_dst = Some((h, exp, result_ofs));
        }
    }
    let _ = write!(s, "learn(table={table}");
    if idle != 0 {
        let _ = write!(s, ",idle_timeout={idle}");
    }
    if hard != 0 {
        let _ = write!(s, ",hard_timeout={hard}");
    }
    if fin_idle != 0 {
        let _ = write!(s, ",fin_idle_timeout={fin_idle}");
    }
    if fin_hard != 0 {
        let _ = write!(s, ",fin_hard_timeout={fin_hard}");
    }
    if priority != 0x8000 {
        let _ = write!(s, ",priority={priority}");
    }
    if flags & SEND_FLOW_REM != 0 {
        s.push_str(",send_flow_rem");
    }
    if flags & DELETE_LEARNED != 0 {
        s.push_str(",delete_learned");
    }
    if cookie != 0 {
        let _ = write!(s, ",cookie={}", c_hex(u128::from(cookie)));
    }
    if limit != 0 {
        let _ = write!(s, ",limit={limit}");
    }
    if let Some((h, exp, ofs)) = result_dst {
        s.push_str(",result_dst=");
        put_subfield(s, &h, exp, u32::from(ofs), 1);
    }
    while b.remaining() >= 2 {
        let at = b.offset();
        let header = b.u16("learn spec header")?;
        if header == 0 {
            break;
        }
        let n_bits = u32::from(header & learn_spec::N_BITS_MASK);
        let immediate = header & learn_spec::SRC_IMMEDIATE != 0;
        let dst_type = header & learn_spec::DST_MASK;
        let valid = matches!(dst_type, learn_spec::DST_MATCH | learn_spec::DST_LOAD)
            || (dst_type == learn_spec::DST_OUTPUT && !immediate);
        if !valid {
            return Err(DecodeError::Invalid {
                what: "learn spec",
                offset: at,
                detail: format!("header {header:#06x}: no such source/destination pair"),
            });
        }
        // The source: a subfield, or an immediate in 16-bit units whose last bytes are the value.
        let src = if immediate {
            let units = n_bits.div_ceil(16) as usize * 2;
            let raw = b.bytes(units, "learn spec immediate")?;
            let n_bytes = n_bits.div_ceil(8) as usize;
            Err(&raw[units - n_bytes..])
        } else {
            let h = OxmHeader::parse(b.u32("learn spec src field")?);
            let ofs = u32::from(b.u16("learn spec src ofs")?);
            Ok((h, ofs))
        };
        let dst = if dst_type == learn_spec::DST_OUTPUT {
            None
        } else {
            let h = OxmHeader::parse(b.u32("learn spec dst field")?);
            let ofs = u32::from(b.u16("learn spec dst ofs")?);
            Some((h, ofs))
        };
        s.push(',');
        match (src, dst) {
            (Err(imm), Some((dh, dofs))) if dst_type == learn_spec::DST_MATCH => {
                match lookup(dh.class, dh.field, 0) {
                    Some(wf) if dofs == 0 && n_bits == wf.bytes as u32 * 8 => {
                        s.push_str(wf.name);
                        s.push('=');
                        put_field_value(s, &wf, be_uint(imm));
                    }
                    _ => {
                        put_subfield(s, &dh, 0, dofs, n_bits);
                        s.push('=');
                        put_hex_bytes(s, imm);
                    }
                }
            }
            (Ok((sh, sofs)), Some((dh, dofs))) if dst_type == learn_spec::DST_MATCH => {
                put_subfield(s, &dh, 0, dofs, n_bits);
                if sh != dh || sofs != dofs {
                    s.push('=');
                    put_subfield(s, &sh, 0, sofs, n_bits);
                }
            }
            (Err(imm), Some((dh, dofs))) => {
                s.push_str("load:");
                put_hex_bytes(s, imm);
                s.push_str("->");
                put_subfield(s, &dh, 0, dofs, n_bits);
            }
            (Ok((sh, sofs)), Some((dh, dofs))) => {
                s.push_str("load:");
                put_subfield(s, &sh, 0, sofs, n_bits);
                s.push_str("->");
                put_subfield(s, &dh, 0, dofs, n_bits);
            }
            (Ok((sh, sofs)), None) => {
                s.push_str("output:");
                put_subfield(s, &sh, 0, sofs, n_bits);
            }
            // An immediate output was refused above.
            (Err(_), None) => {}
        }
    }
    b.skip(b.remaining(), "learn padding")?;
    s.push(')');
    Ok(())
}

/// `bundle(…)` / `bundle_load(…)` (`struct nx_action_bundle` and its member ports), as
/// `bundle_format()` writes it.
fn format_bundle(load: bool, b: &mut Reader<'_>, s: &mut String) -> Result<(), DecodeError> {
    let algorithm = b.u16("bundle algorithm")?;
    let fields = b.u16("bundle fields")?;
    let basis = b.u16("bundle basis")?;
    let _member_type = b.u32("bundle member_type")?;
    let n_members = b.u16("bundle n_members")?;
    let ofs_nbits = b.u16("bundle ofs_nbits")?;
    let dst = OxmHeader::parse(b.u32("bundle dst")?);
    b.skip(4, "bundle reserved")?;
    let algorithm = match algorithm {
        0 => "active_backup",
        1 => "hrw",
        _ => "<unknown>",
    };
    let _ = write!(
        s,
        "{}({},{basis},{algorithm},ofport,",
        if load { "bundle_load" } else { "bundle" },
        hash_fields_name(fields)
    );
    if load {
        put_ofs_nbits_subfield(s, &dst, 0, ofs_nbits);
        s.push(',');
    }
    s.push_str("members:");
    for i in 0..n_members {
        if i > 0 {
            s.push(',');
        }
        format_port(s, b.u16("bundle member")?);
    }
    b.skip(b.remaining(), "bundle padding")?;
    s.push(')');
    Ok(())
}

/// `multipath(…)` (`struct nx_action_multipath`), as `multipath_format()` writes it.
fn format_multipath(b: &mut Reader<'_>, s: &mut String) -> Result<(), DecodeError> {
    let fields = b.u16("multipath fields")?;
    let basis = b.u16("multipath basis")?;
    b.skip(2, "multipath pad")?;
    let algorithm = b.u16("multipath algorithm")?;
    let max_link = b.u16("multipath max_link")?;
    let arg = b.u32("multipath arg")?;
    b.skip(2, "multipath pad")?;
    let ofs_nbits = b.u16("multipath ofs_nbits")?;
    let dst = OxmHeader::parse(b.u32("multipath dst")?);
    let algorithm = match algorithm {
        0 => "modulo_n",
        1 => "hash_threshold",
        2 => "hrw",
        3 => "iter_hash",
        _ => "<unknown>",
    };
    let _ = write!(
        s,
        "multipath({},{basis},{algorithm},{},{arg},",
        hash_fields_name(fields),
        u32::from(max_link) + 1
    );
    put_ofs_nbits_subfield(s, &dst, 0, ofs_nbits);
    s.push(')');
    Ok(())
}

/// `sample(…)` from NXAST_SAMPLE (`struct nx_action_sample`), SAMPLE2 (with `sampling_port`)
/// or SAMPLE3 (and a direction), as `format_SAMPLE()` writes it.
fn format_sample(subtype: u16, b: &mut Reader<'_>, s: &mut String) -> Result<(), DecodeError> {
    let probability = b.u16("sample probability")?;
    let collector_set_id = b.u32("sample collector_set_id")?;
    let obs_domain_id = b.u32("sample obs_domain_id")?;
    let obs_point_id = b.u32("sample obs_point_id")?;
    let (sampling_port, direction) = if subtype == nx::SAMPLE {
        (port::ANY, 0)
    } else {
        let p = b.u16("sample sampling_port")?;
        let d = b.u8("sample direction")?;
        (p, if subtype == nx::SAMPLE3 { d } else { 0 })
    };
    b.skip(b.remaining(), "sample padding")?;
    let _ = write!(
        s,
        "sample(probability={probability},collector_set_id={collector_set_id},\
         obs_domain_id={obs_domain_id},obs_point_id={obs_point_id}"
    );
    if sampling_port != port::ANY {
        s.push_str(",sampling_port=");
        format_port(s, sampling_port);
    }
    match direction {
        1 => s.push_str(",ingress"),
        2 => s.push_str(",egress"),
        _ => {}
    }
    s.push(')');
    Ok(())
}

/// `decap`'s "the next header decides" packet type, (OFPHTN_ONF, 0xfffe).
const PT_USE_NEXT_PROTO: u32 = 0xfffe;

/// `encap(TYPE[(PROPS)])` (`struct nx_action_encap` and its properties), as `format_ENCAP()`
/// writes it. Open vSwitch knows properties of the NSH class only: `md_type` and `tlv`.
fn format_encap(b: &mut Reader<'_>, s: &mut String) -> Result<(), DecodeError> {
    const NSH_CLASS: u16 = 4;
    let _hdr_size = b.u16("encap hdr_size")?;
    let pkt_type = b.u32("encap new_pkt_type")?;
    s.push_str("encap(");
    s.push_str(match pkt_type {
        0x0000_0000 => "ethernet",
        0x0001_894f => "nsh",
        0x0001_8847 => "mpls",
        0x0001_8848 => "mpls_mc",
        _ => "UNKNOWN",
    });
    if !b.is_empty() {
        s.push('(');
        let mut first = true;
        while !b.is_empty() {
            let at = b.offset();
            let class = b.u16("encap property class")?;
            let kind = b.u8("encap property type")?;
            let len = usize::from(b.u8("encap property length")?);
            if len < 4 {
                return Err(DecodeError::BadLength {
                    what: "encap property",
                    offset: at,
                    len,
                    reason: "shorter than its header",
                });
            }
            let mut p = b.sub(len.div_ceil(8) * 8 - 4, "encap property")?;
            if !first {
                s.push(',');
            }
            first = false;
            match (class, kind) {
                (NSH_CLASS, 1) => {
                    let _ = write!(s, "md_type={}", p.u8("nsh md_type")?);
                }
                (NSH_CLASS, 2) => {
                    let tlv_class = p.u16("nsh tlv class")?;
                    let tlv_type = p.u8("nsh tlv type")?;
                    let tlv_len = usize::from(p.u8("nsh tlv length")?);
                    let _ = write!(s, "tlv(0x{tlv_class:04x},{tlv_type},");
                    put_hex_bytes(s, p.bytes(tlv_len, "nsh tlv value")?);
                    s.push(')');
                }
                _ => {
                    let _ = write!(s, "prop(class={class},type={kind})");
                }
            }
        }
        s.push(')');
    }
    s.push(')');
    Ok(())
}

fn packet_in_reason(r: u8) -> String {
    match r {
        0 => "no_match".to_owned(),
        1 => "action".to_owned(),
        2 => "invalid_ttl".to_owned(),
        3 => "action_set".to_owned(),
        4 => "group".to_owned(),
        5 => "packet_out".to_owned(),
        other => other.to_string(),
    }
}

fn format_ct(b: &mut Reader<'_>, s: &mut String, depth: u32) -> Result<(), DecodeError> {
    let flags = b.u16("ct flags")?;
    let zone_src = b.u32("ct zone_src")?;
    let zone = b.u16("ct zone")?;
    let table = b.u8("ct recirc_table")?;
    b.skip(3, "ct pad")?;
    let alg = b.u16("ct alg")?;
    s.push_str("ct(");
    if flags & 1 != 0 {
        s.push_str("commit,");
    }
    if flags & 2 != 0 {
        s.push_str("force,");
    }
    if table != 255 {
        let _ = write!(s, "table={table},");
    }
    if zone_src != 0 {
        let h = OxmHeader::parse(zone_src);
        s.push_str("zone=");
        put_subfield(s, &h, 0, u32::from(zone >> 6), u32::from(zone & 0x3f) + 1);
        s.push(',');
    } else if zone != 0 {
        let _ = write!(s, "zone={zone},");
    }
    // A leading nat is written outside the exec() envelope.
    let mut nested = b.clone();
    let mut first = true;
    let mut exec = String::new();
    check_depth(depth + 1, &nested)?;
    while !nested.is_empty() {
        let (kind, mut body) = next_action(&mut nested)?;
        let is_nat = kind == 0xffff && {
            let mut peek = body.clone();
            peek.u32("experimenter").ok() == Some(experimenter::NICIRA)
                && peek.u16("subtype").ok() == Some(nx::NAT)
        };
        if first && is_nat {
            format_action(kind, &mut body, s, depth + 1)?;
            s.push(',');
        } else {
            format_action(kind, &mut body, &mut exec, depth + 1)?;
            exec.push(',');
        }
        first = false;
    }
    b.skip(b.remaining(), "ct actions")?;
    if !exec.is_empty() {
        exec.pop();
        let _ = write!(s, "exec({exec}),");
    }
    match alg {
        0 => {}
        21 => s.push_str("alg=ftp,"),
        69 => s.push_str("alg=tftp,"),
        other => {
            let _ = write!(s, "alg={other},");
        }
    }
    if s.ends_with(',') {
        s.pop();
    }
    s.push(')');
    Ok(())
}

fn format_nat(b: &mut Reader<'_>, s: &mut String) -> Result<(), DecodeError> {
    b.skip(2, "nat pad")?;
    let flags = b.u16("nat flags")?;
    let range = b.u16("nat range_present")?;
    let mut v4 = (None, None);
    let mut v6 = (None, None);
    let mut proto = (0u16, 0u16);
    if range & 0x01 != 0 {
        v4.0 = Some(b.u32("nat ipv4 min")?);
    }
    if range & 0x02 != 0 {
        v4.1 = Some(b.u32("nat ipv4 max")?);
    }
    if range & 0x04 != 0 {
        v6.0 = Some(be_uint(b.bytes(16, "nat ipv6 min")?));
    }
    if range & 0x08 != 0 {
        v6.1 = Some(be_uint(b.bytes(16, "nat ipv6 max")?));
    }
    if range & 0x10 != 0 {
        proto.0 = b.u16("nat proto min")?;
    }
    if range & 0x20 != 0 {
        proto.1 = b.u16("nat proto max")?;
    }
    s.push_str("nat");
    if flags & 0x3 != 0 {
        s.push('(');
        s.push_str(if flags & 1 != 0 { "src" } else { "dst" });
        let has_range = v4.0.is_some() || v6.0.is_some();
        if has_range {
            s.push('=');
            if let Some(min) = v4.0 {
                put_ipv4(s, min);
                if let Some(max) = v4.1.filter(|&m| m != 0 && m != min) {
                    s.push('-');
                    put_ipv4(s, max);
                }
            } else if let Some(min) = v6.0 {
                let bracket = proto.0 != 0;
                put_ipv6_bracket(s, min, bracket);
                if let Some(max) = v6.1.filter(|&m| m != 0 && m != min) {
                    s.push('-');
                    put_ipv6_bracket(s, max, bracket);
                }
            }
            if proto.0 != 0 {
                let _ = write!(s, ":{}", proto.0);
                if proto.1 != 0 && proto.1 != proto.0 {
                    let _ = write!(s, "-{}", proto.1);
                }
            }
            s.push(',');
            if flags & 0x04 != 0 {
                s.push_str("persistent,");
            }
            if flags & 0x08 != 0 {
                s.push_str("hash,");
            }
            if flags & 0x10 != 0 {
                s.push_str("random,");
            }
        }
        if s.ends_with(',') {
            s.pop();
        }
        s.push(')');
    }
    Ok(())
}

fn put_ipv6_bracket(s: &mut String, v: u128, bracket: bool) {
    if bracket {
        s.push('[');
    }
    put_ipv6(s, v);
    if bracket {
        s.push(']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(kind: u16, body: &[u8]) -> Vec<u8> {
        let len = 4 + body.len();
        let padded = len.div_ceil(8) * 8;
        let mut v = kind.to_be_bytes().to_vec();
        v.extend_from_slice(&(padded as u16).to_be_bytes());
        v.extend_from_slice(body);
        v.resize(padded, 0);
        v
    }

    fn nx_action(subtype: u16, body: &[u8]) -> Vec<u8> {
        let mut b = experimenter::NICIRA.to_be_bytes().to_vec();
        b.extend_from_slice(&subtype.to_be_bytes());
        b.extend_from_slice(body);
        action(0xffff, &b)
    }

    fn instruction(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut v = kind.to_be_bytes().to_vec();
        v.extend_from_slice(&((4 + body.len()) as u16).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn apply(actions: &[Vec<u8>]) -> Vec<u8> {
        let mut body = vec![0u8; 4];
        for a in actions {
            body.extend_from_slice(a);
        }
        instruction(instruction::APPLY_ACTIONS, &body)
    }

    fn fmt(instrs: &[Vec<u8>]) -> String {
        let mut s = String::new();
        let data: Vec<u8> = instrs.concat();
        match format_instructions(&data, &mut s) {
            Ok(()) => s,
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn drop_output_goto() {
        assert_eq!(fmt(&[]), "drop");
        let out2 = action(0, &[0, 0, 0, 2, 0xff, 0xe5]);
        let normal = action(0, &[0xff, 0xff, 0xff, 0xfa, 0, 0]);
        let ctrl = action(0, &[0xff, 0xff, 0xff, 0xfd, 0xff, 0xff]);
        let goto = instruction(instruction::GOTO_TABLE, &[3, 0, 0, 0]);
        assert_eq!(
            fmt(&[goto.clone(), apply(&[out2, normal, ctrl])]),
            "output:2,NORMAL,CONTROLLER:65535,goto_table:3"
        );
        let group = action(22, &[0, 0, 0, 7]);
        assert_eq!(fmt(&[apply(&[group])]), "group:7");
    }

    #[test]
    fn resubmit_forms() {
        let to_table = nx_action(nx::RESUBMIT_TABLE, &[0xff, 0xf8, 2, 0, 0, 0]);
        let to_port = nx_action(nx::RESUBMIT_TABLE, &[0, 3, 255, 0, 0, 0]);
        let both = nx_action(nx::RESUBMIT_TABLE, &[0, 3, 4, 0, 0, 0]);
        assert_eq!(
            fmt(&[apply(&[to_table, to_port, both])]),
            "resubmit(,2),resubmit:3,resubmit(3,4)"
        );
    }

    #[test]
    fn move_with_zero_bits_does_not_underflow() {
        // move with n_bits = 0 (OVS refuses to install it; a peer may still send it).
        let mut body = 0u16.to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 0, 0, 0]);
        body.extend_from_slice(&0x0000_0406u32.to_be_bytes());
        body.extend_from_slice(&0x0000_0206u32.to_be_bytes());
        let mv = nx_action(nx::REG_MOVE, &body);
        assert_eq!(
            fmt(&[apply(&[mv])]),
            "move:NXM_OF_ETH_SRC[0](n_bits=0)->NXM_OF_ETH_DST[0](n_bits=0)"
        );
    }

    #[test]
    fn experimenter_set_field_shorter_than_its_id_is_an_error() {
        // OFPAT_SET_FIELD with an experimenter OXM whose length (2) cannot hold the 4-byte ID.
        let set = action(25, &[0xff, 0xff, 0x02, 0x02, 0, 0, 0x23, 0x20, 0, 0]);
        let out = fmt(&[apply(&[set])]);
        assert!(
            out.starts_with("error: bad length 2 for set_field experimenter field"),
            "{out}"
        );
    }

    #[test]
    fn load_and_move() {
        // load:0x5->NXM_NX_REG0[0..15]
        let mut body = ((15u16) & 0x3f).to_be_bytes().to_vec();
        body.extend_from_slice(&0x0001_0004u32.to_be_bytes());
        body.extend_from_slice(&5u64.to_be_bytes());
        let load = nx_action(nx::REG_LOAD, &body);
        // move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]
        let mut body = 48u16.to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 0, 0, 0]);
        body.extend_from_slice(&0x0000_0406u32.to_be_bytes());
        body.extend_from_slice(&0x0000_0206u32.to_be_bytes());
        let mv = nx_action(nx::REG_MOVE, &body);
        assert_eq!(
            fmt(&[apply(&[load, mv])]),
            "load:0x5->NXM_NX_REG0[0..15],move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]"
        );
    }

    #[test]
    fn set_field_values() {
        // set_field:10.0.0.1->ip_dst
        let mut body = 0x8000_1804u32.to_be_bytes().to_vec();
        body.extend_from_slice(&[10, 0, 0, 1]);
        let a = action(25, &body);
        // set_field:aa:bb:cc:dd:ee:ff->eth_src
        let mut body = 0x8000_0806u32.to_be_bytes().to_vec();
        body.extend_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
        let b = action(25, &body);
        assert_eq!(
            fmt(&[apply(&[a, b])]),
            "set_field:10.0.0.1->ip_dst,set_field:aa:bb:cc:dd:ee:ff->eth_src"
        );
    }

    #[test]
    fn ct_with_nat_and_exec() {
        // nat(src=10.0.0.1-10.0.0.9:1000-2000)
        let mut nat = vec![0, 0];
        nat.extend_from_slice(&1u16.to_be_bytes());
        nat.extend_from_slice(&(0x01u16 | 0x02 | 0x10 | 0x20).to_be_bytes());
        nat.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 9]);
        nat.extend_from_slice(&1000u16.to_be_bytes());
        nat.extend_from_slice(&2000u16.to_be_bytes());
        let nat = nx_action(nx::NAT, &nat);
        // set_field:0x1->ct_mark
        let mut sf = 0x0001_d604u32.to_be_bytes().to_vec();
        sf.extend_from_slice(&1u32.to_be_bytes());
        let sf = action(25, &sf);
        let mut ct = 1u16.to_be_bytes().to_vec(); // commit
        ct.extend_from_slice(&0u32.to_be_bytes());
        ct.extend_from_slice(&7u16.to_be_bytes()); // zone=7
        ct.push(4); // table
        ct.extend_from_slice(&[0, 0, 0]);
        ct.extend_from_slice(&0u16.to_be_bytes());
        ct.extend_from_slice(&nat);
        ct.extend_from_slice(&sf);
        let ct = nx_action(nx::CT, &ct);
        assert_eq!(
            fmt(&[apply(&[ct])]),
            "ct(commit,table=4,zone=7,nat(src=10.0.0.1-10.0.0.9:1000-2000),exec(set_field:0x1->ct_mark))"
        );
    }

    #[test]
    fn next_tables_follow_resubmit_then_goto() {
        let r1 = nx_action(nx::RESUBMIT_TABLE, &[0xff, 0xf8, 3, 0, 0, 0]);
        let out = action(0, &[0, 0, 0, 2, 0, 0]);
        let r2 = nx_action(nx::RESUBMIT_TABLE, &[0xff, 0xf8, 4, 0, 0, 0]);
        let goto = instruction(instruction::GOTO_TABLE, &[5, 0, 0, 0]);
        let data = [apply(&[r1, out, r2]), goto].concat();
        assert_eq!(next_tables(&data, 1), Ok(vec![3, 4, 5]));
        assert_eq!(next_tables(&[], 0), Ok(vec![]));
    }

    /// NXAST_LEARN: table=10, idle_timeout=60, default priority, then a match from a field, an
    /// output and an immediate load.
    fn learn_action() -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&60u16.to_be_bytes()); // idle
        body.extend_from_slice(&0u16.to_be_bytes()); // hard
        body.extend_from_slice(&0x8000u16.to_be_bytes()); // priority
        body.extend_from_slice(&0u64.to_be_bytes()); // cookie
        body.extend_from_slice(&0u16.to_be_bytes()); // flags
        body.extend_from_slice(&[10, 0]); // table, pad
        body.extend_from_slice(&[0, 0, 0, 0]); // fin timeouts
        // NXM_OF_VLAN_TCI[0..11] (match, from the same subfield)
        body.extend_from_slice(&12u16.to_be_bytes());
        body.extend_from_slice(&0x0000_0802u32.to_be_bytes());
        body.extend_from_slice(&0u16.to_be_bytes());
        body.extend_from_slice(&0x0000_0802u32.to_be_bytes());
        body.extend_from_slice(&0u16.to_be_bytes());
        // output:NXM_OF_IN_PORT[]
        body.extend_from_slice(&(learn_spec::DST_OUTPUT | 16).to_be_bytes());
        body.extend_from_slice(&0x0000_0002u32.to_be_bytes());
        body.extend_from_slice(&0u16.to_be_bytes());
        // load:0x1->NXM_NX_REG1[]
        body.extend_from_slice(
            &(learn_spec::SRC_IMMEDIATE | learn_spec::DST_LOAD | 32).to_be_bytes(),
        );
        body.extend_from_slice(&1u32.to_be_bytes());
        body.extend_from_slice(&0x0001_0204u32.to_be_bytes());
        body.extend_from_slice(&0u16.to_be_bytes());
        nx_action(nx::LEARN, &body)
    }

    fn clone_of(actions: &[Vec<u8>]) -> Vec<u8> {
        let mut body = vec![0u8; 6];
        for a in actions {
            body.extend_from_slice(a);
        }
        nx_action(nx::CLONE, &body)
    }

    fn encap_nsh_tlv() -> Vec<u8> {
        let mut body = 0u16.to_be_bytes().to_vec(); // hdr_size
        body.extend_from_slice(&0x0001_894fu32.to_be_bytes());
        body.extend_from_slice(&[0, 4, 1, 5, 2, 0, 0, 0]); // md_type=2
        body.extend_from_slice(&[0, 4, 2, 12, 0x10, 0x00, 10, 3, 0xab, 0xcd, 0xef, 0]);
        nx_action(nx::ENCAP, &body)
    }

    #[test]
    fn learn_specs() {
        assert_eq!(
            fmt(&[apply(&[learn_action()])]),
            "learn(table=10,idle_timeout=60,NXM_OF_VLAN_TCI[0..11],\
             output:NXM_OF_IN_PORT[],load:0x1->NXM_NX_REG1[])"
        );
        // A spec with the reserved destination type is refused, not guessed at.
        let mut bad = learn_action();
        bad[32] = 0x18;
        assert!(
            fmt(&[apply(&[bad])]).starts_with("error: invalid learn spec"),
            "reserved destination"
        );
    }

    #[test]
    fn clone_nests_and_next_tables_look_inside() {
        let r7 = nx_action(nx::RESUBMIT_TABLE, &[0xff, 0xf8, 7, 0, 0, 0]);
        let r8 = nx_action(nx::RESUBMIT_TABLE, &[0xff, 0xf8, 8, 0, 0, 0]);
        let out = action(0, &[0, 0, 0, 2, 0, 0]);
        let c = clone_of(&[clone_of(&[r7]), out]);
        let data = apply(&[c, r8]);
        assert_eq!(
            fmt(std::slice::from_ref(&data)),
            "clone(clone(resubmit(,7)),output:2),resubmit(,8)"
        );
        assert_eq!(next_tables(&data, 1), Ok(vec![7, 8]));
        assert_eq!(fmt(&[apply(&[clone_of(&[])])]), "clone(drop)");
        // Nested past Open vSwitch's limit: an error from both walks, not a deep recursion.
        let mut deep = action(0, &[0, 0, 0, 2, 0, 0]);
        for _ in 0..=MAX_NESTING {
            deep = clone_of(&[deep]);
        }
        let deep = apply(&[deep]);
        assert!(fmt(std::slice::from_ref(&deep)).starts_with("error: invalid nested actions"));
        assert!(next_tables(&deep, 0).is_err());
    }

    #[test]
    fn encap_properties() {
        assert_eq!(
            fmt(&[apply(&[encap_nsh_tlv()])]),
            "encap(nsh(md_type=2,tlv(0x1000,10,0xabcdef)))"
        );
        // A property shorter than its own header.
        let mut body = 0u16.to_be_bytes().to_vec();
        body.extend_from_slice(&0x0001_894fu32.to_be_bytes());
        body.extend_from_slice(&[0, 4, 1, 2, 0, 0, 0, 0]);
        let out = fmt(&[apply(&[nx_action(nx::ENCAP, &body)])]);
        assert!(
            out.starts_with("error: bad length 2 for encap property"),
            "{out}"
        );
    }

    #[test]
    fn every_truncation_of_the_nicira_actions_is_an_error_not_a_panic() {
        let mut sample3 = 100u16.to_be_bytes().to_vec();
        sample3.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xff, 0xfe, 2]);
        let mut cpl = 1500u16.to_be_bytes().to_vec();
        cpl.extend_from_slice(&0u16.to_be_bytes());
        cpl.extend_from_slice(&0x0001_0004u32.to_be_bytes());
        let mut mp = vec![0, 0, 0, 50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        mp.extend_from_slice(&5u16.to_be_bytes());
        mp.extend_from_slice(&0x0001_0004u32.to_be_bytes());
        let mut bundle = vec![
            0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        bundle.extend_from_slice(&[0, 1, 0, 2]);
        let actions = [
            learn_action(),
            clone_of(&[action(0, &[0, 0, 0, 2, 0, 0])]),
            encap_nsh_tlv(),
            nx_action(nx::SAMPLE3, &sample3),
            nx_action(nx::CHECK_PKT_LARGER, &cpl),
            nx_action(nx::MULTIPATH, &mp),
            nx_action(nx::BUNDLE, &bundle),
            nx_action(nx::DECAP, &[0, 0, 0, 1, 0x08, 0x00]),
        ];
        assert_eq!(
            fmt(&[apply(&actions[3..])]),
            "sample(probability=100,collector_set_id=1,obs_domain_id=2,obs_point_id=3,\
             sampling_port=LOCAL,egress),check_pkt_larger(1500)->NXM_NX_REG0[0],\
             multipath(eth_src,50,modulo_n,1,0,NXM_NX_REG0[0..5]),\
             bundle(eth_src,0,hrw,ofport,members:1,2),decap(packet_type(ns=1,type=0x800))"
        );
        for a in &actions {
            // The action's own length cut short, then every byte of it corrupted in turn.
            for cut in (8..a.len()).step_by(8) {
                let mut short = a[..cut].to_vec();
                short[2..4].copy_from_slice(&(cut as u16).to_be_bytes());
                let _ = fmt(&[apply(&[short])]);
            }
            for i in 0..a.len() {
                let mut c = a.clone();
                c[i] ^= 0xa5;
                let _ = fmt(&[apply(&[c.clone()])]);
                let _ = next_tables(&apply(&[c]), 0);
            }
        }
    }

    #[test]
    fn malformed_is_an_error_not_a_panic() {
        let out2 = action(0, &[0, 0, 0, 2, 0xff, 0xe5]);
        let mut instr = apply(&[out2]);
        instr[3] = 3; // instruction length shorter than its header
        assert!(fmt(&[instr.clone()]).starts_with("error:"));
        let full = apply(&[action(0, &[0, 0, 0, 2, 0, 0])]);
        for cut in 0..full.len() {
            let mut s = String::new();
            let _ = format_instructions(&full[..cut], &mut s);
        }
        let mut bad_action = apply(&[action(0, &[0, 0, 0, 2, 0, 0])]);
        bad_action[10] = 0;
        bad_action[11] = 12; // action length not a multiple of 8
        assert!(fmt(&[bad_action]).starts_with("error:"));
    }
}
