//! Datapath flows (`ovs-dpctl dump-flows`, `ovs-appctl dpctl/dump-flows`), decoded with the
//! tables of OVS's Python `ovs.flow.odp.ODPFlow`, so the JSON view has its shape:
//!
//! - each key of the match, of `set(...)` and of the actions has a decoder, as in
//!   `ODPFlow._field_decoders_args` / `_action_decoders_args`: integers, value/mask integers of
//!   a width (`skb_mark(0x123/0xfff)`), IP networks, Ethernet addresses, nested key-values
//!   (`eth(src=…)`, `ct(commit,zone=5,nat(…))`, `tnl_push(…header(…))`) and nested action lists
//!   (`clone(…)`, `sample(…,actions(…))`, `check_pkt_len(size=…,gt(…),le(…))`);
//! - a key that the table has is decoded even without a value (`ct`, `drop` are `true`); a key
//!   without a value and without a decoder is `true`, or in an action list an output port
//!   (`1` is `{"output": {"port": 1}}`);
//! - Geneve options (`{class=…,type=…,len=…,data}`) are a list of objects, GRE header fields
//!   (`gre((flags=…,proto=…),key=…)`) one flat object.
//!
//! Where the Python parser raises (an unknown key with a value, an integer that does not read),
//! the value is kept instead, as an integer if it reads as one, else as text. Nesting is bounded
//! by the scanner (`MAX_NESTING`): each nested decode is one scan of a strictly shorter text.

use super::{
    Delim, Flow, FlowKind, Kv, ParseError, RawKv, Value, decode_nat, default_value, eth_value,
    for_each_kv, ip_value, mask_value, py_int, time_value,
};

/// How one key's value is decoded (the Python decoder functions).
#[derive(Clone, Copy)]
enum D {
    /// `decode_default`: an integer if it reads as one, else the text.
    Default,
    /// `decode_int`.
    Int,
    /// `decode_flag`.
    Flag,
    /// `MaskN`: value and mask of a width.
    Mask(u32),
    /// `IPMask`.
    Ip,
    /// `EthMask`.
    Eth,
    /// `decode_nat`.
    Nat,
    /// `sample=9.7%`: a float without the `%`.
    Percent,
    /// `nested_kv_decoder(KVDecoders(table))`: an object.
    Map(&'static [(&'static str, D)]),
    /// The match fields with `encap(...)`, whose value is the fields again.
    Fields,
    /// `nested_kv_decoder(action decoders, is_list=True)`: a list of actions.
    Actions,
    /// `decode_geneve(mask)`: a list of option objects.
    Geneve(bool),
    /// `decode_tnl_gre`: the parentheses dropped, one object.
    Gre,
}

const INFO: &[(&str, D)] = &[
    ("packets", D::Int),
    ("bytes", D::Int),
    ("used", D::Default), // decoded as a time below
    ("flags", D::Default),
    ("dp", D::Default),
    ("offloaded", D::Default),
];

const M8: D = D::Mask(8);
const M16: D = D::Mask(16);
const M32: D = D::Mask(32);

const TUNNEL: &[(&str, D)] = &[
    ("tun_id", D::Mask(64)),
    ("src", D::Ip),
    ("dst", D::Ip),
    ("ipv6_src", D::Ip),
    ("ipv6_dst", D::Ip),
    ("tos", M8),
    ("ttl", M8),
    ("tp_src", M16),
    ("tp_dst", M16),
    (
        "erspan",
        D::Map(&[
            ("ver", M8),
            ("idx", M32),
            ("sid", D::Int),
            ("dir", M8),
            ("hwid", M8),
        ]),
    ),
    (
        "vxlan",
        D::Map(&[
            ("flags", D::Int),
            ("vni", D::Int),
            ("gbp", D::Map(&[("id", M16), ("flags", M8)])),
        ]),
    ),
    ("geneve", D::Geneve(true)),
    ("gtpu", D::Map(&[("flags", M8), ("msgtype", M8)])),
    ("flags", D::Default),
];

