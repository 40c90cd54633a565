//! OpenFlow 1.3 instructions and actions, written as `ovs-ofctl -O OpenFlow13 dump-flows` writes
//! them (the `actions=` part).
//!
//! Covered: every OpenFlow 1.3 action Open vSwitch implements, and the Nicira extensions that
//! Kubernetes CNIs use (`resubmit`, `load`, `move`, `set_field` via `reg_load2`, `ct` with `nat`
//! and `exec`, `ct_clear`, `conjunction`, `note`, `controller`, `dec_ttl`, `exit`,
//! `fin_timeout`, `set_tunnel`). Anything else is written as `nx_action(subtype=N)` or
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
                while !body.is_empty() {
                    let aat = body.offset();
                    let akind = body.u16("action type")?;
                    let alen = body.u16("action length")? as usize;
                    if alen < 8 || !alen.is_multiple_of(8) {
                        return Err(DecodeError::BadLength {
                            what: "action",
                            offset: aat,
                            len: alen,
                            reason: "actions are a multiple of 8 bytes, at least 8",
                        });
                    }
                    let mut a = body.sub(alen - 4, "action body")?;
                    if akind == 0xffff
                        && a.u32("experimenter")? == experimenter::NICIRA
                        && matches!(
                            a.u16("subtype")?,
                            nx::RESUBMIT_TABLE | nx::RESUBMIT_TABLE_CT
                        )
                    {
                        let _in_port = a.u16("resubmit port")?;
                        let table = a.u8("resubmit table")?;
                        out.push(if table == 255 { current } else { table });
                    }
                }
            }
            _ => {}
        }
    }
    out.extend(goto);
    // A resubmit to its own table would loop: not followed.
    out.retain(|&t| t != current);
    Ok(out)
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
    while !r.is_empty() {
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
        let mut body = r.sub(len - 4, "action body")?;
        format_action(kind, &mut body, s)?;
        s.push(',');
    }
    Ok(())
}

fn format_action(kind: u16, b: &mut Reader<'_>, s: &mut String) -> Result<(), DecodeError> {
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
                format_nicira(subtype, b, s)?;
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
    pub const RESUBMIT_TABLE: u16 = 14;
    pub const EXIT: u16 = 17;
    pub const DEC_TTL: u16 = 18;
    pub const FIN_TIMEOUT: u16 = 19;
    pub const CONTROLLER: u16 = 20;
    pub const DEC_TTL_CNT_IDS: u16 = 21;
    pub const REG_LOAD2: u16 = 33;
    pub const CONJUNCTION: u16 = 34;
    pub const CT: u16 = 35;
    pub const NAT: u16 = 36;
    pub const CT_CLEAR: u16 = 43;
    pub const RESUBMIT_TABLE_CT: u16 = 44;
}

fn format_nicira(subtype: u16, b: &mut Reader<'_>, s: &mut String) -> Result<(), DecodeError> {
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
        nx::CT => format_ct(b, s)?,
        nx::NAT => format_nat(b, s)?,
        nx::CT_CLEAR => s.push_str("ct_clear"),
        other => {
            let _ = write!(s, "nx_action(subtype={other})");
        }
    }
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

fn format_ct(b: &mut Reader<'_>, s: &mut String) -> Result<(), DecodeError> {
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
    while !nested.is_empty() {
        let at = nested.offset();
        let kind = nested.u16("ct action type")?;
        let len = nested.u16("ct action length")? as usize;
        if len < 8 || !len.is_multiple_of(8) {
            return Err(DecodeError::BadLength {
                what: "ct nested action",
                offset: at,
                len,
                reason: "actions are a multiple of 8 bytes, at least 8",
            });
        }
        let mut body = nested.sub(len - 4, "ct nested action")?;
        let is_nat = kind == 0xffff && {
            let mut peek = body.clone();
            peek.u32("experimenter").ok() == Some(experimenter::NICIRA)
                && peek.u16("subtype").ok() == Some(nx::NAT)
        };
        if first && is_nat {
            format_action(kind, &mut body, s)?;
            s.push(',');
        } else {
            format_action(kind, &mut body, &mut exec)?;
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
