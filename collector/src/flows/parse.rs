//! Flow text, as `ovs-ofctl dump-flows` and `ovs-dpctl dump-flows` (or `ovs-appctl
//! dpctl/dump-flows`) print it, parsed into typed key-values. Pure: text in, values out.
//!
//! The model is the one of OVS's Python library (`ovs.flow.ofp.OFPFlow`, `ovs.flow.odp.ODPFlow`),
//! so the JSON view has the same shape: a flow has an `info` section (counters, cookie, table),
//! a `match` section (fields with optional masks) and a list of `actions`. A section is a
//! sequence of `key`, `key=value`, `key:value` or `key(value)` items separated by commas (and
//! spaces in `info`); a value in parentheses may nest. Each key has a decoder, chosen exactly like
//! the Python one's tables (`ofp_fields.py`, `ofp.py`, `ofp_act.py`): integers, value/mask
//! integers of a known width, IP networks, Ethernet addresses, field references
//! (`NXM_NX_REG0[0..15]`), nested key-values (`ct(...)`) and nested lists (`learn(...)`).
//!
//! Unlike the Python parser, an unknown key or a value its decoder refuses is kept (as an
//! integer if it reads as one, else as text) instead of failing the flow; only structural
//! problems (no `actions`, unbalanced parentheses) make a line malformed. Nothing is copied: the
//! values borrow from the input text.

use std::borrow::Cow;
use std::net::IpAddr;

mod dp;
pub use dp::DP_EXTRA_INFO;

/// Why a line is not a flow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("no `actions=` (OpenFlow) or `actions:` (datapath) section")]
    NoActions,
    #[error("unbalanced parentheses in {section} at column {column}")]
    Unbalanced {
        section: &'static str,
        column: usize,
    },
    #[error("empty key in {section} at column {column}")]
    EmptyKey {
        section: &'static str,
        column: usize,
    },
    #[error("parentheses nested more than {MAX_NESTING} deep in {section} at column {column}")]
    TooDeep {
        section: &'static str,
        column: usize,
    },
}

/// Deepest nesting of `(` in a flow's match or actions: each level is one more recursion of
/// the decoder (`flow_text_depth` in docs/limits.md). OVS itself writes at most a handful
/// (`ct(nat(src=…))`, `clone(ct(…))`).
pub const MAX_NESTING: usize = 32;

/// A malformed line: its 1-based number, the reason and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub error: ParseError,
    pub text: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text: String = self.text.chars().take(160).collect();
        if text.len() < self.text.len() {
            text.push('…');
        }
        write!(f, "line {}: {}: {}", self.line, self.error, text)
    }
}

/// OpenFlow (`ovs-ofctl`) or datapath (`ovs-dpctl`) flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowKind {
    OpenFlow,
    Datapath,
}

/// A decoded value, shaped like the Python library's.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// A key given without a value (`drop`, `ip`), or a flag inside an action (`commit`).
    Flag,
    Int(u128),
    /// Times (`duration=1.5s`, `idle_age=3`), in seconds.
    Float(f64),
    /// Text as given (a port name, `+trk-new`, or anything no decoder took).
    Str(&'a str),
    /// An integer field with a width: the mask is all ones when none was given.
    Masked {
        value: u128,
        mask: u128,
        bits: u16,
    },
    Ip(IpMask<'a>),
    Eth(EthMask),
    /// `NXM_NX_REG0[0..15]`, `reg0`, `NXM_OF_ETH_SRC[]`.
    Field(FieldRef<'a>),
    /// Nested key-values written as an object (`ct(commit,zone=5)`).
    Map(Vec<Kv<'a>>),
    /// Nested key-values written as a list of one-key objects (`learn(...)`, `exec(...)`).
    List(Vec<Kv<'a>>),
    /// A list of plain values (`dec_ttl(1,2)`, bundle members).
    Array(Vec<Value<'a>>),
}

/// One key and its value. The key borrows from the text, or is a fixed name (`output` for a
/// bare port, `port`, `addrs`…).
#[derive(Debug, Clone, PartialEq)]
pub struct Kv<'a> {
    pub key: &'a str,
    pub value: Value<'a>,
}

impl<'a> Kv<'a> {
    fn new(key: &'a str, value: Value<'a>) -> Self {
        Kv { key, value }
    }
}

/// An address with a prefix length or an arbitrary mask.
#[derive(Debug, Clone, PartialEq)]
pub struct IpMask<'a> {
    /// The address as written.
    pub text: &'a str,
    pub addr: IpAddr,
    pub mask: IpAddr,
    /// The prefix length when the mask is contiguous.
    pub prefix: Option<u8>,
}

impl IpMask<'_> {
    /// Whether `other` (an address or a network) lies inside this network.
    pub fn contains(&self, other: &IpMask<'_>) -> bool {
        let (Some(a), Some(m), Some(o), Some(om)) = (
            ip_bits(self.addr),
            ip_bits(self.mask),
            ip_bits(other.addr),
            ip_bits(other.mask),
        ) else {
            return false;
        };
        if self.addr.is_ipv4() != other.addr.is_ipv4() {
            return false;
        }
        // Every address of `other` must match: other's mask must cover ours.
        (om & m) == m && (o & m) == (a & m)
    }

    /// Same address and mask (what `=` compares).
    pub fn same(&self, other: &IpMask<'_>) -> bool {
        self.addr == other.addr && self.mask == other.mask
    }
}

fn ip_bits(ip: IpAddr) -> Option<u128> {
    Some(match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    })
}

impl std::fmt::Display for IpMask<'_> {
    /// As netaddr writes an `IPNetwork`: `10.0.0.1/32`, `2001:db8::/32`; a mask that is not a
    /// prefix stays `ip/mask`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.prefix {
            Some(p) => write!(f, "{}/{}", self.text, p),
            None => write!(f, "{}/{}", self.text, self.mask),
        }
    }
}

/// An Ethernet address with an optional mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthMask {
    pub addr: [u8; 6],
    pub mask: Option<[u8; 6]>,
}

impl EthMask {
    pub fn contains(&self, other: &EthMask) -> bool {
        match self.mask {
            None => self.addr == other.addr && other.mask.is_none(),
            Some(m) => (0..6).all(|i| other.addr[i] & m[i] == self.addr[i] & m[i]),
        }
    }
}

impl std::fmt::Display for EthMask {
    /// As netaddr's `mac_unix` writes it (`2:0:0:0:0:a`), which is what `ovs.flow`'s JSON holds.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let one = |f: &mut std::fmt::Formatter<'_>, a: &[u8; 6]| {
            write!(
                f,
                "{:x}:{:x}:{:x}:{:x}:{:x}:{:x}",
                a[0], a[1], a[2], a[3], a[4], a[5]
            )
        };
        one(f, &self.addr)?;
        if let Some(m) = &self.mask {
            f.write_str("/")?;
            one(f, m)?;
        }
        Ok(())
    }
}

/// A field reference with an optional bit range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRef<'a> {
    pub field: &'a str,
    pub start: Option<u32>,
    pub end: Option<u32>,
}

/// One parsed flow; every slice borrows from the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow<'a> {
    pub kind: FlowKind,
    /// 1-based line number in the input.
    pub line: usize,
    /// The line as given (without the line break).
    pub orig: &'a str,
    pub info: Vec<Kv<'a>>,
    pub matches: Vec<Kv<'a>>,
    pub actions: Vec<Kv<'a>>,
    /// The sections' text, as given.
    pub info_text: &'a str,
    pub match_text: &'a str,
    pub actions_text: &'a str,
}

/// Default OpenFlow priority (not printed by ovs-ofctl).
pub const DEFAULT_PRIORITY: u128 = 32768;

impl<'a> Flow<'a> {
    fn int_in(list: &[Kv<'_>], key: &str) -> Option<u128> {
        list.iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| match kv.value {
                Value::Int(v) => Some(v),
                Value::Masked { value, .. } => Some(value),
                _ => None,
            })
    }

    /// The OpenFlow table (`table=` in info, or in the match of `add-flow` syntax); 0 if absent.
    pub fn table(&self) -> u128 {
        Self::int_in(&self.info, "table")
            .or_else(|| Self::int_in(&self.matches, "table"))
            .unwrap_or(0)
    }

    pub fn priority(&self) -> u128 {
        Self::int_in(&self.matches, "priority")
            .or_else(|| Self::int_in(&self.info, "priority"))
            .unwrap_or(DEFAULT_PRIORITY)
    }

    pub fn cookie(&self) -> u128 {
        Self::int_in(&self.info, "cookie")
            .or_else(|| Self::int_in(&self.matches, "cookie"))
            .unwrap_or(0)
    }