const SRC_DST16: &[(&str, D)] = &[("src", M16), ("dst", M16)];
const TYPE_CODE: &[(&str, D)] = &[("type", M8), ("code", M8)];

/// `_field_decoders_args`: the match keys, also what `set(...)` takes.
const FIELDS: &[(&str, D)] = &[
    ("skb_priority", M32),
    ("skb_mark", M32),
    ("recirc_id", D::Int),
    ("dp_hash", M32),
    ("ct_state", D::Default),
    ("ct_zone", M16),
    ("ct_mark", M32),
    ("ct_label", D::Mask(128)),
    (
        "ct_tuple4",
        D::Map(&[
            ("src", D::Ip),
            ("dst", D::Ip),
            ("proto", M8),
            ("tp_src", M16),
            ("tp_dst", M16),
        ]),
    ),
    (
        "ct_tuple6",
        D::Map(&[
            ("src", D::Ip),
            ("dst", D::Ip),
            ("proto", M8),
            ("tcp_src", M16),
            ("tcp_dst", M16),
        ]),
    ),
    ("tunnel", D::Map(TUNNEL)),
    ("in_port", D::Default),
    ("eth", D::Map(&[("src", D::Eth), ("dst", D::Eth)])),
    ("vlan", D::Map(&[("vid", M16), ("pcp", M16), ("cfi", M16)])),
    ("eth_type", M16),
    (
        "mpls",
        D::Map(&[("label", M32), ("tc", M32), ("ttl", M32), ("bos", M32)]),
    ),
    (
        "ipv4",
        D::Map(&[
            ("src", D::Ip),
            ("dst", D::Ip),
            ("proto", M8),
            ("tos", M8),
            ("ttl", M8),
            ("frag", D::Default),
        ]),
    ),
    (
        "ipv6",
        D::Map(&[
            ("src", D::Ip),
            ("dst", D::Ip),
            ("label", D::Mask(20)),
            ("proto", M8),
            ("tclass", M8),
            ("hlimit", M8),
            ("frag", D::Default),
        ]),
    ),
    ("tcp", D::Map(SRC_DST16)),
    ("tcp_flags", D::Default),
    ("udp", D::Map(SRC_DST16)),
    ("sctp", D::Map(SRC_DST16)),
    ("icmp", D::Map(TYPE_CODE)),
    ("icmpv6", D::Map(TYPE_CODE)),
    (
        "arp",
        D::Map(&[
            ("sip", D::Ip),
            ("tip", D::Ip),
            ("op", M16),
            ("sha", D::Eth),
            ("tha", D::Eth),
        ]),
    ),
    (
        "nd",
        D::Map(&[("target", D::Ip), ("sll", D::Eth), ("tll", D::Eth)]),
    ),
    (
        "nd_ext",
        D::Map(&[("nd_reserved", M32), ("nd_options_type", M8)]),
    ),
    ("packet_type", D::Map(&[("ns", M16), ("id", M16)])),
    (
        "nsh",
        D::Map(&[
            ("flags", M8),
            ("mdtype", M8),
            ("np", M8),
            ("spi", M32),
            ("si", M8),
            ("c1", M32),
            ("c2", M32),
            ("c3", M32),
            ("c4", M32),
        ]),
    ),
];

const INTS_MPLS: &[(&str, D)] = &[
    ("label", D::Int),
    ("tc", D::Int),
    ("ttl", D::Int),
    ("bos", D::Int),
    ("eth_type", D::Int),
];

