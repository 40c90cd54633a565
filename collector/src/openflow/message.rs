//! OpenFlow 1.3 framing, requests, and pure decoders for the multipart replies we read.

use super::wire::Reader;
use super::{DecodeError, OFP13_VERSION, actions, format, oxm, port};

pub const HEADER_LEN: usize = 8;

/// Message types (`ofp_type`).
pub mod msg_type {
    pub const HELLO: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const ECHO_REQUEST: u8 = 2;
    pub const ECHO_REPLY: u8 = 3;
    pub const MULTIPART_REQUEST: u8 = 18;
    pub const MULTIPART_REPLY: u8 = 19;
}

/// Multipart types (`ofp_multipart_type`) we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum MultipartType {
    Flow = 1,
    Table = 3,
    PortStats = 4,
    Group = 6,
    GroupDesc = 7,
    PortDesc = 13,
}

impl MultipartType {
    pub fn name(self) -> &'static str {
        match self {
            MultipartType::Flow => "flow stats",
            MultipartType::Table => "table stats",
            MultipartType::PortStats => "port stats",
            MultipartType::Group => "group stats",
            MultipartType::GroupDesc => "group description",
            MultipartType::PortDesc => "port description",
        }
    }
}

/// `OFPMPF_REPLY_MORE`: more replies follow.
pub const REPLY_MORE: u16 = 1;

/// An OpenFlow message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub msg_type: u8,
    pub length: u16,
    pub xid: u32,
}

impl Header {
    pub fn parse(b: &[u8; HEADER_LEN]) -> Header {
        Header {
            version: b[0],
            msg_type: b[1],
            length: u16::from_be_bytes([b[2], b[3]]),
            xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    fn put(&self, out: &mut Vec<u8>) {
        out.push(self.version);
        out.push(self.msg_type);
        out.extend_from_slice(&self.length.to_be_bytes());
        out.extend_from_slice(&self.xid.to_be_bytes());
    }
}

/// Our HELLO: version 1.3 with a version bitmap that offers 1.3 only.
pub fn hello(xid: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    Header {
        version: OFP13_VERSION,
        msg_type: msg_type::HELLO,
        length: 16,
        xid,
    }
    .put(&mut v);
    // ofp_hello_elem_versionbitmap: type 1, length 8, one bitmap word.
    v.extend_from_slice(&1u16.to_be_bytes());
    v.extend_from_slice(&8u16.to_be_bytes());
    v.extend_from_slice(&(1u32 << OFP13_VERSION).to_be_bytes());
    v
}

/// What the peer's HELLO offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerHello {
    pub version: u8,
    /// Versions from the bitmap element, if the peer sent one.
    pub bitmap: Option<u32>,
}

impl PeerHello {
    /// True if OpenFlow 1.3 can be agreed on.
    pub fn supports_13(&self) -> bool {
        match self.bitmap {
            Some(b) => b & (1 << OFP13_VERSION) != 0,
            None => self.version >= OFP13_VERSION,
        }
    }