    pub fn packets(&self) -> u128 {
        Self::int_in(&self.info, "n_packets")
            .or_else(|| Self::int_in(&self.info, "packets"))
            .unwrap_or(0)
    }

    pub fn bytes(&self) -> u128 {
        Self::int_in(&self.info, "n_bytes")
            .or_else(|| Self::int_in(&self.info, "bytes"))
            .unwrap_or(0)
    }

    /// Datapath flows: the `recirc_id(N)` match, 0 if absent.
    pub fn recirc_id(&self) -> u128 {
        Self::int_in(&self.matches, "recirc_id").unwrap_or(0)
    }

    /// The match without the keys that are not match fields (`priority`, `table`, `cookie` of
    /// add-flow syntax): what identifies a rule in its table, for diffs and grouping.
    pub fn rule_match(&self) -> impl Iterator<Item = &Kv<'a>> {
        self.matches
            .iter()
            .filter(|kv| !matches!(kv.key, "priority" | "table" | "cookie"))
    }
}

/// Everything parsed from a text: the flows and the malformed lines.
#[derive(Debug, Default)]
pub struct Parsed<'a> {
    pub flows: Vec<Flow<'a>>,
    pub errors: Vec<LineError>,
}

/// Whether a line carries no flow: blank, a comment, or a dump's header
/// (`NXST_FLOW reply (xid=0x4):`, `OFPST_FLOW reply (OF1.3) (xid=0x2):`, and the userspace
/// datapath's `flow-dump from the main thread:` / `flow-dump from pmd on cpu core: 3`).
pub fn is_noise(line: &str) -> bool {
    let t = line.trim_start();
    t.is_empty()
        || t.starts_with('#')
        || t.starts_with("flow-dump from ")
        || ((t.starts_with("NXST_") || t.starts_with("OFPST_")) && t.contains("reply"))
}

/// Parses every line of `text`; malformed lines are reported and skipped.
pub fn parse_text(text: &str) -> Parsed<'_> {
    let mut out = Parsed {
        flows: Vec::with_capacity(text.len() / 160 + 1),
        errors: Vec::new(),
    };
    for (i, line) in text.lines().enumerate() {
        if is_noise(line) {
            continue;
        }
        match parse_line(line, i + 1) {
            Ok(f) => out.flows.push(f),
            Err(error) => out.errors.push(LineError {
                line: i + 1,
                error,
                text: line.to_owned(),
            }),
        }
    }
    out
}

/// Calls `f` with each flow of `text`, parsed into one reused buffer; malformed lines go to
/// `errors`. Memory stays flat whatever the size of the dump.
pub fn for_each_flow<'a>(
    text: &'a str,
    errors: &mut Vec<LineError>,
    f: impl FnMut(&Flow<'a>),
) -> usize {
    for_each_flow_from(text, 0, errors, f)
}

/// [`for_each_flow`] on a part of a text whose first line is line `offset + 1`; returns the
/// number of lines in the part.
pub fn for_each_flow_from<'a>(
    text: &'a str,
    offset: usize,
    errors: &mut Vec<LineError>,
    mut f: impl FnMut(&Flow<'a>),
) -> usize {
    let mut flow = Flow::empty();
    let mut count = 0;
    for (i, line) in text.lines().enumerate() {
        count = i + 1;
        let i = offset + i;
        if is_noise(line) {
            continue;
        }
        match parse_line_into(line, i + 1, &mut flow) {
            Ok(()) => f(&flow),
            Err(error) => errors.push(LineError {
                line: i + 1,
                error,
                text: line.to_owned(),
            }),
        }
    }
    count
}

/// Splits `text` into about `n` parts that end at line ends.
pub fn split_lines(text: &str, n: usize) -> Vec<&str> {
    let n = n.max(1);
    let mut out = Vec::with_capacity(n);
    let mut rest = text;
    for k in (1..n).rev() {
        let want = rest.len() / (k + 1);
        if want == 0 {
            break;
        }
        let Some(nl) = rest.as_bytes()[want..].iter().position(|&c| c == b'\n') else {
            break;
        };
        let (head, tail) = rest.split_at(want + nl + 1);
        out.push(head);
        rest = tail;
    }
    out.push(rest);
    out
}

/// Parses a text in parallel: blocks of about `block` bytes, each split across `threads`
/// threads at line ends. `work` runs on each part with the number of the line before its first
/// (for [`for_each_flow_from`]); `emit` gets the results in text order. Memory is bounded by
/// what the parts of one block make.
pub fn par_blocks<'a, R: Send>(
    text: &'a str,
    threads: usize,
    block: usize,
    work: impl Fn(&'a str, usize) -> R + Sync,
    mut emit: impl FnMut(R),
) {
    let mut offset = 0;
    for round in split_lines(text, text.len().div_ceil(block.max(1)).max(1)) {
        let parts = split_lines(round, threads);
        let mut starts = Vec::with_capacity(parts.len());
        for p in &parts {
            starts.push(offset);
            offset += count_lines(p);
        }
        if parts.len() == 1 {
            emit(work(parts[0], starts[0]));
            continue;
        }
        let results: Vec<R> = std::thread::scope(|sc| {
            let work = &work;
            let handles: Vec<_> = parts
                .iter()
                .zip(&starts)
                .map(|(p, &start)| sc.spawn(move || work(p, start)))
                .collect();
            handles
                .into_iter()
                .map(|h| match h.join() {
                    Ok(r) => r,
                    Err(panic) => std::panic::resume_unwind(panic),
                })
                .collect()
        });
        results.into_iter().for_each(&mut emit);
    }
}

/// Lines as `str::lines` counts them.
fn count_lines(s: &str) -> usize {
    let n = s.as_bytes().iter().filter(|&&c| c == b'\n').count();
    if s.ends_with('\n') || s.is_empty() {
        n
    } else {
        n + 1
    }
}

/// Parses one line, OpenFlow or datapath.
pub fn parse_line(line: &str, number: usize) -> Result<Flow<'_>, ParseError> {
    let mut f = Flow::empty();
    parse_line_into(line, number, &mut f)?;
    Ok(f)
}

/// Parses one line into `flow`, reusing its buffers (a loop over a dump allocates only for
/// nested values). On error `flow` holds partial data.
pub fn parse_line_into<'a>(
    line: &'a str,
    number: usize,
    flow: &mut Flow<'a>,
) -> Result<(), ParseError> {
    flow.line = number;
    flow.orig = line;
    flow.info.clear();
    flow.matches.clear();
    flow.actions.clear();
    match find_actions(line) {
        Some(at) => parse_ofp(line, at, flow),
        None => match line.find("actions:") {
            Some(at) => dp::parse(line, at, flow),
            None => Err(ParseError::NoActions),
        },
    }
}

impl Flow<'_> {
    /// A flow with nothing in it, to parse into.
    pub fn empty() -> Self {
        Flow {
            kind: FlowKind::OpenFlow,
            line: 0,
            orig: "",
            info: Vec::with_capacity(8),
            matches: Vec::with_capacity(8),
            actions: Vec::with_capacity(4),
            info_text: "",
            match_text: "",
            actions_text: "",
        }
    }
}

/// Where `actions=` starts (at the line's start, or after a space or a comma).
fn find_actions(line: &str) -> Option<usize> {
    const KEY: &[u8] = b"actions";
    let b = line.as_bytes();
    let mut i = KEY.len();
    while i < b.len() {
        if b[i] == b'=' && &b[i - KEY.len()..i] == KEY {
            let at = i - KEY.len();
            if at == 0 || matches!(b[at - 1], b' ' | b',') {
                return Some(at);
            }
        }
        i += 1;
    }
    None
}