const USERSPACE: &[(&str, D)] = &[
    ("pid", D::Int),
    (
        "sFlow",
        D::Map(&[("vid", D::Int), ("pcp", D::Int), ("output", D::Int)]),
    ),
    ("slow_path", D::Default),
    (
        "flow_sample",
        D::Map(&[
            ("probability", D::Int),
            ("collector_set_id", D::Int),
            ("obs_domain_id", D::Int),
            ("obs_point_id", D::Int),
            ("output_port", D::Default),
            ("ingress", D::Flag),
            ("egress", D::Flag),
        ]),
    ),
    ("ipfix", D::Map(&[("output_port", D::Default)])),
    (
        "controller",
        D::Map(&[
            ("reason", D::Int),
            ("dont_send", D::Int),
            ("continuation", D::Int),
            ("recirc_id", D::Int),
            ("rule_cookie", D::Int),
            ("controller_id", D::Int),
            ("max_len", D::Int),
        ]),
    ),
    ("userdata", D::Default),
    ("actions", D::Flag),
    ("tunnel_out_port", D::Default),
    (
        "push_eth",
        D::Map(&[("src", D::Eth), ("dst", D::Eth), ("type", D::Int)]),
    ),
    ("pop_eth", D::Flag),
];

const HEADER: &[(&str, D)] = &[
    ("size", D::Int),
    ("type", D::Int),
    (
        "eth",
        D::Map(&[("src", D::Eth), ("dst", D::Eth), ("dl_type", D::Int)]),
    ),
    (
        "ipv4",
        D::Map(&[
            ("src", D::Ip),
            ("dst", D::Ip),
            ("proto", D::Int),
            ("tos", D::Int),
            ("ttl", D::Int),
            ("frag", D::Int),
        ]),
    ),
    (
        "ipv6",
        D::Map(&[
            ("src", D::Ip),
            ("dst", D::Ip),
            ("label", D::Int),
            ("proto", D::Int),
            ("tclass", D::Int),
            ("hlimit", D::Int),
        ]),
    ),
    (
        "udp",
        D::Map(&[("src", D::Int), ("dst", D::Int), ("csum", M16)]),
    ),
    ("vxlan", D::Map(&[("flags", D::Int), ("vni", D::Int)])),
    (
        "geneve",
        D::Map(&[
            ("oam", D::Flag),
            ("crit", D::Flag),
            ("vni", D::Int),
            ("options", D::Geneve(false)),
        ]),
    ),
    ("gre", D::Gre),
    (
        "erspan",
        D::Map(&[
            ("ver", D::Int),
            ("sid", D::Int),
            ("idx", D::Int),
            ("dir", D::Int),
            ("hwid", D::Int),
        ]),
    ),
    (
        "gtpu",
        D::Map(&[("flags", D::Int), ("msgtype", D::Int), ("teid", D::Int)]),
    ),
    (
        "srv6",
        D::Map(&[("segments_left", D::Int), ("segs", D::Default)]),
    ),
];

const GRE: &[(&str, D)] = &[
    ("flags", D::Int),
    ("proto", D::Int),
    ("key", D::Int),
    ("csum", D::Int),
    ("seq", D::Int),
];