    /// The versions offered, as `1.0, 1.3`.
    pub fn describe(&self) -> String {
        let versions: Vec<String> = match self.bitmap {
            Some(b) => (1..32u8)
                .filter(|v| b & (1 << v) != 0)
                .map(version_name)
                .collect(),
            None => vec![format!("up to {}", version_name(self.version))],
        };
        versions.join(", ")
    }
}

pub fn version_name(v: u8) -> String {
    match v {
        1..=6 => format!("1.{}", v - 1),
        other => format!("0x{other:02x}"),
    }
}

/// Decodes the peer's HELLO (the whole message, header included).
pub fn parse_hello(msg: &[u8]) -> Result<PeerHello, DecodeError> {
    let mut r = Reader::new(msg);
    let version = r.u8("hello version")?;
    r.skip(HEADER_LEN - 1, "hello header")?;
    let mut bitmap = None;
    while r.remaining() >= 4 {
        let at = r.offset();
        let kind = r.u16("hello element type")?;
        let len = r.u16("hello element length")? as usize;
        if len < 4 {
            return Err(DecodeError::BadLength {
                what: "hello element",
                offset: at,
                len,
                reason: "shorter than its header",
            });
        }
        let mut body = r.sub(len - 4, "hello element")?;
        if kind == 1 && body.remaining() >= 4 {
            bitmap = Some(body.u32("version bitmap")?);
        }
        // Elements are padded to 8 bytes.
        let pad = len.div_ceil(8) * 8 - len;
        r.skip(pad.min(r.remaining()), "hello element padding")?;
    }
    Ok(PeerHello { version, bitmap })
}

/// A multipart request of `kind` with the body that asks for everything.
pub fn multipart_request(xid: u32, kind: MultipartType) -> Vec<u8> {
    let mut body = Vec::with_capacity(40);
    match kind {
        MultipartType::Flow => {
            body.push(0xff); // table_id: all tables
            body.extend_from_slice(&[0; 3]);
            body.extend_from_slice(&0xffff_ffffu32.to_be_bytes()); // out_port: any
            body.extend_from_slice(&0xffff_ffffu32.to_be_bytes()); // out_group: any
            body.extend_from_slice(&[0; 4]);
            body.extend_from_slice(&0u64.to_be_bytes()); // cookie
            body.extend_from_slice(&0u64.to_be_bytes()); // cookie_mask: any cookie
            // An empty OXM match: type 1, length 4, padded to 8.
            body.extend_from_slice(&[0, 1, 0, 4, 0, 0, 0, 0]);
        }
        MultipartType::PortStats => {
            body.extend_from_slice(&0xffff_ffffu32.to_be_bytes()); // port_no: any
            body.extend_from_slice(&[0; 4]);
        }
        MultipartType::Group => {
            body.extend_from_slice(&0xffff_fffcu32.to_be_bytes()); // group_id: all
            body.extend_from_slice(&[0; 4]);
        }
        MultipartType::Table | MultipartType::GroupDesc | MultipartType::PortDesc => {}
    }
    let length = (HEADER_LEN + 8 + body.len()) as u16;
    let mut v = Vec::with_capacity(length as usize);
    Header {
        version: OFP13_VERSION,
        msg_type: msg_type::MULTIPART_REQUEST,
        length,
        xid,
    }
    .put(&mut v);
    v.extend_from_slice(&(kind as u16).to_be_bytes());
    v.extend_from_slice(&[0; 6]); // flags, pad
    v.extend_from_slice(&body);
    v
}

/// An ECHO_REPLY for an ECHO_REQUEST (same xid and payload).
pub fn echo_reply(request: &[u8]) -> Vec<u8> {
    let mut v = request.to_vec();
    if v.len() >= 2 {
        v[0] = OFP13_VERSION;
        v[1] = msg_type::ECHO_REPLY;
    }
    v
}

/// A multipart reply's type, flags and body.
pub fn parse_multipart_reply(msg: &[u8]) -> Result<(u16, u16, &[u8]), DecodeError> {
    let mut r = Reader::new(msg);
    r.skip(HEADER_LEN, "header")?;
    let kind = r.u16("multipart type")?;
    let flags = r.u16("multipart flags")?;
    r.skip(4, "multipart pad")?;
    Ok((kind, flags, &msg[HEADER_LEN + 8..]))
}

/// An OFPT_ERROR's type and code, named where we know the names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMsg {
    pub kind: u16,
    pub code: u16,
}

impl ErrorMsg {
    pub fn parse(msg: &[u8]) -> Result<ErrorMsg, DecodeError> {
        let mut r = Reader::new(msg);
        r.skip(HEADER_LEN, "header")?;
        Ok(ErrorMsg {
            kind: r.u16("error type")?,
            code: r.u16("error code")?,
        })
    }
}

impl std::fmt::Display for ErrorMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            0 => "HELLO_FAILED",
            1 => "BAD_REQUEST",
            2 => "BAD_ACTION",
            3 => "BAD_INSTRUCTION",
            4 => "BAD_MATCH",
            5 => "FLOW_MOD_FAILED",
            6 => "GROUP_MOD_FAILED",
            11 => "ROLE_REQUEST_FAILED",
            0xffff => "EXPERIMENTER",
            _ => "?",
        };
        let code = match (self.kind, self.code) {
            (0, 0) => "INCOMPATIBLE",
            (0, 1) => "EPERM",
            (1, 0) => "BAD_VERSION",
            (1, 1) => "BAD_TYPE",
            (1, 2) => "BAD_MULTIPART",
            (1, 5) => "EPERM",
            (1, 6) => "BAD_LEN",
            (1, 9) => "BAD_TABLE_ID",
            (1, 10) => "IS_SLAVE",
            (1, 11) => "BAD_PORT",
            (1, 13) => "MULTIPART_BUFFER_OVERFLOW",
            _ => "?",
        };
        write!(f, "{kind}/{code} (type {}, code {})", self.kind, self.code)
    }
}