fn parse_ofp<'a>(line: &'a str, at: usize, flow: &mut Flow<'a>) -> Result<(), ParseError> {
    let head = line[..at].trim_end_matches(' ');
    let actions_start = at + "actions=".len();
    let actions_text = line[actions_start..].trim_end();
    // `[info] [match] actions=…`: the match is the last space-separated word before actions. A
    // flow with neither match nor priority ends its info with a comma ("n_bytes=0, actions=").
    let head_trim = head.trim_start();
    let (info_text, match_text) = match head_trim.rsplit_once(' ') {
        Some((i, m)) if !m.ends_with(',') => (i, m),
        Some(_) => (head_trim, ""),
        None if head_trim.ends_with(',') && head_trim.contains("n_packets=") => (head_trim, ""),
        None => ("", head_trim),
    };
    flow.kind = FlowKind::OpenFlow;
    flow.info_text = info_text;
    flow.match_text = match_text;
    flow.actions_text = actions_text;
    let info = &mut flow.info;
    for_each_kv(info_text, "info", |k| {
        info.push(decode_info(k));
        Ok(())
    })?;
    let matches = &mut flow.matches;
    for_each_kv(match_text, "match", |k| {
        matches.push(decode_match(k));
        Ok(())
    })?;
    let actions = &mut flow.actions;
    for_each_kv(actions_text, "actions", |k| {
        actions.push(decode_action(k, ActionSet::Top)?);
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// The key-value scanner (the Python `KVParser`).

/// How a key met its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delim {
    /// A key alone.
    Free,
    /// `key=value`
    Eq,
    /// `key:value`
    Colon,
    /// `key(value)`
    Paren,
    /// `key(a)->b`: the value is `(a)->b`.
    ParenArrow,
}

#[derive(Debug, Clone, Copy)]
struct RawKv<'a> {
    key: &'a str,
    delim: Delim,
    value: &'a str,
}

/// Calls `f` for each item of a comma (or space) separated key-value list.
fn for_each_kv<'a>(
    s: &'a str,
    section: &'static str,
    mut f: impl FnMut(RawKv<'a>) -> Result<(), ParseError>,
) -> Result<(), ParseError> {
    let b = s.as_bytes();
    let n = b.len();
    let mut pos = 0;
    loop {
        while pos < n && matches!(b[pos], b' ' | b',' | b'\t' | b'\r') {
            pos += 1;
        }
        if pos >= n || b[pos] == b'\n' {
            return Ok(());
        }
        let start = pos;
        let mut i = start;
        while i < n && !matches!(b[i], b'(' | b'=' | b':' | b',' | b'\n' | b'\r' | b'\t') {
            i += 1;
        }
        let key = &s[start..i];
        if i >= n || matches!(b[i], b',' | b'\n' | b'\r' | b'\t') {
            f(RawKv {
                key: key.trim_end(),
                delim: Delim::Free,
                value: "",
            })?;
            pos = i;
            continue;
        }
        if key.is_empty() {
            return Err(ParseError::EmptyKey {
                section,
                column: start + 1,
            });
        }
        match b[i] {
            b'(' => {
                let mut level = 1usize;
                let mut j = i + 1;
                while j < n {
                    match b[j] {
                        b'(' => {
                            level += 1;
                            if level > MAX_NESTING {
                                crate::limits::exceeded("flow_text_depth");
                                return Err(ParseError::TooDeep {
                                    section,
                                    column: j + 1,
                                });
                            }
                        }
                        b')' => {
                            level -= 1;
                            if level == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                if level != 0 {
                    return Err(ParseError::Unbalanced {
                        section,
                        column: i + 1,
                    });
                }
                let inner = &s[i + 1..j];
                pos = j + 1;
                if s[pos..].starts_with("->") {
                    let end = s[pos..].find(',').map_or(n, |e| pos + e);
                    f(RawKv {
                        key,
                        delim: Delim::ParenArrow,
                        value: &s[i..end],
                    })?;
                    pos = end;
                } else {
                    f(RawKv {
                        key,
                        delim: Delim::Paren,
                        value: inner,
                    })?;
                }
            }
            d => {
                let vstart = i + 1;
                let mut j = vstart;
                while j < n && !matches!(b[j], b' ' | b',' | b'\n' | b'\r' | b'\t') {
                    j += 1;
                }
                f(RawKv {
                    key,
                    delim: if d == b'=' { Delim::Eq } else { Delim::Colon },
                    value: &s[vstart..j],
                })?;
                pos = j;
            }
        }
    }
}

/// Nested key-values as a list.
fn nested<'a>(
    s: &'a str,
    section: &'static str,
    mut dec: impl FnMut(RawKv<'a>) -> Result<Kv<'a>, ParseError>,
) -> Result<Vec<Kv<'a>>, ParseError> {
    let mut out = Vec::new();
    for_each_kv(s, section, |k| {
        out.push(dec(k)?);
        Ok(())
    })?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Scalar decoders.

/// Python's `int(s, 0)`: decimal (no leading zeros), `0x`, `0o`, `0b`.
pub fn py_int(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    // The common cases, digits only: no allocation, no second pass.
    if b.len() > 2 && b[0] == b'0' && (b[1] == b'x' || b[1] == b'X') {
        if b.len() - 2 <= 32 && b[2..].iter().all(u8::is_ascii_hexdigit) {
            let mut v: u128 = 0;
            for &c in &b[2..] {
                let d = match c {
                    b'0'..=b'9' => c - b'0',
                    b'a'..=b'f' => c - b'a' + 10,
                    _ => c - b'A' + 10,
                };
                v = (v << 4) | u128::from(d);
            }
            return Some(v);
        }
    } else if !b.is_empty() && b.len() <= 38 && b.iter().all(u8::is_ascii_digit) {
        if b.len() > 1 && b[0] == b'0' {
            return b.iter().all(|&c| c == b'0').then_some(0);
        }
        let mut v: u128 = 0;
        for &c in b {
            v = v * 10 + u128::from(c - b'0');
        }
        return Some(v);
    }
    py_int_slow(s)
}

/// Everything else `int(s, 0)` takes: spaces, a `+`, underscores, `0o`, `0b`, long numbers.
fn py_int_slow(s: &str) -> Option<u128> {
    let s = s.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    let digits_ok = |d: &str, radix: u32| {
        !d.is_empty()
            && !d.starts_with('_')
            && d.bytes().all(|c| c == b'_' || (c as char).is_digit(radix))
    };
    let parse = |d: &str, radix: u32| -> Option<u128> {
        if !digits_ok(d, radix) {
            return None;
        }
        if d.contains('_') {
            u128::from_str_radix(&d.replace('_', ""), radix).ok()
        } else {
            u128::from_str_radix(d, radix).ok()
        }
    };
    let b = s.as_bytes();
    if b.len() > 2 && b[0] == b'0' {
        match b[1] {
            b'x' | b'X' => return parse(&s[2..], 16),
            b'o' | b'O' => return parse(&s[2..], 8),
            b'b' | b'B' => return parse(&s[2..], 2),
            _ => {}
        }
    }
    if b.len() > 1 && b[0] == b'0' && !s.bytes().all(|c| c == b'0' || c == b'_') {
        return None;
    }
    parse(s, 10)
}

/// `decode_default`: an integer if it reads as one, else the text.
pub fn default_value(s: &str) -> Value<'_> {
    match py_int(s) {
        Some(v) => Value::Int(v),
        None => Value::Str(s),
    }
}

fn int_value(s: &str) -> Value<'_> {
    default_value(s)
}

/// `decode_time`: `1.5s` → 1.5; `never` stays text.
fn time_value(s: &str) -> Value<'_> {
    if s == "never" {
        return Value::Str(s);
    }
    match s.strip_suffix('s').unwrap_or(s).parse::<f64>() {
        Ok(v) if v.is_finite() => Value::Float(v),
        _ => Value::Str(s),
    }
}

fn mask_value(s: &str, bits: u32) -> Value<'_> {
    let full = if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    let (v, m) = match split_slash(s) {
        Some((v, m)) => (py_int(v), py_int(m)),
        None => (py_int(s), Some(full)),
    };
    match (v, m) {
        (Some(value), Some(mask)) if bits <= 128 => Value::Masked {
            value,
            mask,
            bits: bits as u16,
        },
        _ => default_value(s),
    }
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let b = s.as_bytes();
    let mut out = [0u8; 6];
    let mut i = 0;
    for (n, o) in out.iter_mut().enumerate() {
        if n > 0 {
            if !matches!(b.get(i), Some(b':' | b'-' | b'.')) {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut v: u8 = 0;
        while i < b.len() && i - start < 2 && b[i].is_ascii_hexdigit() {
            let d = match b[i] {
                c @ b'0'..=b'9' => c - b'0',
                c @ b'a'..=b'f' => c - b'a' + 10,
                c => c - b'A' + 10,
            };
            v = (v << 4) | d;
            i += 1;
        }
        if i == start {
            return None;
        }
        *o = v;
    }
    (i == b.len()).then_some(out)
}

/// `a/b` split at the first `/`, by bytes.
fn split_slash(s: &str) -> Option<(&str, &str)> {
    let i = s.bytes().position(|c| c == b'/')?;
    Some((&s[..i], &s[i + 1..]))
}

pub fn eth_value(s: &str) -> Value<'_> {
    let (a, m) = match split_slash(s) {
        Some((a, m)) => (parse_mac(a), Some(parse_mac(m))),
        None => (parse_mac(s), None),
    };
    match (a, m) {
        (Some(addr), None) => Value::Eth(EthMask { addr, mask: None }),
        (Some(addr), Some(Some(m))) => Value::Eth(EthMask {
            addr,
            mask: Some(m),
        }),
        _ => Value::Str(s),
    }
}