/// `_action_decoders_args`.
const ACTIONS: &[(&str, D)] = &[
    ("drop", D::Flag),
    ("meter", D::Int),
    ("lb_output", D::Int),
    ("trunc", D::Int),
    ("recirc", D::Int),
    ("userspace", D::Map(USERSPACE)),
    ("set", D::Map(FIELDS)),
    (
        "push_vlan",
        D::Map(&[
            ("vid", D::Int),
            ("pcp", D::Int),
            ("cfi", D::Int),
            ("tpid", D::Int),
        ]),
    ),
    ("pop_vlan", D::Flag),
    (
        "push_nsh",
        D::Map(&[
            ("flags", D::Int),
            ("ttl", D::Int),
            ("mdtype", D::Int),
            ("np", D::Int),
            ("spi", D::Int),
            ("si", D::Int),
            ("c1", D::Int),
            ("c2", D::Int),
            ("c3", D::Int),
            ("c4", D::Int),
            ("md2", D::Int),
        ]),
    ),
    ("pop_nsh", D::Flag),
    ("tnl_pop", D::Int),
    // ODPFlow's own table holds a `KVDecoders` here, which it cannot call: see docs/flows.md.
    ("pop_mpls", D::Map(&[("eth_type", D::Int)])),
    ("push_mpls", D::Map(INTS_MPLS)),
    ("add_mpls", D::Map(INTS_MPLS)),
    ("ct_clear", D::Flag),
    (
        "ct",
        D::Map(&[
            ("commit", D::Flag),
            ("force_commit", D::Flag),
            ("zone", D::Int),
            ("mark", M32),
            ("label", D::Mask(128)),
            ("helper", D::Default),
            ("timeout", D::Default),
            ("nat", D::Nat),
        ]),
    ),
    (
        "tnl_push",
        D::Map(&[
            ("tnl_port", D::Default),
            ("header", D::Map(HEADER)),
            ("out_port", D::Default),
        ]),
    ),
    ("hash", D::Map(&[("l4", D::Int), ("sym_l4", D::Int)])),
    (
        "psample",
        D::Map(&[("group", D::Int), ("cookie", D::Default)]),
    ),
    (
        "sample",
        D::Map(&[("sample", D::Percent), ("actions", D::Actions)]),
    ),
    ("clone", D::Actions),
    (
        "check_pkt_len",
        D::Map(&[("size", D::Int), ("gt", D::Actions), ("le", D::Actions)]),
    ),
];

fn find(table: &[(&str, D)], key: &str) -> Option<D> {
    table.iter().find(|(k, _)| *k == key).map(|&(_, d)| d)
}

/// Where a list of keys is: it decides the table and what a key without a decoder means.
#[derive(Clone, Copy)]
enum Ctx {
    /// An object of the table (a key alone is `true`).
    Table(&'static [(&'static str, D)]),
    /// The match: the fields and `encap`.
    Match,
    /// A list of actions (a key alone is an output port).
    Actions,
}

impl Ctx {
    fn lookup(self, key: &str) -> Option<D> {
        match self {
            Ctx::Table(t) => find(t, key),
            Ctx::Match if key == "encap" => Some(D::Fields),
            Ctx::Match => find(FIELDS, key),
            Ctx::Actions => find(ACTIONS, key),
        }
    }
}

/// `decode_free_output`: `1` is port 1, `"name"` port `name`.
fn free_output(key: &str) -> Kv<'_> {
    let port = match key.parse::<u128>() {
        Ok(p) => Value::Int(p),
        Err(_) => Value::Str(key.trim_matches('"')),
    };
    Kv::new("output", Value::Map(vec![Kv::new("port", port)]))
}

/// One key of a list, as `KVDecoders.decode` does it.
fn item(ctx: Ctx, k: RawKv<'_>) -> Result<Kv<'_>, ParseError> {
    // `key(a)->b` is no datapath syntax: the text is kept.
    if k.delim == Delim::ParenArrow {
        return Ok(Kv::new(k.key, Value::Str(k.value)));
    }
    match ctx.lookup(k.key) {
        Some(d) => Ok(Kv::new(k.key, decode(d, k.value)?)),
        None if !k.value.is_empty() => Ok(Kv::new(k.key, default_value(k.value))),
        None if matches!(ctx, Ctx::Actions) => Ok(free_output(k.key)),
        None => Ok(Kv::new(k.key, Value::Flag)),
    }
}

fn list<'a>(ctx: Ctx, v: &'a str, section: &'static str) -> Result<Vec<Kv<'a>>, ParseError> {
    let mut out = Vec::new();
    for_each_kv(v, section, |k| {
        out.push(item(ctx, k)?);
        Ok(())
    })?;
    Ok(out)
}

fn decode(d: D, v: &str) -> Result<Value<'_>, ParseError> {
    // Nested decoders make `true` of an empty value; the scalar ones raise in Python, and a
    // key alone is kept as a flag here.
    if v.is_empty() {
        return Ok(match d {
            D::Geneve(_) => Value::Array(Vec::new()),
            _ => Value::Flag,
        });
    }
    Ok(match d {
        D::Default => default_value(v),
        D::Int => match py_int(v) {
            Some(i) => Value::Int(i),
            None => Value::Str(v),
        },
        D::Flag => Value::Flag,
        D::Mask(bits) => mask(v, bits),
        D::Ip => ip_value(v),
        D::Eth => eth_value(v),
        D::Nat => decode_nat(v),
        D::Percent => match v.trim_matches('%').trim().parse::<f64>() {
            Ok(f) if f.is_finite() => Value::Float(f),
            _ => Value::Str(v),
        },
        D::Map(t) => Value::Map(list(Ctx::Table(t), v, "match")?),
        D::Fields => Value::Map(list(Ctx::Table(FIELDS), v, "match")?),
        D::Actions => Value::List(list(Ctx::Actions, v, "actions")?),
        D::Geneve(masked) => geneve(v, masked)?,
        D::Gre => gre(v)?,
    })
}