fn name16(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn check_entry_len(
    what: &'static str,
    at: usize,
    len: usize,
    min: usize,
) -> Result<(), DecodeError> {
    if len < min {
        return Err(DecodeError::BadLength {
            what,
            offset: at,
            len,
            reason: "shorter than the fixed part",
        });
    }
    Ok(())
}

/// A port's description (`ofp_port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortDesc {
    /// Port number in Open vSwitch's 16-bit form (`LOCAL` is 65534).
    pub port_no: u16,
    pub name: String,
    pub hw_addr: [u8; 6],
    pub config: u32,
    pub state: u32,
    /// Current speed, kbit/s.
    pub curr_speed: u32,
    pub max_speed: u32,
}

pub fn decode_port_descs(body: &[u8], out: &mut Vec<PortDesc>) -> Result<(), DecodeError> {
    const LEN: usize = 64;
    let mut r = Reader::new(body);
    while !r.is_empty() {
        let mut e = r.sub(LEN, "ofp_port")?;
        let raw_port = e.u32("port_no")?;
        e.skip(4, "pad")?;
        let mut hw_addr = [0u8; 6];
        hw_addr.copy_from_slice(e.bytes(6, "hw_addr")?);
        e.skip(2, "pad")?;
        let name = name16(e.bytes(16, "name")?);
        let config = e.u32("config")?;
        let state = e.u32("state")?;
        e.skip(16, "features")?;
        let curr_speed = e.u32("curr_speed")?;
        let max_speed = e.u32("max_speed")?;
        out.push(PortDesc {
            port_no: port::from_ofp11(raw_port).unwrap_or(raw_port as u16),
            name,
            hw_addr,
            config,
            state,
            curr_speed,
            max_speed,
        });
    }
    Ok(())
}

/// `u64::MAX` in a port counter means "not supported by this port" (`ovs-ofctl` prints `?`).
pub const UNSUPPORTED: u64 = u64::MAX;

/// A port's counters (`ofp_port_stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortStats {
    pub port_no: u16,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_frame_err: u64,
    pub rx_over_err: u64,
    pub rx_crc_err: u64,
    pub collisions: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
}

pub fn decode_port_stats(body: &[u8], out: &mut Vec<PortStats>) -> Result<(), DecodeError> {
    const LEN: usize = 112;
    let mut r = Reader::new(body);
    while !r.is_empty() {
        let mut e = r.sub(LEN, "ofp_port_stats")?;
        let raw_port = e.u32("port_no")?;
        e.skip(4, "pad")?;
        let mut c = [0u64; 12];
        for v in &mut c {
            *v = e.u64("port counter")?;
        }
        out.push(PortStats {
            port_no: port::from_ofp11(raw_port).unwrap_or(raw_port as u16),
            rx_packets: c[0],
            tx_packets: c[1],
            rx_bytes: c[2],
            tx_bytes: c[3],
            rx_dropped: c[4],
            tx_dropped: c[5],
            rx_errors: c[6],
            tx_errors: c[7],
            rx_frame_err: c[8],
            rx_over_err: c[9],
            rx_crc_err: c[10],
            collisions: c[11],
            duration_sec: e.u32("duration_sec")?,
            duration_nsec: e.u32("duration_nsec")?,
        });
    }
    Ok(())
}

/// A table's counters (`ofp_table_stats`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStats {
    pub table_id: u8,
    pub active_count: u32,
    pub lookup_count: u64,
    pub matched_count: u64,
}