fn prefix_of(mask: u128, width: u32) -> Option<u8> {
    let ones = mask.leading_ones();
    let shifted = if width == 32 { mask << 96 } else { mask };
    let ones = if width == 32 {
        shifted.leading_ones()
    } else {
        ones
    };
    let rest = shifted.checked_shl(ones).unwrap_or(0);
    (rest == 0).then_some(ones.min(width) as u8)
}

/// An address, a network (`10.0.0.0/8`) or an address with any mask (`10.0.0.1/255.0.255.0`).
pub fn parse_ip_mask(s: &str) -> Option<IpMask<'_>> {
    let (text, m) = match split_slash(s) {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    let addr: IpAddr = text.parse().ok()?;
    let width = if addr.is_ipv4() { 32 } else { 128 };
    let make_mask = |p: u32| -> IpAddr {
        if addr.is_ipv4() {
            let v = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            IpAddr::V4(v.into())
        } else {
            let v = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            IpAddr::V6(v.into())
        }
    };
    let (mask, prefix) = match m {
        None => (make_mask(width), Some(width as u8)),
        Some(m) if !m.is_empty() && m.bytes().all(|c| c.is_ascii_digit()) => {
            let p: u32 = m.parse().ok()?;
            if p > width {
                return None;
            }
            (make_mask(p), Some(p as u8))
        }
        Some(m) => {
            let mask: IpAddr = m.parse().ok()?;
            if mask.is_ipv4() != addr.is_ipv4() {
                return None;
            }
            (mask, prefix_of(ip_bits(mask)?, width))
        }
    };
    Some(IpMask {
        text,
        addr,
        mask,
        prefix,
    })
}

pub fn ip_value(s: &str) -> Value<'_> {
    match parse_ip_mask(s) {
        Some(ip) => Value::Ip(ip),
        None => Value::Str(s),
    }
}

/// A field reference: `NAME`, `NAME[]`, `NAME[3]`, `NAME[0..15]`.
pub fn field_ref(s: &str) -> FieldRef<'_> {
    let s = s.trim_end_matches(['\n', '\r']);
    let (name, range) = match s.split_once('[') {
        Some((n, r)) => (n, Some(r.trim_end_matches(']'))),
        None => (s.trim_end_matches(']'), None),
    };
    let (start, end) = match range {
        None | Some("") => (None, None),
        Some(r) => match r.split_once("..") {
            Some((a, b)) => (a.parse().ok(), b.parse().ok()),
            None => {
                let v = r.parse().ok();
                (v, v)
            }
        },
    };
    FieldRef {
        field: name,
        start,
        end,
    }
}

/// Whether `name` is an OVS field (by its name or an NXM/OXM alias).
pub fn is_field_name(name: &str) -> bool {
    field_kind(name).is_some()
        || ["NXM_", "OXM_", "NXOXM_", "ONFOXM_", "ERICOXM_"]
            .iter()
            .any(|p| name.starts_with(p))
}

fn field_or_int(s: &str) -> Value<'_> {
    match py_int(s) {
        Some(v) => Value::Int(v),
        None => Value::Field(field_ref(s)),
    }
}

// ---------------------------------------------------------------------------------------------
// Field decoders (`ofp_fields.py`).

/// How a match field's value is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Int,
    Default,
    Mask(u32),
    Ip,
    Eth,
    /// A protocol shorthand (`ip`, `tcp6`…): a key without a value.
    Flag,
}

/// The decoder of a match field, by name.
pub fn field_kind(key: &str) -> Option<FieldKind> {
    use FieldKind::*;
    Some(match key {
        "priority" | "recirc_id" | "conj_id" | "tun_ttl" | "tun_tos" | "skb_priority"
        | "ct_zone" | "ct_nw_proto" | "eth_type" | "dl_type" | "dl_vlan" | "dl_vlan_pcp"
        | "vlan_pcp" | "mpls_label" | "mpls_tc" | "mpls_bos" | "mpls_ttl" | "nw_proto"
        | "ip_proto" | "nw_tos" | "ip_dscp" | "nw_ecn" | "ip_ecn" | "nw_ttl" | "arp_op"
        | "icmp_type" | "icmp_code" | "icmpv6_type" | "icmpv6_code" | "nd_reserved"
        | "nd_options_type" | "nsh_mdtype" | "nsh_np" | "nsh_spi" | "nsp" | "nsh_si" | "nsi"
        | "nsh_ttl" => Int,
        "packet_type" | "tun_flags" | "in_port" | "in_port_oxm" | "actset_output" | "ct_state"
        | "ip_frag" | "nw_frag" | "tcp_flags" => Default,
        "tun_gbp_flags" | "tun_gtpu_flags" | "tun_gtpu_msgtype" | "nsh_flags" => Mask(8),
        "tun_gbp_id" | "ct_tp_src" | "ct_tp_dst" | "vlan_tci" | "tcp_src" | "tp_src"
        | "tcp_dst" | "tp_dst" | "udp_src" | "udp_dst" | "sctp_src" | "sctp_dst" => Mask(16),
        "tun_erspan_idx" | "ipv6_label" => Mask(20),
        "tun_erspan_ver" => Mask(4),
        "tun_erspan_dir" => Mask(1),
        "tun_erspan_hwid" => Mask(6),
        "vlan_vid" => Mask(13),
        "dp_hash" | "pkt_mark" | "ct_mark" | "nsh_c1" | "nshc1" | "nsh_c2" | "nshc2" | "nsh_c3"
        | "nshc3" | "nsh_c4" | "nshc4" => Mask(32),
        "tun_id" | "tunnel_id" | "metadata" => Mask(64),
        "ct_label" => Mask(128),
        "tun_src" | "tun_dst" | "tun_ipv6_src" | "tun_ipv6_dst" | "ct_nw_src" | "ct_nw_dst"
        | "ct_ipv6_src" | "ct_ipv6_dst" | "ip_src" | "nw_src" | "ip_dst" | "nw_dst"
        | "ipv6_src" | "ipv6_dst" | "arp_spa" | "arp_tpa" | "nd_target" => Ip,
        "eth_src" | "dl_src" | "eth_dst" | "dl_dst" | "arp_sha" | "arp_tha" | "nd_sll"
        | "nd_tll" => Eth,
        "eth" | "ip" | "ipv6" | "icmp" | "icmp6" | "tcp" | "tcp6" | "udp" | "udp6" | "sctp"
        | "arp" | "rarp" | "mpls" | "mplsm" => Flag,
        _ => {
            if let Some(n) = key.strip_prefix("xxreg") {
                return n.parse::<u8>().ok().filter(|&n| n < 8).map(|_| Mask(128));
            }
            if let Some(n) = key.strip_prefix("xreg") {
                return n.parse::<u8>().ok().filter(|&n| n < 16).map(|_| Mask(64));
            }
            if let Some(n) = key.strip_prefix("reg") {
                return n.parse::<u8>().ok().filter(|&n| n < 32).map(|_| Mask(32));
            }
            if let Some(n) = key.strip_prefix("tun_metadata") {
                return n.parse::<u8>().ok().filter(|&n| n < 64).map(|_| Mask(992));
            }
            return None;
        }
    })
}

/// Decodes a field's value by its kind (unknown fields: integer or text).
pub fn field_value<'a>(key: &str, value: &'a str) -> Value<'a> {
    match field_kind(key) {
        Some(FieldKind::Int) => int_value(value),
        Some(FieldKind::Default) | None => default_value(value),
        Some(FieldKind::Mask(bits)) => mask_value(value, bits),
        Some(FieldKind::Ip) => ip_value(value),
        Some(FieldKind::Eth) => eth_value(value),
        Some(FieldKind::Flag) => {
            if value.is_empty() {
                Value::Flag
            } else {
                default_value(value)
            }
        }
    }
}