/// `IntMask`: the value and mask must fit the width, else the text is kept.
fn mask(v: &str, bits: u32) -> Value<'_> {
    match mask_value(v, bits) {
        Value::Masked { value, mask, bits } => {
            let fits = |x: u128| bits >= 128 || x >> bits == 0;
            if fits(value) && fits(mask) {
                Value::Masked { value, mask, bits }
            } else {
                Value::Str(v)
            }
        }
        Value::Int(_) => Value::Str(v),
        other => other,
    }
}

/// `{class=0xffff,type=0x80,len=4,0xa/0xf}{…}`: one object per option; the value without a key
/// is `data`.
fn geneve(v: &str, masked: bool) -> Result<Value<'_>, ParseError> {
    let mut out = Vec::new();
    let mut rest = v;
    // Like `re.findall(r"{.*?}")`: from each `{` to the next `}`.
    while let Some(open) = rest.find('{') {
        let Some(len) = rest[open..].find('}') else {
            break;
        };
        let inner = rest[open..open + len + 1].trim_matches(['{', '}']);
        rest = &rest[open + len + 1..];
        let (class, small) = if masked {
            (D::Mask(16), D::Mask(8))
        } else {
            (D::Int, D::Int)
        };
        let mut opt = Vec::new();
        for_each_kv(inner, "match", |k| {
            let d = match k.key {
                "class" => Some(class),
                "type" | "len" => Some(small),
                _ => None,
            };
            opt.push(match (d, k.delim) {
                (Some(d), _) => Kv::new(k.key, decode(d, k.value)?),
                (None, Delim::Free) if masked => Kv::new("data", mask(k.key, 128)),
                (None, Delim::Free) => Kv::new("data", decode(D::Int, k.key)?),
                (None, _) => Kv::new(k.key, default_value(k.value)),
            });
            Ok(())
        })?;
        out.push(Value::Map(opt));
    }
    Ok(Value::Array(out))
}

/// `gre((flags=0x2000,proto=0x6558),key=0x1e241)`: the parentheses do not nest anything.
fn gre(v: &str) -> Result<Value<'_>, ParseError> {
    let mut out = Vec::new();
    // Without its parentheses the text is split where they were.
    for part in v.split(['(', ')']) {
        for_each_kv(part, "actions", |k| {
            out.push(item(Ctx::Table(GRE), k)?);
            Ok(())
        })?;
    }
    Ok(Value::Map(out))
}