pub fn decode_table_stats(body: &[u8], out: &mut Vec<TableStats>) -> Result<(), DecodeError> {
    let mut r = Reader::new(body);
    while !r.is_empty() {
        let mut e = r.sub(24, "ofp_table_stats")?;
        let table_id = e.u8("table_id")?;
        e.skip(3, "pad")?;
        out.push(TableStats {
            table_id,
            active_count: e.u32("active_count")?,
            lookup_count: e.u64("lookup_count")?,
            matched_count: e.u64("matched_count")?,
        });
    }
    Ok(())
}

/// A group's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupType {
    All,
    Select,
    Indirect,
    FastFailover,
    Other(u8),
}

impl GroupType {
    pub fn from_wire(v: u8) -> GroupType {
        match v {
            0 => GroupType::All,
            1 => GroupType::Select,
            2 => GroupType::Indirect,
            3 => GroupType::FastFailover,
            other => GroupType::Other(other),
        }
    }

    /// The name `ovs-ofctl dump-groups` prints (`type=select`).
    pub fn name(self) -> &'static str {
        match self {
            GroupType::All => "all",
            GroupType::Select => "select",
            GroupType::Indirect => "indirect",
            GroupType::FastFailover => "ff",
            GroupType::Other(_) => "unknown",
        }
    }
}

/// One bucket of a group description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub weight: u16,
    pub watch_port: u32,
    pub watch_group: u32,
    /// The bucket's actions as `ovs-ofctl` writes them.
    pub actions: String,
}

/// A group's description (`ofp_group_desc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDesc {
    pub group_id: u32,
    pub group_type: GroupType,
    pub buckets: Vec<Bucket>,
}

pub fn decode_group_descs(body: &[u8], out: &mut Vec<GroupDesc>) -> Result<(), DecodeError> {
    let mut r = Reader::new(body);
    while !r.is_empty() {
        let at = r.offset();
        let len = r.peek_u16("group desc length")? as usize;
        check_entry_len("ofp_group_desc", at, len, 8)?;
        let mut e = r.sub(len, "ofp_group_desc")?;
        e.skip(2, "length")?;
        let group_type = GroupType::from_wire(e.u8("type")?);
        e.skip(1, "pad")?;
        let group_id = e.u32("group_id")?;
        let mut buckets = Vec::new();
        while !e.is_empty() {
            let bat = e.offset();
            let blen = e.peek_u16("bucket length")? as usize;
            check_entry_len("ofp_bucket", bat, blen, 16)?;
            let mut b = e.sub(blen, "ofp_bucket")?;
            b.skip(2, "length")?;
            let weight = b.u16("weight")?;
            let watch_port = b.u32("watch_port")?;
            let watch_group = b.u32("watch_group")?;
            b.skip(4, "pad")?;
            let mut text = String::new();
            actions::format_actions(b.bytes(b.remaining(), "bucket actions")?, &mut text)?;
            buckets.push(Bucket {
                weight,
                watch_port,
                watch_group,
                actions: text,
            });
        }
        out.push(GroupDesc {
            group_id,
            group_type,
            buckets,
        });
    }
    Ok(())
}

/// A group's counters (`ofp_group_stats`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStats {
    pub group_id: u32,
    pub ref_count: u32,
    pub packets: u64,
    pub bytes: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    /// Per bucket, in bucket order: (packets, bytes).
    pub buckets: Vec<(u64, u64)>,
}

pub fn decode_group_stats(body: &[u8], out: &mut Vec<GroupStats>) -> Result<(), DecodeError> {
    let mut r = Reader::new(body);
    while !r.is_empty() {
        let at = r.offset();
        let len = r.peek_u16("group stats length")? as usize;
        check_entry_len("ofp_group_stats", at, len, 40)?;
        if !(len - 40).is_multiple_of(16) {
            return Err(DecodeError::BadLength {
                what: "ofp_group_stats",
                offset: at,
                len,
                reason: "bucket counters are 16 bytes each",
            });
        }
        let mut e = r.sub(len, "ofp_group_stats")?;
        e.skip(4, "length, pad")?;
        let group_id = e.u32("group_id")?;
        let ref_count = e.u32("ref_count")?;
        e.skip(4, "pad")?;
        let packets = e.u64("packet_count")?;
        let bytes = e.u64("byte_count")?;
        let duration_sec = e.u32("duration_sec")?;
        let duration_nsec = e.u32("duration_nsec")?;
        let mut buckets = Vec::with_capacity(e.remaining() / 16);
        while !e.is_empty() {
            buckets.push((e.u64("bucket packet_count")?, e.u64("bucket byte_count")?));
        }
        out.push(GroupStats {
            group_id,
            ref_count,
            packets,
            bytes,
            duration_sec,
            duration_nsec,
            buckets,
        });
    }
    Ok(())
}