fn decode_match(k: RawKv<'_>) -> Kv<'_> {
    match k.delim {
        Delim::Free => Kv::new(k.key, Value::Flag),
        _ => Kv::new(k.key, field_value(k.key, k.value)),
    }
}

fn decode_info(k: RawKv<'_>) -> Kv<'_> {
    let v = match (k.key, k.delim) {
        (_, Delim::Free) => Value::Flag,
        ("table" | "n_packets" | "n_bytes" | "cookie" | "importance", _) => int_value(k.value),
        ("duration" | "idle_timeout" | "hard_timeout" | "hard_age" | "idle_age", _) => {
            time_value(k.value)
        }
        _ => default_value(k.value),
    };
    Kv::new(k.key, v)
}

// ---------------------------------------------------------------------------------------------
// Action decoders (`ofp.py`, `ofp_act.py`).

/// Which action decoders apply: the top level (and `clone`, `write_actions`, `learn`), or the
/// restricted set inside `ct(exec(...))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ActionSet {
    Top,
    Exec,
    Learn,
}

fn flag_action(key: &str) -> bool {
    matches!(
        key,
        "drop"
            | "pop_vlan"
            | "strip_vlan"
            | "decap"
            | "dec_mpls_ttl"
            | "dec_nsh_ttl"
            | "pop_queue"
            | "ct_clear"
            | "exit"
            | "clear_actions"
            | "dec_ttl"
    )
}

fn decode_action(k: RawKv<'_>, set: ActionSet) -> Result<Kv<'_>, ParseError> {
    let lower: Cow<'_, str> = if k.key.bytes().any(|c| c.is_ascii_uppercase()) {
        Cow::Owned(k.key.to_ascii_lowercase())
    } else {
        Cow::Borrowed(k.key)
    };
    let name = lower.as_ref();
    if set == ActionSet::Learn
        && let Some(kv) = decode_learn_item(k, name)?
    {
        return Ok(kv);
    }
    if k.delim == Delim::Free {
        if flag_action(name) {
            return Ok(Kv::new(k.key, Value::Flag));
        }
        if name == "controller" && set != ActionSet::Exec {
            return Ok(Kv::new(
                "output",
                Value::Map(vec![Kv::new("port", Value::Str("CONTROLLER"))]),
            ));
        }
        if matches!(
            name,
            "ct" | "learn" | "clone" | "write_actions" | "sample" | "fin_timeout"
        ) {
            return Ok(Kv::new(k.key, Value::Flag));
        }
        if set == ActionSet::Exec {
            return Ok(Kv::new(k.key, Value::Flag));
        }
        // A bare port: `1`, `LOCAL`, `NORMAL`.
        let port = k.key.trim_matches('"');
        let port = match k.key.parse::<u128>() {
            Ok(v) => Value::Int(v),
            Err(_) => Value::Str(port),
        };
        return Ok(Kv::new("output", Value::Map(vec![Kv::new("port", port)])));
    }
    let v = k.value;
    let value = match name {
        "output" => decode_output(v),
        "controller" => decode_controller(v)?,
        "enqueue" => list_value(v, &[',', ':'], &[("port", L::Default), ("queue", L::Int)]),
        "bundle" => decode_bundle(v, false),
        "bundle_load" => decode_bundle(v, true),
        "group" | "push_vlan" | "note" | "set_tunnel" | "set_tunnel64" | "set_queue"
        | "set_mpls_label" | "set_mpls_tc" | "set_mpls_ttl" | "mod_nw_tos" | "mod_nw_ecn"
        | "mod_tp_src" | "mod_tp_dst" => default_value(v),
        "pop_mpls" | "push_mpls" | "mod_nw_ttl" | "mod_vlan_vid" | "set_vlan_vid"
        | "mod_vlan_pcp" | "set_vlan_pcp" | "meter" | "goto_table" => int_value(v),
        "encap" => decode_encap(v)?,
        // `decode_flag`, whatever is in the parentheses (`decap(packet_type(ns=1,type=0x800))`).
        "decap" => Value::Flag,
        "load" => decode_load(v),
        "set_field" => decode_set_field(v),
        "move" => decode_move(v),
        "mod_dl_dst" | "mod_dl_src" => eth_value(v),
        "mod_nw_dst" | "mod_nw_src" => ip_value(v),
        "dec_ttl" => {
            if v.is_empty() {
                Value::Flag
            } else {
                Value::Array(v.split(',').map(|p| int_value(p.trim())).collect())
            }
        }
        "delete_field" | "push" | "pop" => Value::Field(field_ref(v)),
        "check_pkt_larger" => decode_check_pkt_larger(v),
        "ct" => Value::Map(nested(v, "ct", decode_ct_item)?),
        "fin_timeout" => Value::Map(nested(v, "fin_timeout", |k| {
            Ok(Kv::new(
                k.key,
                match k.key {
                    "idle_timeout" | "hard_timeout" => time_value(k.value),
                    _ => generic_value(k)?,
                },
            ))
        })?),
        "resubmit" => list_value(
            v,
            &[','],
            &[("port", L::Default), ("table", L::Int), ("ct", L::Flag)],
        ),
        "multipath" => list_value(
            v,
            &[','],
            &[
                ("fields", L::Default),
                ("basis", L::Int),
                ("algorithm", L::Default),
                ("n_links", L::Int),
                ("arg", L::Int),
                ("dst", L::Field),
            ],
        ),
        "learn" => Value::List(nested(v, "learn", |k| decode_action(k, ActionSet::Learn))?),
        "clone" | "write_actions" => Value::List(nested(v, name_static(name), |k| {
            decode_action(k, ActionSet::Top)
        })?),
        "conjunction" => list_value(
            v,
            &[',', '/'],
            &[("id", L::Int), ("k", L::Int), ("n", L::Int)],
        ),
        "sample" => Value::Map(nested(v, "sample", |k| {
            Ok(Kv::new(
                k.key,
                match (k.key, k.delim) {
                    (_, Delim::Free) => Value::Flag,
                    ("probability" | "collector_set_id", _) => int_value(k.value),
                    ("obs_domain_id" | "obs_point_id", _) => field_or_int(k.value),
                    _ => default_value(k.value),
                },
            ))
        })?),
        "write_metadata" => mask_value(v, 64),
        _ => generic_value(k)?,
    };
    Ok(Kv::new(k.key, value))
}

fn name_static(name: &str) -> &'static str {
    match name {
        "clone" => "clone",
        _ => "write_actions",
    }
}

/// An unknown key: nested key-values when in parentheses, else integer or text.
fn generic_value(k: RawKv<'_>) -> Result<Value<'_>, ParseError> {
    Ok(match k.delim {
        Delim::Free => Value::Flag,
        Delim::Paren if k.value.contains(['=', '(', ':']) => {
            Value::Map(nested(k.value, "actions", |k| {
                Ok(Kv::new(k.key, generic_value(k)?))
            })?)
        }
        _ => default_value(k.value),
    })
}

fn decode_output(v: &str) -> Value<'_> {
    if v.contains(',') {
        let mut items = Vec::new();
        let _ = for_each_kv(v, "output", |k| {
            let val = match (k.key, k.delim) {
                (_, Delim::Free) => Value::Flag,
                ("max_len", _) => int_value(k.value),
                _ => default_value(k.value),
            };
            items.push(Kv::new(k.key, val));
            Ok(())
        });
        return Value::Map(items);
    }
    let port = match v.parse::<u128>() {
        Ok(p) => Value::Int(p),
        Err(_) => Value::Str(v.trim_matches('"')),
    };
    Value::Map(vec![Kv::new("port", port)])
}

fn decode_controller(v: &str) -> Result<Value<'_>, ParseError> {
    if let Ok(max_len) = v.parse::<u128>() {
        return Ok(Value::Map(vec![Kv::new("max_len", Value::Int(max_len))]));
    }
    Ok(Value::Map(nested(v, "controller", |k| {
        Ok(Kv::new(
            k.key,
            match (k.key, k.delim) {
                (_, Delim::Free) => Value::Flag,
                ("max_len" | "id" | "meter_id", _) => int_value(k.value),
                _ => default_value(k.value),
            },
        ))
    })?))
}

/// How an element of a positional list decodes.
#[derive(Clone, Copy)]
enum L {
    Default,
    Int,
    Flag,
    Field,
}