/// `[ufid:…, ]match, packets:N, bytes:N, used:T[, flags:F][, dp:…] actions:…[ dp-extra-info:…]`
pub(super) fn parse<'a>(line: &'a str, at: usize, flow: &mut Flow<'a>) -> Result<(), ParseError> {
    let mut head = line[..at].trim_start();
    let info = &mut flow.info;
    if let Some(rest) = head.strip_prefix("ufid:") {
        let end = rest
            .find([',', ' ', '\t', '\n', '\r'])
            .unwrap_or(rest.len());
        info.push(Kv::new("ufid", default_value(&rest[..end])));
        head = rest[end..].trim_start_matches([',', ' ']);
    }
    // The match ends at the first space that is not inside parentheses.
    let b = head.as_bytes();
    let mut depth = 0i32;
    let mut split = b.len();
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b' ' if depth == 0 => {
                split = i;
                break;
            }
            _ => {}
        }
    }
    let match_text = &head[..split];
    let info_text = head[split..].trim();
    let mut actions_text = line[at + "actions:".len()..].trim_end();
    let mut extra = None;
    if let Some(p) = actions_text.find("dp-extra-info").filter(|&p| p > 0) {
        let e = &actions_text[p + "dp-extra-info".len()..];
        extra = Some(e.strip_prefix(':').unwrap_or(e).trim());
        actions_text = actions_text[..p].trim_end();
    }
    for_each_kv(info_text, "info", |k| {
        let v = match (k.key, k.delim) {
            (_, Delim::Free) => Value::Flag,
            ("used", _) => time_value(k.value),
            _ => item(Ctx::Table(INFO), k)?.value,
        };
        info.push(Kv::new(k.key, v));
        Ok(())
    })?;
    if let Some(e) = extra {
        // `miniflow_bits(4,1)`, decoded like the Python `decode_default`.
        let mut items = Vec::new();
        for_each_kv(e, "info", |k| {
            items.push(match k.delim {
                Delim::Free => Kv::new(k.key, Value::Flag),
                _ => Kv::new(k.key, default_value(k.value)),
            });
            Ok(())
        })?;
        info.push(Kv::new(DP_EXTRA_INFO, Value::Map(items)));
    }
    flow.kind = FlowKind::Datapath;
    flow.info_text = info_text;
    flow.match_text = match_text.trim_end_matches(',');
    flow.actions_text = actions_text;
    let matches = &mut flow.matches;
    for_each_kv(match_text, "match", |k| {
        matches.push(item(Ctx::Match, k)?);
        Ok(())
    })?;
    let actions = &mut flow.actions;
    for_each_kv(actions_text, "actions", |k| {
        actions.push(item(Ctx::Actions, k)?);
        Ok(())
    })
}

/// The info key that holds `dp-extra-info:…`, a section of its own in the Python JSON.
pub const DP_EXTRA_INFO: &str = "dp_extra_info";

#[cfg(test)]
mod tests {
    use super::super::{MAX_NESTING, parse_line};
    use super::*;

    const CORPUS: &str = include_str!("../../../tests/fixtures/flows/dp-odp.txt");

    #[test]
    fn nested_action_lists_are_bounded() {
        let line = |n: usize| {
            format!(
                "recirc_id(0),in_port(1), packets:0, bytes:0, used:never, actions:{}recirc(0x1){}",
                "clone(check_pkt_len(size=1,gt(".repeat(n),
                ")))".repeat(n)
            )
        };
        // Each level is three parentheses deep (`clone(`, `check_pkt_len(`, `gt(`), `recirc(` one.
        let ok = line((MAX_NESTING - 1) / 3);
        assert!(parse_line(&ok, 1).is_ok(), "{ok}");
        for n in [MAX_NESTING, 3000] {
            let text = line(n);
            let r = parse_line(&text, 1);
            assert!(matches!(r, Err(ParseError::TooDeep { .. })), "{n}: {r:?}");
        }
        // Geneve options are braces, not nesting: 2000 of them are one level.
        let wide = format!(
            "tunnel(geneve({})), packets:0, bytes:0, used:never, actions:tnl_push(header(gre((flags=0x1,proto=0x6558),key=1)))",
            "{class=1,type=2,len=4,0x1/0x1}".repeat(2000)
        );
        let f = parse_line(&wide, 1).map_err(|e| e.to_string());
        let Ok(f) = f else { panic!("{f:?}") };
        let Value::Map(t) = &f.matches[0].value else {
            panic!("{:?}", f.matches[0])
        };
        assert!(matches!(&t[0].value, Value::Array(o) if o.len() == 2000));
    }