/// Where a piece of text sits in a [`FlowTable`]'s text pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TextSpan {
    pub start: u32,
    pub len: u32,
}

/// One flow entry's counters. Its match and actions text live in the [`FlowTable`]: 100k flows
/// are two allocations, not 200k.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowStats {
    pub table_id: u8,
    pub priority: u16,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub flags: u16,
    pub cookie: u64,
    pub packets: u64,
    pub bytes: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub match_span: TextSpan,
    pub actions_span: Option<TextSpan>,
}

/// A bridge's flows: counters plus one pool holding every match and action text.
#[derive(Debug, Clone, Default)]
pub struct FlowTable {
    entries: Vec<FlowStats>,
    text: String,
}

/// A flow with its text.
#[derive(Debug, Clone, Copy)]
pub struct Flow<'a> {
    pub stats: &'a FlowStats,
    /// The match as `ovs-ofctl dump-flows` writes it, without `priority=`.
    pub match_text: &'a str,
    /// The instructions as `ovs-ofctl -O OpenFlow13 dump-flows` writes them, if decoded.
    pub actions: Option<&'a str>,
}

impl std::ops::Deref for Flow<'_> {
    type Target = FlowStats;
    fn deref(&self) -> &FlowStats {
        self.stats
    }
}

impl FlowTable {
    pub fn with_capacity(flows: usize) -> Self {
        FlowTable {
            entries: Vec::with_capacity(flows),
            text: String::with_capacity(flows * 48),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn span(&self, span: TextSpan) -> &str {
        let start = span.start as usize;
        self.text
            .get(start..start + span.len as usize)
            .unwrap_or("")
    }

    pub fn get(&self, i: usize) -> Option<Flow<'_>> {
        self.entries.get(i).map(|stats| Flow {
            stats,
            match_text: self.span(stats.match_span),
            actions: stats.actions_span.map(|a| self.span(a)),
        })
    }

    pub fn iter(&self) -> FlowIter<'_> {
        FlowIter {
            table: self,
            inner: self.entries.iter(),
        }
    }

    /// Adds a flow, copying its text into the pool (for tests and for filtering).
    pub fn push(&mut self, mut stats: FlowStats, match_text: &str, actions: Option<&str>) {
        stats.match_span = self.push_text(match_text);
        stats.actions_span = actions.map(|a| self.push_text(a));
        self.entries.push(stats);
    }

    fn push_text(&mut self, t: &str) -> TextSpan {
        let start = self.text.len() as u32;
        self.text.push_str(t);
        TextSpan {
            start,
            len: t.len() as u32,
        }
    }

    /// The flows whose `keep` flag is set, in order.
    pub fn filtered(&self, keep: &[bool]) -> FlowTable {
        let n = keep.iter().filter(|&&k| k).count();
        let mut out = FlowTable::with_capacity(n);
        for (f, _) in self.iter().zip(keep).filter(|(_, k)| **k) {
            out.push(*f.stats, f.match_text, f.actions);
        }
        out
    }
}

/// Iterates a [`FlowTable`]'s flows with their text.
pub struct FlowIter<'a> {
    table: &'a FlowTable,
    inner: std::slice::Iter<'a, FlowStats>,
}

impl<'a> Iterator for FlowIter<'a> {
    type Item = Flow<'a>;
    fn next(&mut self) -> Option<Flow<'a>> {
        let stats = self.inner.next()?;
        Some(Flow {
            stats,
            match_text: self.table.span(stats.match_span),
            actions: stats.actions_span.map(|a| self.table.span(a)),
        })
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ExactSizeIterator for FlowIter<'_> {}

impl<'a> IntoIterator for &'a FlowTable {
    type Item = Flow<'a>;
    type IntoIter = FlowIter<'a>;
    fn into_iter(self) -> FlowIter<'a> {
        self.iter()
    }
}