/// `ListParser`: positional values named by `names`; extra ones are `elem_N`.
fn list_value<'a>(v: &'a str, delims: &[char], names: &[(&'static str, L)]) -> Value<'a> {
    let mut out = Vec::new();
    for (i, part) in v.split(delims).enumerate() {
        if i == 0 && part.is_empty() && v.is_empty() {
            break;
        }
        let Some(&(name, how)) = names.get(i) else {
            // Extra elements: Python names them elem_N; we keep the text under that name too.
            out.push(Kv::new("elem", default_value(part)));
            continue;
        };
        let value = match how {
            L::Default => default_value(part),
            L::Int => int_value(part),
            L::Flag => Value::Flag,
            L::Field => Value::Field(field_ref(part)),
        };
        out.push(Kv::new(name, value));
    }
    Value::Map(out)
}

fn decode_bundle(v: &str, load: bool) -> Value<'_> {
    let mut out = Vec::new();
    let mut rest = v;
    let keys: &[&'static str] = if load {
        &["fields", "basis", "algorithm", "ofport", "dst"]
    } else {
        &["fields", "basis", "algorithm", "ofport"]
    };
    for key in keys {
        let (head, tail) = rest.split_once(',').unwrap_or((rest, ""));
        rest = tail;
        if *key != "ofport" {
            out.push(Kv::new(key, default_value(head)));
        }
    }
    if let Some((_, members)) = rest.split_once("members:") {
        out.push(Kv::new(
            "members",
            Value::Array(members.split(',').map(default_value).collect()),
        ));
    }
    Value::Map(out)
}

/// `decode_encap`: a bare header (`ethernet`, `mpls`, `mpls_mc`) or `nsh`, bare (`props` is
/// then `true`) or with its properties: `md_type` and `tlv(class,type,value)`, integers.
fn decode_encap(v: &str) -> Result<Value<'_>, ParseError> {
    let items = nested(v, "encap", |k| {
        Ok(match (k.key, k.delim) {
            ("nsh", Delim::Free) => Kv::new("nsh", Value::Flag),
            ("nsh", _) => Kv::new(
                "nsh",
                Value::Map(nested(k.value, "encap", |p| {
                    Ok(match p.key {
                        "tlv" => Kv::new(
                            "tlv",
                            list_value(
                                p.value,
                                &[','],
                                &[("class", L::Int), ("type", L::Int), ("value", L::Int)],
                            ),
                        ),
                        _ => Kv::new(p.key, generic_value(p)?),
                    })
                })?),
            ),
            (_, Delim::Free) => Kv::new("header", Value::Str(k.key)),
            _ => Kv::new(k.key, generic_value(k)?),
        })
    })?;
    Ok(match items.into_iter().next() {
        Some(kv) if kv.key == "header" => Value::Map(vec![kv]),
        Some(kv) => Value::Map(vec![
            Kv::new("header", Value::Str(kv.key)),
            Kv::new("props", kv.value),
        ]),
        None => Value::Str(v),
    })
}

fn decode_load(v: &str) -> Value<'_> {
    let Some((src, dst)) = v.split_once("->") else {
        return Value::Str(v);
    };
    let first = match py_int(src) {
        Some(i) => Kv::new("value", Value::Int(i)),
        None => Kv::new("src", Value::Field(field_ref(src))),
    };
    Value::Map(vec![first, Kv::new("dst", Value::Field(field_ref(dst)))])
}

fn decode_set_field(v: &str) -> Value<'_> {
    let Some((val, dst)) = v.split_once("->") else {
        return Value::Str(v);
    };
    Value::Map(vec![
        Kv::new(
            "value",
            Value::Map(vec![Kv::new(dst, field_value(dst, val))]),
        ),
        Kv::new("dst", Value::Field(field_ref(dst))),
    ])
}

fn decode_move(v: &str) -> Value<'_> {
    let Some((src, dst)) = v.split_once("->") else {
        return Value::Str(v);
    };
    Value::Map(vec![
        Kv::new("src", Value::Field(field_ref(src))),
        Kv::new("dst", Value::Field(field_ref(dst))),
    ])
}

fn decode_check_pkt_larger(v: &str) -> Value<'_> {
    let Some((len, dst)) = v.split_once("->") else {
        return Value::Str(v);
    };
    Value::Map(vec![
        Kv::new("pkt_len", int_value(len.trim_matches(['(', ')']))),
        Kv::new("dst", Value::Field(field_ref(dst))),
    ])
}

fn decode_ct_item(k: RawKv<'_>) -> Result<Kv<'_>, ParseError> {
    let v = k.value;
    let value = match (k.key, k.delim) {
        ("nat", Delim::Free) => Value::Flag,
        ("nat", _) => decode_nat(v),
        (_, Delim::Free) => Value::Flag,
        ("zone", _) => field_or_int(v),
        ("table", _) => int_value(v),
        ("exec", _) => Value::List(nested(v, "exec", |k| decode_action(k, ActionSet::Exec))?),
        _ => default_value(v),
    };
    Ok(Kv::new(k.key, value))
}

/// `nat`, `nat(src=10.0.0.1-10.0.0.5:1000-2000,persistent)`,
/// `nat(dst=[fe80::1]-[fe80::9]:80)`.
pub fn decode_nat(v: &str) -> Value<'_> {
    if v.is_empty() {
        return Value::Flag;
    }
    let Some((kind, rest)) = v.split_once('=') else {
        return Value::Map(vec![Kv::new("type", Value::Str(v))]);
    };
    let mut parts = rest.split(',');
    let range = parts.next().unwrap_or("");
    let mut out = vec![Kv::new("type", Value::Str(kind))];
    out.extend(ip_port_range(range));
    for flag in parts.filter(|p| !p.is_empty()) {
        out.push(Kv::new(flag, Value::Flag));
    }
    Value::Map(out)
}

fn ip_port_range(s: &str) -> Vec<Kv<'_>> {
    let v6 = s.matches(':').count() > 1;
    let is_addr_char = |c: char| {
        if v6 {
            c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '.'
        } else {
            c.is_ascii_digit() || c == '.'
        }
    };
    // One address, with its brackets if any; returns (address, rest).
    let take = |s: &str| -> (usize, usize, usize) {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() && b[i] == b'[' {
            i += 1;
        }
        let start = i;
        // An unbracketed IPv6 address would eat the port: stop at `]`.
        while i < b.len() && is_addr_char(b[i] as char) && !(v6 && b[0] == b'[' && b[i] == b']') {
            i += 1;
        }
        let end = i;
        while i < b.len() && b[i] == b']' {
            i += 1;
        }
        (start, end, i)
    };
    let (s1, e1, mut pos) = take(s);
    let start = &s[s1..e1];
    let mut end = start;
    if s[pos..].starts_with('-') {
        let rest = &s[pos + 1..];
        let (s2, e2, p2) = take(rest);
        end = &rest[s2..e2];
        pos += 1 + p2;
    }
    let mut out = vec![Kv::new(
        "addrs",
        Value::Map(vec![
            Kv::new("start", Value::Str(start)),
            Kv::new("end", Value::Str(end)),
        ]),
    )];
    if let Some(ports) = s[pos..].strip_prefix(':') {
        let (a, b) = ports.split_once('-').unwrap_or((ports, ports));
        out.push(Kv::new(
            "ports",
            Value::Map(vec![
                Kv::new("start", int_value(a)),
                Kv::new("end", int_value(b)),
            ]),
        ));
    }
    out
}