    /// Every prefix and every one-byte change of the corpus lines: a flow or an error, no panic.
    #[test]
    fn cut_and_mangled_corpus_lines_do_not_panic() {
        let mut n = 0;
        for l in CORPUS.lines().filter(|l| !l.starts_with('#')) {
            for (i, _) in l.char_indices().step_by(3) {
                let _ = parse_line(&l[..i], 1);
                for c in ['(', ')', ',', '=', ':', '{', '}', '/', ' '] {
                    let s = format!("{}{c}{}", &l[..i], &l[i..]);
                    let _ = parse_line(&s, 1);
                    n += 1;
                }
            }
        }
        assert!(n > 10_000, "{n}");
    }

    #[test]
    fn values_have_odpflow_shapes() {
        let f = match parse_line(
            "ufid:7, tunnel(tun_id=0x7f10354/0xff,geneve({class=0xffff,type=0x80,len=4,0xa/0xf}),flags(csum|key)),skb_mark(0x123/0xfff),ct_state(+trk), packets:1, bytes:2, used:0.5s, actions:ct(commit,zone=5,nat(src=10.0.0.1-10.0.0.9:100-200)),tnl_push(tnl_port(4),header(size=42,type=3,gre((flags=0x2000,proto=0x6558),key=0x1e241)),out_port(1)),\"vhu0\"",
            1,
        ) {
            Ok(f) => f,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(f.info[0], Kv::new("ufid", Value::Int(7)));
        let Value::Map(tunnel) = &f.matches[0].value else {
            panic!("{:?}", f.matches[0])
        };
        let m = |value, mask, bits| Value::Masked { value, mask, bits };
        assert_eq!(tunnel[0].value, m(0x7f10354, 0xff, 64));
        assert_eq!(
            tunnel[1].value,
            Value::Array(vec![Value::Map(vec![
                Kv::new("class", m(0xffff, 0xffff, 16)),
                Kv::new("type", m(0x80, 0xff, 8)),
                Kv::new("len", m(4, 0xff, 8)),
                Kv::new("data", m(0xa, 0xf, 128)),
            ])])
        );
        assert_eq!(tunnel[2].value, Value::Str("csum|key"));
        assert_eq!(f.matches[1].value, m(0x123, 0xfff, 32));
        assert_eq!(f.matches[2].value, Value::Str("+trk"));
        let Value::Map(ct) = &f.actions[0].value else {
            panic!("{:?}", f.actions[0])
        };
        assert_eq!(ct[0], Kv::new("commit", Value::Flag));
        assert_eq!(ct[1], Kv::new("zone", Value::Int(5)));
        let Value::Map(nat) = &ct[2].value else {
            panic!("{:?}", ct[2])
        };
        assert_eq!(nat[0], Kv::new("type", Value::Str("src")));
        let Value::Map(push) = &f.actions[1].value else {
            panic!("{:?}", f.actions[1])
        };
        let Value::Map(header) = &push[1].value else {
            panic!("{:?}", push[1])
        };
        assert_eq!(
            header[2],
            Kv::new(
                "gre",
                Value::Map(vec![
                    Kv::new("flags", Value::Int(0x2000)),
                    Kv::new("proto", Value::Int(0x6558)),
                    Kv::new("key", Value::Int(0x1e241)),
                ])
            )
        );
        assert_eq!(
            f.actions[2],
            Kv::new(
                "output",
                Value::Map(vec![Kv::new("port", Value::Str("vhu0"))])
            )
        );
    }
}