/// Decodes flow-stats bodies into a [`FlowTable`], reusing its buffers from entry to entry.
#[derive(Default)]
pub struct FlowDecoder {
    fields: oxm::MatchFields,
    with_actions: bool,
}

impl FlowDecoder {
    pub fn new(with_actions: bool) -> Self {
        FlowDecoder {
            with_actions,
            ..FlowDecoder::default()
        }
    }

    /// Decodes every `ofp_flow_stats` in one multipart reply body. On error, the entries
    /// decoded before it stay in `out`.
    pub fn decode(&mut self, body: &[u8], out: &mut FlowTable) -> Result<(), DecodeError> {
        let with_actions = self.with_actions;
        let fields = &mut self.fields;
        for_each_flow_entry(body, fields, |h, fields, instructions| {
            // Write straight into the pool; roll back if the actions turn out malformed.
            let mark = out.text.len();
            format::format_match(fields, &mut out.text);
            let match_span = TextSpan {
                start: mark as u32,
                len: (out.text.len() - mark) as u32,
            };
            let actions_span = if with_actions {
                let start = out.text.len();
                if let Err(err) = actions::format_instructions(instructions, &mut out.text) {
                    out.text.truncate(mark);
                    return Err(err);
                }
                Some(TextSpan {
                    start: start as u32,
                    len: (out.text.len() - start) as u32,
                })
            } else {
                None
            };
            out.entries.push(FlowStats {
                table_id: h.table_id,
                priority: h.priority,
                idle_timeout: h.idle_timeout,
                hard_timeout: h.hard_timeout,
                flags: h.flags,
                cookie: h.cookie,
                packets: h.packets,
                bytes: h.bytes,
                duration_sec: h.duration_sec,
                duration_nsec: h.duration_nsec,
                match_span,
                actions_span,
            });
            Ok(())
        })
    }
}

/// The fixed part of an `ofp_flow_stats`.
struct EntryHeader {
    table_id: u8,
    priority: u16,
    idle_timeout: u16,
    hard_timeout: u16,
    flags: u16,
    cookie: u64,
    packets: u64,
    bytes: u64,
    duration_sec: u32,
    duration_nsec: u32,
}

/// Walks the `ofp_flow_stats` entries of a body: decodes each match into `fields` and hands
/// it, with the entry's header and raw instructions, to `f`.
fn for_each_flow_entry(
    body: &[u8],
    fields: &mut oxm::MatchFields,
    mut f: impl FnMut(&EntryHeader, &oxm::MatchFields, &[u8]) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    const FIXED: usize = 48;
    let mut r = Reader::new(body);
    while !r.is_empty() {
        let at = r.offset();
        let len = r.peek_u16("flow stats length")? as usize;
        check_entry_len("ofp_flow_stats", at, len, FIXED + 8)?;
        let mut e = r.sub(len, "ofp_flow_stats")?;
        e.skip(2, "length")?;
        let table_id = e.u8("table_id")?;
        e.skip(1, "pad")?;
        let duration_sec = e.u32("duration_sec")?;
        let duration_nsec = e.u32("duration_nsec")?;
        let priority = e.u16("priority")?;
        let idle_timeout = e.u16("idle_timeout")?;
        let hard_timeout = e.u16("hard_timeout")?;
        let flags = e.u16("flags")?;
        e.skip(4, "pad")?;
        let cookie = e.u64("cookie")?;
        let packets = e.u64("packet_count")?;
        let bytes = e.u64("byte_count")?;
        let header = EntryHeader {
            table_id,
            priority,
            idle_timeout,
            hard_timeout,
            flags,
            cookie,
            packets,
            bytes,
            duration_sec,
            duration_nsec,
        };

        let mat = e.offset();
        let match_type = e.u16("match type")?;
        let match_len = e.u16("match length")? as usize;
        if match_type != 1 {
            return Err(DecodeError::Invalid {
                what: "match type",
                offset: mat,
                detail: format!("{match_type} is not OXM (1)"),
            });
        }
        if match_len < 4 {
            return Err(DecodeError::BadLength {
                what: "ofp_match",
                offset: mat,
                len: match_len,
                reason: "shorter than its header",
            });
        }
        let mut oxms = e.sub(match_len - 4, "match fields")?;
        let padded = match_len.div_ceil(8) * 8;
        e.skip(padded - match_len, "match padding")?;
        fields.clear();
        oxm::decode_oxms_reader(&mut oxms, fields)?;
        let instructions = e.bytes(e.remaining(), "instructions")?;
        f(&header, fields, instructions)?;
    }
    Ok(())
}