/// Inside `learn(...)`: its own keys, then `field=value|field`, and bare fields.
fn decode_learn_item<'a>(k: RawKv<'a>, name: &str) -> Result<Option<Kv<'a>>, ParseError> {
    let v = k.value;
    let value = match (name, k.delim) {
        ("idle_timeout" | "hard_timeout" | "fin_idle_timeout" | "fin_hard_timeout", _) => {
            time_value(v)
        }
        ("priority" | "cookie" | "table" | "limit", d) if d != Delim::Free => int_value(v),
        ("send_flow_rem" | "delete_learned", _) => Value::Flag,
        ("result_dst", _) => Value::Field(field_ref(v)),
        (_, Delim::Free) if is_field_name(field_ref(k.key).field) => Value::Field(field_ref(k.key)),
        (_, Delim::Eq) if is_field_name(field_ref(k.key).field) => {
            if is_field_name(field_ref(v).field) {
                Value::Field(field_ref(v))
            } else {
                let key_field = field_ref(k.key).field;
                field_value(key_field, v)
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(Kv::new(k.key, value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Flow<'_> {
        match parse_line(line, 1) {
            Ok(f) => f,
            Err(e) => panic!("{line}: {e}"),
        }
    }

    fn action<'a>(f: &'a Flow<'_>, i: usize) -> &'a Kv<'a> {
        &f.actions[i]
    }

    #[test]
    fn deeply_nested_lines_are_refused_not_overflowing_the_stack() {
        let nest = |n: usize| format!("{}drop{}", "clone(".repeat(n), ")".repeat(n));
        let line = |n: usize| format!(" cookie=0x1, table=0, priority=1 actions={}", nest(n));
        let ok = line(MAX_NESTING);
        assert!(parse_line(&ok, 1).is_ok());
        let before = crate::limits::count("flow_text_depth");
        for n in [MAX_NESTING + 1, 5000] {
            let text = line(n);
            let r = parse_line(&text, 7);
            assert!(matches!(r, Err(ParseError::TooDeep { .. })), "{n}: {r:?}");
        }
        let dp = format!(
            "in_port(1),{}eth(){} packets:0, bytes:0, used:never, actions:drop",
            "encap(".repeat(5000),
            ")".repeat(5000)
        );
        let r = parse_line(&dp, 1);
        assert!(matches!(r, Err(ParseError::TooDeep { .. })), "{r:?}");
        assert!(crate::limits::count("flow_text_depth") >= before + 3);
    }

    #[test]
    fn python_int_rules() {
        assert_eq!(py_int("0x10"), Some(16));
        assert_eq!(py_int("10"), Some(10));
        assert_eq!(py_int("0"), Some(0));
        assert_eq!(py_int("00"), Some(0));
        assert_eq!(py_int("010"), None);
        assert_eq!(py_int("0x"), None);
        assert_eq!(py_int("41.42"), None);
        assert_eq!(py_int("0b101"), Some(5));
        assert_eq!(py_int("0x+5"), None);
        assert_eq!(py_int("0xFFff"), Some(0xffff));
        assert_eq!(py_int("1_000"), Some(1000));
        assert_eq!(py_int("_1"), None);
        assert_eq!(py_int(" 7 "), Some(7));
        assert_eq!(py_int(&u128::MAX.to_string()), Some(u128::MAX));
        assert_eq!(py_int(&format!("{:#x}", u128::MAX)), Some(u128::MAX));
        assert_eq!(py_int("340282366920938463463374607431768211456"), None);
    }

    #[test]
    fn sections_of_a_dump_line() {
        let f = one(
            " cookie=0x5, duration=0.491s, table=2, n_packets=7, n_bytes=42, idle_age=5, priority=29,ip,nw_src=10.0.0.0/8 actions=output:1",
        );
        assert_eq!(f.cookie(), 5);
        assert_eq!(f.table(), 2);
        assert_eq!(f.packets(), 7);
        assert_eq!(f.bytes(), 42);
        assert_eq!(f.priority(), 29);
        assert_eq!(f.info[1], Kv::new("duration", Value::Float(0.491)));
        assert_eq!(f.info[5], Kv::new("idle_age", Value::Float(5.0)));
        assert_eq!(f.matches[1], Kv::new("ip", Value::Flag));
        let Value::Ip(ip) = &f.matches[2].value else {
            panic!("{:?}", f.matches[2]);
        };
        assert_eq!(ip.to_string(), "10.0.0.0/8");
        assert_eq!(f.match_text, "priority=29,ip,nw_src=10.0.0.0/8");
        assert_eq!(f.actions_text, "output:1");
    }

    #[test]
    fn no_match_and_default_priority() {
        let f = one(" cookie=0x0, duration=1s, table=0, n_packets=0, n_bytes=0, actions=drop");
        assert_eq!(f.match_text, "");
        assert_eq!(f.priority(), DEFAULT_PRIORITY);
        assert_eq!(f.bytes(), 0);
        // add-flow syntax: everything before actions= is the match.
        let f = one("table=2,priority=10,in_port=1,actions=drop");
        assert_eq!(f.table(), 2);
        assert_eq!(f.priority(), 10);
        assert_eq!(f.actions[0], Kv::new("drop", Value::Flag));
    }

    #[test]
    fn masks_and_addresses() {
        let f = one(
            "priority=1,reg1=0x10/0xf0,reg15=0,tp_dst=0x1000/0xf000,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,nw_src=10.0.0.0/255.0.255.0,ipv6_src=2001:db8::/32,ct_label=0x1/0x1,vlan_tci=0x0000/0x1fff actions=drop",
        );
        let m = |i: usize| &f.matches[i].value;
        assert_eq!(
            *m(1),
            Value::Masked {
                value: 16,
                mask: 0xf0,
                bits: 32
            }
        );
        assert_eq!(
            *m(2),
            Value::Masked {
                value: 0,
                mask: 0xffff_ffff,
                bits: 32
            }
        );
        assert_eq!(
            *m(3),
            Value::Masked {
                value: 0x1000,
                mask: 0xf000,
                bits: 16
            }
        );
        let Value::Eth(e) = m(4) else { panic!() };
        assert_eq!(e.to_string(), "1:0:0:0:0:0/1:0:0:0:0:0");
        let Value::Ip(ip) = m(5) else { panic!() };
        assert_eq!(ip.to_string(), "10.0.0.0/255.0.255.0");
        assert_eq!(ip.prefix, None);
        let Value::Ip(ip) = m(6) else { panic!() };
        assert_eq!(ip.to_string(), "2001:db8::/32");
        assert_eq!(
            *m(7),
            Value::Masked {
                value: 1,
                mask: 1,
                bits: 128
            }
        );
        assert_eq!(
            *m(8),
            Value::Masked {
                value: 0,
                mask: 0x1fff,
                bits: 16
            }
        );
    }

    #[test]
    fn ct_with_nat_and_exec() {
        let f = one(
            "priority=1 actions=ct(commit,zone=5,exec(set_field:0x2->ct_mark)),ct(table=3,zone=NXM_NX_REG13[0..15],nat),ct(commit,nat(src=[2001:db8::1]-[2001:db8::9]:100-200,persistent,random))",
        );
        let Value::Map(ct) = &action(&f, 0).value else {
            panic!()
        };
        assert_eq!(ct[0], Kv::new("commit", Value::Flag));
        assert_eq!(ct[1], Kv::new("zone", Value::Int(5)));
        let Value::List(exec) = &ct[2].value else {
            panic!()
        };
        assert_eq!(exec[0].key, "set_field");
        let Value::Map(ct) = &action(&f, 1).value else {
            panic!()
        };
        assert_eq!(
            ct[1].value,
            Value::Field(FieldRef {
                field: "NXM_NX_REG13",
                start: Some(0),
                end: Some(15)
            })
        );
        assert_eq!(ct[2], Kv::new("nat", Value::Flag));
        let Value::Map(ct) = &action(&f, 2).value else {
            panic!()
        };
        let Value::Map(nat) = &ct[1].value else {
            panic!()
        };
        assert_eq!(nat[0], Kv::new("type", Value::Str("src")));
        assert_eq!(
            nat[1],
            Kv::new(
                "addrs",
                Value::Map(vec![
                    Kv::new("start", Value::Str("2001:db8::1")),
                    Kv::new("end", Value::Str("2001:db8::9"))
                ])
            )
        );
        assert_eq!(
            nat[2],
            Kv::new(
                "ports",
                Value::Map(vec![
                    Kv::new("start", Value::Int(100)),
                    Kv::new("end", Value::Int(200))
                ])
            )
        );
        assert_eq!(nat[3], Kv::new("persistent", Value::Flag));
    }

    #[test]
    fn bare_ports_controller_resubmit_conjunction() {
        let f = one(
            "priority=1 actions=resubmit(,3),resubmit:1,IN_PORT,2,CONTROLLER:65535,controller(reason=no_match,max_len=128,id=3),conjunction(7,1/2),note:41.42.43.00.00.00,group:1,load:0x2->NXM_NX_REG0[],move:NXM_NX_REG1[0..15]->NXM_NX_REG2[16..31]",
        );
        assert_eq!(
            action(&f, 0).value,
            Value::Map(vec![
                Kv::new("port", Value::Str("")),
                Kv::new("table", Value::Int(3))
            ])
        );
        assert_eq!(
            action(&f, 1).value,
            Value::Map(vec![Kv::new("port", Value::Int(1))])
        );
        assert_eq!(
            *action(&f, 2),
            Kv::new(
                "output",
                Value::Map(vec![Kv::new("port", Value::Str("IN_PORT"))])
            )
        );
        assert_eq!(
            *action(&f, 3),
            Kv::new("output", Value::Map(vec![Kv::new("port", Value::Int(2))]))
        );
        assert_eq!(
            *action(&f, 4),
            Kv::new(
                "CONTROLLER",
                Value::Map(vec![Kv::new("max_len", Value::Int(65535))])
            )
        );
        assert_eq!(action(&f, 5).key, "controller");
        assert_eq!(
            action(&f, 6).value,
            Value::Map(vec![
                Kv::new("id", Value::Int(7)),
                Kv::new("k", Value::Int(1)),
                Kv::new("n", Value::Int(2))
            ])
        );
        assert_eq!(action(&f, 7).value, Value::Str("41.42.43.00.00.00"));
        assert_eq!(action(&f, 8).value, Value::Int(1));
        assert_eq!(
            action(&f, 9).value,
            Value::Map(vec![
                Kv::new("value", Value::Int(2)),
                Kv::new(
                    "dst",
                    Value::Field(FieldRef {
                        field: "NXM_NX_REG0",
                        start: None,
                        end: None
                    })
                )
            ])
        );
        assert_eq!(action(&f, 10).key, "move");
    }

    #[test]
    fn encap_and_decap_as_ovs_flow_decodes_them() {
        let f = one(
            "priority=1 actions=encap(nsh(md_type=2,tlv(0x1000,10,0x12345678))),encap(nsh),encap(ethernet),decap(),decap(packet_type(ns=1,type=0x800))",
        );
        let map = |kvs: Vec<Kv<'static>>| Value::Map(kvs);
        assert_eq!(
            action(&f, 0).value,
            map(vec![
                Kv::new("header", Value::Str("nsh")),
                Kv::new(
                    "props",
                    map(vec![
                        Kv::new("md_type", Value::Int(2)),
                        Kv::new(
                            "tlv",
                            map(vec![
                                Kv::new("class", Value::Int(0x1000)),
                                Kv::new("type", Value::Int(10)),
                                Kv::new("value", Value::Int(0x1234_5678)),
                            ])
                        ),
                    ])
                ),
            ])
        );
        assert_eq!(
            action(&f, 1).value,
            map(vec![
                Kv::new("header", Value::Str("nsh")),
                Kv::new("props", Value::Flag),
            ])
        );
        assert_eq!(
            action(&f, 2).value,
            map(vec![Kv::new("header", Value::Str("ethernet"))])
        );
        assert_eq!(action(&f, 3).value, Value::Flag);
        assert_eq!(action(&f, 4).value, Value::Flag);
    }

    #[test]
    fn learn_keeps_fields() {
        let f = one(
            "priority=1 actions=learn(table=10,idle_timeout=60,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],eth_type=0x800,load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15],output:NXM_OF_IN_PORT[])",
        );
        let Value::List(l) = &f.actions[0].value else {
            panic!()
        };
        assert_eq!(l[0], Kv::new("table", Value::Int(10)));
        assert_eq!(l[1], Kv::new("idle_timeout", Value::Float(60.0)));
        assert_eq!(
            l[2].value,
            Value::Field(FieldRef {
                field: "NXM_OF_VLAN_TCI",
                start: Some(0),
                end: Some(11)
            })
        );
        assert_eq!(l[3].key, "NXM_OF_ETH_DST[]");
        assert_eq!(l[4], Kv::new("eth_type", Value::Int(0x800)));
        assert_eq!(l[5].key, "load");
        assert_eq!(
            l[6].value,
            Value::Map(vec![Kv::new("port", Value::Str("NXM_OF_IN_PORT[]"))])
        );
    }

    #[test]
    fn unknown_keys_are_kept() {
        let f = one("priority=1,frobnicate=7,wibble=x/y actions=frob(a=1,b),zap:3,weird");
        assert_eq!(f.matches[1], Kv::new("frobnicate", Value::Int(7)));
        assert_eq!(f.matches[2], Kv::new("wibble", Value::Str("x/y")));
        assert_eq!(
            f.actions[0].value,
            Value::Map(vec![Kv::new("a", Value::Int(1)), Kv::new("b", Value::Flag)])
        );
        assert_eq!(f.actions[1], Kv::new("zap", Value::Int(3)));
        assert_eq!(f.actions[2].key, "output");
    }

    #[test]
    fn malformed_lines() {
        assert_eq!(
            parse_line("priority=1,in_port=1", 3),
            Err(ParseError::NoActions)
        );
        assert!(matches!(
            parse_line("priority=1 actions=ct(commit", 3),
            Err(ParseError::Unbalanced { .. })
        ));
        let text = "OFPST_FLOW reply (OF1.3) (xid=0x2):\n priority=1 actions=drop\nbroken line\n priority=2 actions=ct(\n\n priority=3 actions=NORMAL\n";
        let p = parse_text(text);
        assert_eq!(p.flows.len(), 2);
        assert_eq!(
            p.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![3, 4]
        );
        assert_eq!(p.flows[1].line, 6);
    }

    #[test]
    fn parallel_blocks_keep_order_and_line_numbers() {
        let mut text = String::new();
        for i in 0..1000 {
            if i % 97 == 5 {
                text.push_str("broken\n");
            } else {
                text.push_str(&format!("table={i},priority=1,actions=drop\n"));
            }
        }
        for (threads, block) in [(1, 1 << 20), (2, 1 << 20), (3, 500), (4, 64)] {
            let mut lines = Vec::new();
            let mut errors = Vec::new();
            par_blocks(
                &text,
                threads,
                block,
                |part, offset| {
                    let mut seen = Vec::new();
                    let mut errs = Vec::new();
                    for_each_flow_from(part, offset, &mut errs, |f| {
                        seen.push((f.line, f.table()));
                    });
                    (seen, errs)
                },
                |(seen, errs)| {
                    lines.extend(seen);
                    errors.extend(errs.into_iter().map(|e| e.line));
                },
            );
            let want: Vec<(usize, u128)> = (0..1000u128)
                .filter(|i| i % 97 != 5)
                .map(|i| (i as usize + 1, i))
                .collect();
            assert_eq!(lines, want, "threads {threads} block {block}");
            let want_err: Vec<usize> = (0..1000).filter(|i| i % 97 == 5).map(|i| i + 1).collect();
            assert_eq!(errors, want_err);
        }
        assert_eq!(split_lines("a\nb\nc\n", 2), vec!["a\nb\n", "c\n"]);
        assert_eq!(split_lines("abc", 4), vec!["abc"]);
        assert_eq!(count_lines("a\nb"), 2);
        assert_eq!(count_lines("a\nb\n"), 2);
    }

    #[test]
    fn datapath_flows() {
        let f = one(
            "ufid:1234abcd-0000, recirc_id(0),dp_hash(0/0),in_port(2),eth(src=02:00:00:00:00:01,dst=02:00:00:00:00:02),eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.0.0.0/255.255.255.0,proto=6,frag=no), packets:10, bytes:1000, used:0.5s, flags:S, actions:ct(zone=1,nat),recirc(0x2)",
        );
        assert_eq!(f.kind, FlowKind::Datapath);
        assert_eq!(f.recirc_id(), 0);
        assert_eq!(f.packets(), 10);
        assert_eq!(f.bytes(), 1000);
        assert_eq!(f.info[0], Kv::new("ufid", Value::Str("1234abcd-0000")));
        assert_eq!(f.actions[1], Kv::new("recirc", Value::Int(2)));
        let Value::Map(ipv4) = &f.matches[5].value else {
            panic!("{:?}", f.matches[5])
        };
        // ODPFlow's `Mask8`: value and mask.
        let m8 = |value| Value::Masked {
            value,
            mask: 0xff,
            bits: 8,
        };
        assert_eq!(ipv4[2], Kv::new("proto", m8(6)));
        let f = one(
            "skb_mark(0x123/0xfff),recirc_id(0),in_port(1),eth_type(0x0800),ipv4(frag=no), packets:1, bytes:1, used:never, actions:clone(recirc(0x1),recirc(0x2)),check_pkt_len(size=200,gt(4),le(drop)),sample(sample=9.7%,actions(1))",
        );
        assert_eq!(
            f.matches[0],
            Kv::new(
                "skb_mark",
                Value::Masked {
                    value: 0x123,
                    mask: 0xfff,
                    bits: 32
                }
            )
        );
        assert_eq!(
            f.actions[0],
            Kv::new(
                "clone",
                Value::List(vec![
                    Kv::new("recirc", Value::Int(1)),
                    Kv::new("recirc", Value::Int(2))
                ])
            )
        );
        let port = |p| Kv::new("output", Value::Map(vec![Kv::new("port", Value::Int(p))]));
        assert_eq!(
            f.actions[1],
            Kv::new(
                "check_pkt_len",
                Value::Map(vec![
                    Kv::new("size", Value::Int(200)),
                    Kv::new("gt", Value::List(vec![port(4)])),
                    Kv::new("le", Value::List(vec![Kv::new("drop", Value::Flag)])),
                ])
            )
        );
        assert_eq!(
            f.actions[2],
            Kv::new(
                "sample",
                Value::Map(vec![
                    Kv::new("sample", Value::Float(9.7)),
                    Kv::new("actions", Value::List(vec![port(1)])),
                ])
            )
        );
        let f = one(
            "recirc_id(0x2),in_port(2),eth_type(0x0800), packets:0, bytes:0, used:never, actions:3",
        );
        assert_eq!(f.recirc_id(), 2);
        assert_eq!(
            f.actions[0],
            Kv::new("output", Value::Map(vec![Kv::new("port", Value::Int(3))]))
        );
    }
}