/// A flow entry reduced to what packet classification needs: where it is, what it matches,
/// and which tables it sends packets on to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRule {
    pub table_id: u8,
    pub priority: u16,
    pub cookie: u64,
    /// Every matched field: (field, value, mask).
    pub fields: Vec<(oxm::Field, u128, u128)>,
    /// Fields we could not decode (the rule cannot be evaluated).
    pub unknown_fields: bool,
    /// Tables the packet continues in unconditionally, in order: `resubmit(,N)` in the
    /// apply-actions, then `goto_table`.
    pub next_tables: Vec<u8>,
}

/// Decodes flow-stats bodies into [`FlowRule`]s.
pub fn decode_flow_rules(body: &[u8], out: &mut Vec<FlowRule>) -> Result<(), DecodeError> {
    let mut fields = oxm::MatchFields::default();
    for_each_flow_entry(body, &mut fields, |h, fields, instructions| {
        out.push(FlowRule {
            table_id: h.table_id,
            priority: h.priority,
            cookie: h.cookie,
            fields: oxm::Field::ALL
                .iter()
                .filter_map(|&f| fields.get(f).map(|(v, m)| (f, v, m)))
                .collect(),
            unknown_fields: !fields.unknown.is_empty(),
            next_tables: actions::next_tables(instructions, h.table_id)?,
        });
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trip() {
        let h = hello(7);
        assert_eq!(h.len(), 16);
        let peer = parse_hello(&h);
        assert_eq!(
            peer,
            Ok(PeerHello {
                version: 4,
                bitmap: Some(1 << 4)
            })
        );
        assert!(peer.map(|p| p.supports_13()).unwrap_or(false));
        let only10 = PeerHello {
            version: 1,
            bitmap: Some(0b10),
        };
        assert!(!only10.supports_13());
        assert_eq!(only10.describe(), "1.0");
        // A HELLO without elements, version 1.5: 1.3 is fine.
        let bare = [6u8, 0, 0, 8, 0, 0, 0, 1];
        assert!(parse_hello(&bare).map(|p| p.supports_13()).unwrap_or(false));
    }

    #[test]
    fn requests_have_consistent_lengths() {
        for kind in [
            MultipartType::Flow,
            MultipartType::Table,
            MultipartType::PortStats,
            MultipartType::Group,
            MultipartType::GroupDesc,
            MultipartType::PortDesc,
        ] {
            let m = multipart_request(9, kind);
            let mut hdr = [0u8; 8];
            hdr.copy_from_slice(&m[..8]);
            let h = Header::parse(&hdr);
            assert_eq!(h.length as usize, m.len());
            assert_eq!(h.msg_type, msg_type::MULTIPART_REQUEST);
            assert_eq!(h.xid, 9);
            assert_eq!(u16::from_be_bytes([m[8], m[9]]), kind as u16);
        }
        assert_eq!(multipart_request(1, MultipartType::Flow).len(), 16 + 40);
    }

    #[test]
    fn group_stats_rejects_ragged_buckets() {
        let mut e = vec![0u8; 48];
        e[0..2].copy_from_slice(&48u16.to_be_bytes());
        let mut out = Vec::new();
        assert!(decode_group_stats(&e, &mut out).is_err());
        e[0..2].copy_from_slice(&56u16.to_be_bytes());
        e.resize(56, 0);
        assert_eq!(decode_group_stats(&e, &mut out), Ok(()));
        assert_eq!(out[0].buckets.len(), 1);
    }

    #[test]
    fn error_names() {
        let e = ErrorMsg { kind: 1, code: 2 };
        assert_eq!(e.to_string(), "BAD_REQUEST/BAD_MULTIPART (type 1, code 2)");
    }
}
