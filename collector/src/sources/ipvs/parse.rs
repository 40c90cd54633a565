//! Generic netlink, as IPVS speaks it: pure functions from bytes to values, and the few requests
//! the source sends. No I/O here; `netlink.rs` moves the bytes.
//!
//! Layout (all integers in the host's byte order unless noted):
//!
//! ```text
//! nlmsghdr   u32 len, u16 type, u16 flags, u32 seq, u32 pid        (16 bytes)
//! genlmsghdr u8 cmd, u8 version, u16 reserved                       (4 bytes)
//! attributes u16 nla_len, u16 nla_type, payload, padded to 4 bytes  (nested ones hold attributes)
//! ```
//!
//! IPVS ports are big-endian; addresses are 16 bytes (`union nf_inet_addr`) whatever the family.
//! The attribute numbers are those of `include/uapi/linux/ip_vs.h` and `genetlink.h`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const NLMSG_HDRLEN: usize = 16;
pub const GENL_HDRLEN: usize = 4;

pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLMSG_OVERRUN: u16 = 4;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_DUMP_INTR: u16 = 0x10;
pub const NLM_F_DUMP: u16 = 0x300;

/// The generic netlink controller's fixed family id.
pub const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;

/// The IPVS family's name, as `IPVS_GENL_NAME`.
pub const IPVS_FAMILY: &str = "IPVS";
const IPVS_GENL_VERSION: u8 = 1;
pub const IPVS_CMD_NEW_SERVICE: u8 = 1;
pub const IPVS_CMD_GET_SERVICE: u8 = 4;
pub const IPVS_CMD_NEW_DEST: u8 = 5;
pub const IPVS_CMD_GET_DEST: u8 = 8;

const IPVS_CMD_ATTR_SERVICE: u16 = 1;
const IPVS_CMD_ATTR_DEST: u16 = 2;

const IPVS_SVC_ATTR_AF: u16 = 1;
const IPVS_SVC_ATTR_PROTOCOL: u16 = 2;
const IPVS_SVC_ATTR_ADDR: u16 = 3;
const IPVS_SVC_ATTR_PORT: u16 = 4;
const IPVS_SVC_ATTR_FWMARK: u16 = 5;
const IPVS_SVC_ATTR_SCHED_NAME: u16 = 6;
const IPVS_SVC_ATTR_FLAGS: u16 = 7;
const IPVS_SVC_ATTR_TIMEOUT: u16 = 8;
const IPVS_SVC_ATTR_STATS: u16 = 10;
const IPVS_SVC_ATTR_STATS64: u16 = 12;

const IPVS_DEST_ATTR_ADDR: u16 = 1;
const IPVS_DEST_ATTR_PORT: u16 = 2;
const IPVS_DEST_ATTR_FWD_METHOD: u16 = 3;
const IPVS_DEST_ATTR_WEIGHT: u16 = 4;
const IPVS_DEST_ATTR_ACTIVE_CONNS: u16 = 7;
const IPVS_DEST_ATTR_INACT_CONNS: u16 = 8;
const IPVS_DEST_ATTR_PERSIST_CONNS: u16 = 9;
const IPVS_DEST_ATTR_STATS: u16 = 10;
const IPVS_DEST_ATTR_ADDR_FAMILY: u16 = 11;
const IPVS_DEST_ATTR_STATS64: u16 = 12;

const IPVS_STATS_ATTR_CONNS: u16 = 1;
const IPVS_STATS_ATTR_INPKTS: u16 = 2;
const IPVS_STATS_ATTR_OUTPKTS: u16 = 3;
const IPVS_STATS_ATTR_INBYTES: u16 = 4;
const IPVS_STATS_ATTR_OUTBYTES: u16 = 5;

/// Attribute type bits that are flags, not part of the type.
const NLA_TYPE_MASK: u16 = !(0x8000 | 0x4000);

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// What can be wrong with bytes from the kernel. Every decoder returns one of these instead of
/// panicking, whatever the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("netlink message truncated: {available} bytes left, a header needs 16")]
    ShortHeader { available: usize },
    #[error("netlink message claims {declared} bytes but {available} are left")]
    BadMessageLength { declared: usize, available: usize },
    #[error("generic netlink header missing from a {len}-byte message of type {msg_type}")]
    ShortGenlHeader { msg_type: u16, len: usize },
    #[error("attribute at offset {offset} claims {declared} bytes but {available} are left")]
    BadAttributeLength {
        offset: usize,
        declared: usize,
        available: usize,
    },
    #[error("attribute {name} has {len} bytes, expected {expected}")]
    AttributeSize {
        name: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("{what} message has no {attribute} attribute")]
    MissingAttribute {
        what: &'static str,
        attribute: &'static str,
    },
    #[error("unknown address family {af}")]
    UnknownFamily { af: u16 },
    #[error("error message of {len} bytes is too short for an errno")]
    ShortError { len: usize },
    #[error("reply has sequence number {got}, the request had {want}")]
    WrongSequence { got: u32, want: u32 },
    #[error("unexpected message type {msg_type} in a dump reply")]
    UnexpectedType { msg_type: u16 },
    #[error("unexpected generic netlink command {cmd} (expected {want})")]
    UnexpectedCommand { cmd: u8, want: u8 },
    #[error("the kernel interrupted the dump (the table changed while it was read)")]
    DumpInterrupted,
    #[error("the kernel reported a receive buffer overrun")]
    Overrun,
}

/// One netlink message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub msg_type: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
    /// Everything after the 16-byte header, up to the declared length.
    pub payload: &'a [u8],
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut x = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        x.copy_from_slice(s);
    }
    u16::from_ne_bytes(x)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        x.copy_from_slice(s);
    }
    u32::from_ne_bytes(x)
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The netlink messages in one datagram.
pub fn messages(buf: &[u8]) -> Messages<'_> {
    Messages { buf, failed: false }
}

pub struct Messages<'a> {
    buf: &'a [u8],
    failed: bool,
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() || self.failed {
            return None;
        }
        let fail = |s: &mut Self, e| {
            s.failed = true;
            Some(Err(e))
        };
        if self.buf.len() < NLMSG_HDRLEN {
            let available = self.buf.len();
            return fail(self, ParseError::ShortHeader { available });
        }
        let len = u32_at(self.buf, 0) as usize;
        if len < NLMSG_HDRLEN || len > self.buf.len() {
            let available = self.buf.len();
            return fail(
                self,
                ParseError::BadMessageLength {
                    declared: len,
                    available,
                },
            );
        }
        let msg = Message {
            msg_type: u16_at(self.buf, 4),
            flags: u16_at(self.buf, 6),
            seq: u32_at(self.buf, 8),
            pid: u32_at(self.buf, 12),
            payload: &self.buf[NLMSG_HDRLEN..len],
        };
        let next = align4(len).min(self.buf.len());
        self.buf = &self.buf[next..];
        Some(Ok(msg))
    }
}

/// One attribute: its type (flag bits cleared) and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    pub kind: u16,
    pub payload: &'a [u8],
}

/// The attributes in `buf` (a message body after its fixed header, or a nested attribute).
pub fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs {
        buf,
        offset: 0,
        failed: false,
    }
}

pub struct Attrs<'a> {
    buf: &'a [u8],
    offset: usize,
    failed: bool,
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<Attr<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.buf.get(self.offset..)?;
        if rest.is_empty() || self.failed {
            return None;
        }
        let len = if rest.len() >= 4 {
            usize::from(u16_at(rest, 0))
        } else {
            0
        };
        if rest.len() < 4 || len < 4 || len > rest.len() {
            self.failed = true;
            return Some(Err(ParseError::BadAttributeLength {
                offset: self.offset,
                declared: len,
                available: rest.len(),
            }));
        }
        let attr = Attr {
            kind: u16_at(rest, 2) & NLA_TYPE_MASK,
            payload: &rest[4..len],
        };
        self.offset += align4(len).min(rest.len());
        Some(Ok(attr))
    }
}

fn attr_u16(name: &'static str, p: &[u8]) -> Result<u16, ParseError> {
    if p.len() != 2 {
        return Err(ParseError::AttributeSize {
            name,
            len: p.len(),
            expected: 2,
        });
    }
    Ok(u16_at(p, 0))
}

fn attr_u32(name: &'static str, p: &[u8]) -> Result<u32, ParseError> {
    if p.len() != 4 {
        return Err(ParseError::AttributeSize {
            name,
            len: p.len(),
            expected: 4,
        });
    }
    Ok(u32_at(p, 0))
}

fn attr_u64(name: &'static str, p: &[u8]) -> Result<u64, ParseError> {
    let mut x = [0u8; 8];
    if p.len() != 8 {
        return Err(ParseError::AttributeSize {
            name,
            len: p.len(),
            expected: 8,
        });
    }
    x.copy_from_slice(p);
    Ok(u64::from_ne_bytes(x))
}

fn attr_be16(name: &'static str, p: &[u8]) -> Result<u16, ParseError> {
    attr_u16(name, p).map(u16::from_be)
}

/// A NUL-terminated string attribute (anything after the first NUL is ignored).
fn attr_string(p: &[u8]) -> String {
    let end = p.iter().position(|&b| b == 0).unwrap_or(p.len());
    String::from_utf8_lossy(&p[..end]).into_owned()
}

fn attr_addr(name: &'static str, af: u16, p: &[u8]) -> Result<IpAddr, ParseError> {
    match af {
        AF_INET => {
            let b: [u8; 4] =
                p.get(..4)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(ParseError::AttributeSize {
                        name,
                        len: p.len(),
                        expected: 4,
                    })?;
            Ok(IpAddr::V4(Ipv4Addr::from(b)))
        }
        AF_INET6 => {
            let b: [u8; 16] =
                p.get(..16)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(ParseError::AttributeSize {
                        name,
                        len: p.len(),
                        expected: 16,
                    })?;
            Ok(IpAddr::V6(Ipv6Addr::from(b)))
        }
        af => Err(ParseError::UnknownFamily { af }),
    }
}

/// The cumulative counters of a service or destination (the kernel's estimator folds the
/// per-CPU counters into these every 2 s).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub connections: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// `IPVS_*_ATTR_STATS64` (every counter 64 bits) or the older `IPVS_*_ATTR_STATS` (connections
/// and packets 32 bits, bytes 64).
fn parse_stats(p: &[u8], wide: bool) -> Result<Stats, ParseError> {
    let mut s = Stats::default();
    let num = |name, p: &[u8], thirty_two: bool| -> Result<u64, ParseError> {
        if thirty_two {
            attr_u32(name, p).map(u64::from)
        } else {
            attr_u64(name, p)
        }
    };
    for a in attrs(p) {
        let a = a?;
        match a.kind {
            IPVS_STATS_ATTR_CONNS => s.connections = num("stats conns", a.payload, !wide)?,
            IPVS_STATS_ATTR_INPKTS => s.packets_in = num("stats inpkts", a.payload, !wide)?,
            IPVS_STATS_ATTR_OUTPKTS => s.packets_out = num("stats outpkts", a.payload, !wide)?,
            IPVS_STATS_ATTR_INBYTES => s.bytes_in = num("stats inbytes", a.payload, false)?,
            IPVS_STATS_ATTR_OUTBYTES => s.bytes_out = num("stats outbytes", a.payload, false)?,
            // Rates (the estimator's averages) and padding.
            _ => {}
        }
    }
    Ok(s)
}

/// What identifies a virtual service to the kernel: a firewall mark, or protocol, address and
/// port; each within an address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKey {
    Address {
        af: u16,
        protocol: u16,
        addr: IpAddr,
        port: u16,
    },
    Fwmark {
        af: u16,
        mark: u32,
    },
}

impl ServiceKey {
    pub fn af(&self) -> u16 {
        match self {
            ServiceKey::Address { af, .. } | ServiceKey::Fwmark { af, .. } => *af,
        }
    }
}

/// A virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub key: ServiceKey,
    pub scheduler: String,
    pub flags: u32,
    /// Persistence timeout in seconds (0: not persistent).
    pub timeout: u32,
    pub stats: Stats,
}

/// A real server of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub addr: IpAddr,
    pub port: u16,
    /// `IP_VS_CONN_F_FWD_MASK` bits: 0 masquerading, 1 local, 2 tunnel, 3 direct routing.
    pub forward: u32,
    pub weight: i32,
    pub active_connections: u32,
    pub inactive_connections: u32,
    pub persistent_connections: u32,
    pub stats: Stats,
}

/// The generic netlink header of `msg`, checked to carry `want`; returns the attributes after it.
fn genl_body<'a>(msg: &Message<'a>, want: u8) -> Result<&'a [u8], ParseError> {
    if msg.payload.len() < GENL_HDRLEN {
        return Err(ParseError::ShortGenlHeader {
            msg_type: msg.msg_type,
            len: msg.payload.len(),
        });
    }
    let cmd = msg.payload[0];
    if cmd != want {
        return Err(ParseError::UnexpectedCommand { cmd, want });
    }
    Ok(&msg.payload[GENL_HDRLEN..])
}

/// One family of the controller's family dump: its name and id (`None` if either is missing).
pub fn parse_family(msg: &Message<'_>) -> Result<Option<(String, u16)>, ParseError> {
    // The controller answers GETFAMILY with NEWFAMILY (1).
    let body = genl_body(msg, 1)?;
    let (mut name, mut id) = (None, None);
    for a in attrs(body) {
        let a = a?;
        match a.kind {
            CTRL_ATTR_FAMILY_ID => id = Some(attr_u16("CTRL_ATTR_FAMILY_ID", a.payload)?),
            CTRL_ATTR_FAMILY_NAME => name = Some(attr_string(a.payload)),
            _ => {}
        }
    }
    Ok(name.zip(id))
}

/// A service from one `IPVS_CMD_NEW_SERVICE` message of a service dump.
pub fn parse_service(msg: &Message<'_>) -> Result<Service, ParseError> {
    let body = genl_body(msg, IPVS_CMD_NEW_SERVICE)?;
    let mut nested = None;
    for a in attrs(body) {
        let a = a?;
        if a.kind == IPVS_CMD_ATTR_SERVICE {
            nested = Some(a.payload);
        }
    }
    let nested = nested.ok_or(ParseError::MissingAttribute {
        what: "service",
        attribute: "IPVS_CMD_ATTR_SERVICE",
    })?;
    let (mut af, mut protocol, mut addr, mut port, mut fwmark) = (None, None, None, None, None);
    let mut svc = Service {
        key: ServiceKey::Fwmark { af: 0, mark: 0 },
        scheduler: String::new(),
        flags: 0,
        timeout: 0,
        stats: Stats::default(),
    };
    let mut stats32 = None;
    let mut stats64 = None;
    for a in attrs(nested) {
        let a = a?;
        match a.kind {
            IPVS_SVC_ATTR_AF => af = Some(attr_u16("IPVS_SVC_ATTR_AF", a.payload)?),
            IPVS_SVC_ATTR_PROTOCOL => {
                protocol = Some(attr_u16("IPVS_SVC_ATTR_PROTOCOL", a.payload)?)
            }
            IPVS_SVC_ATTR_ADDR => addr = Some(a.payload),
            IPVS_SVC_ATTR_PORT => port = Some(attr_be16("IPVS_SVC_ATTR_PORT", a.payload)?),
            IPVS_SVC_ATTR_FWMARK => fwmark = Some(attr_u32("IPVS_SVC_ATTR_FWMARK", a.payload)?),
            IPVS_SVC_ATTR_SCHED_NAME => svc.scheduler = attr_string(a.payload),
            IPVS_SVC_ATTR_FLAGS => {
                // struct ip_vs_flags { u32 flags; u32 mask; }
                if a.payload.len() != 8 {
                    return Err(ParseError::AttributeSize {
                        name: "IPVS_SVC_ATTR_FLAGS",
                        len: a.payload.len(),
                        expected: 8,
                    });
                }
                svc.flags = u32_at(a.payload, 0);
            }
            IPVS_SVC_ATTR_TIMEOUT => svc.timeout = attr_u32("IPVS_SVC_ATTR_TIMEOUT", a.payload)?,
            IPVS_SVC_ATTR_STATS => stats32 = Some(a.payload),
            IPVS_SVC_ATTR_STATS64 => stats64 = Some(a.payload),
            _ => {}
        }
    }
    let af = af.ok_or(ParseError::MissingAttribute {
        what: "service",
        attribute: "IPVS_SVC_ATTR_AF",
    })?;
    svc.key = match fwmark {
        Some(mark) if mark != 0 => {
            if af != AF_INET && af != AF_INET6 {
                return Err(ParseError::UnknownFamily { af });
            }
            ServiceKey::Fwmark { af, mark }
        }
        _ => {
            let missing = |attribute| ParseError::MissingAttribute {
                what: "service",
                attribute,
            };
            let addr = addr.ok_or(missing("IPVS_SVC_ATTR_ADDR"))?;
            ServiceKey::Address {
                af,
                protocol: protocol.ok_or(missing("IPVS_SVC_ATTR_PROTOCOL"))?,
                addr: attr_addr("IPVS_SVC_ATTR_ADDR", af, addr)?,
                port: port.ok_or(missing("IPVS_SVC_ATTR_PORT"))?,
            }
        }
    };
    svc.stats = match (stats64, stats32) {
        (Some(p), _) => parse_stats(p, true)?,
        (None, Some(p)) => parse_stats(p, false)?,
        (None, None) => Stats::default(),
    };
    Ok(svc)
}

/// A destination from one `IPVS_CMD_NEW_DEST` message of a destination dump; `service_af` is
/// its family unless the kernel says otherwise (`IPVS_DEST_ATTR_ADDR_FAMILY`, mixed-family
/// tunnels).
pub fn parse_destination(msg: &Message<'_>, service_af: u16) -> Result<Destination, ParseError> {
    let body = genl_body(msg, IPVS_CMD_NEW_DEST)?;
    let mut nested = None;
    for a in attrs(body) {
        let a = a?;
        if a.kind == IPVS_CMD_ATTR_DEST {
            nested = Some(a.payload);
        }
    }
    let nested = nested.ok_or(ParseError::MissingAttribute {
        what: "destination",
        attribute: "IPVS_CMD_ATTR_DEST",
    })?;
    let (mut addr, mut port, mut af) = (None, None, service_af);
    let mut d = Destination {
        addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        port: 0,
        forward: 0,
        weight: 0,
        active_connections: 0,
        inactive_connections: 0,
        persistent_connections: 0,
        stats: Stats::default(),
    };
    let (mut stats32, mut stats64) = (None, None);
    for a in attrs(nested) {
        let a = a?;
        let p = a.payload;
        match a.kind {
            IPVS_DEST_ATTR_ADDR => addr = Some(p),
            IPVS_DEST_ATTR_PORT => port = Some(attr_be16("IPVS_DEST_ATTR_PORT", p)?),
            IPVS_DEST_ATTR_FWD_METHOD => d.forward = attr_u32("IPVS_DEST_ATTR_FWD_METHOD", p)?,
            IPVS_DEST_ATTR_WEIGHT => {
                d.weight = attr_u32("IPVS_DEST_ATTR_WEIGHT", p)?.cast_signed();
            }
            IPVS_DEST_ATTR_ACTIVE_CONNS => {
                d.active_connections = attr_u32("IPVS_DEST_ATTR_ACTIVE_CONNS", p)?;
            }
            IPVS_DEST_ATTR_INACT_CONNS => {
                d.inactive_connections = attr_u32("IPVS_DEST_ATTR_INACT_CONNS", p)?;
            }
            IPVS_DEST_ATTR_PERSIST_CONNS => {
                d.persistent_connections = attr_u32("IPVS_DEST_ATTR_PERSIST_CONNS", p)?;
            }
            IPVS_DEST_ATTR_ADDR_FAMILY => af = attr_u16("IPVS_DEST_ATTR_ADDR_FAMILY", p)?,
            IPVS_DEST_ATTR_STATS => stats32 = Some(p),
            IPVS_DEST_ATTR_STATS64 => stats64 = Some(p),
            _ => {}
        }
    }
    let missing = |attribute| ParseError::MissingAttribute {
        what: "destination",
        attribute,
    };
    d.addr = attr_addr(
        "IPVS_DEST_ATTR_ADDR",
        af,
        addr.ok_or(missing("IPVS_DEST_ATTR_ADDR"))?,
    )?;
    d.port = port.ok_or(missing("IPVS_DEST_ATTR_PORT"))?;
    d.stats = match (stats64, stats32) {
        (Some(p), _) => parse_stats(p, true)?,
        (None, Some(p)) => parse_stats(p, false)?,
        (None, None) => Stats::default(),
    };
    Ok(d)
}

/// What one message of a dump reply means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpItem<'a> {
    /// A data message of the dump.
    Data(Message<'a>),
    /// The end of the dump.
    Done,
    /// The kernel refused the request: a positive errno.
    Error(i32),
}

/// Classifies one message of the reply to request `seq`.
pub fn dump_item<'a>(msg: Message<'a>, seq: u32) -> Result<Option<DumpItem<'a>>, ParseError> {
    if msg.seq != seq {
        return Err(ParseError::WrongSequence {
            got: msg.seq,
            want: seq,
        });
    }
    if msg.flags & NLM_F_DUMP_INTR != 0 {
        return Err(ParseError::DumpInterrupted);
    }
    match msg.msg_type {
        NLMSG_NOOP => Ok(None),
        NLMSG_OVERRUN => Err(ParseError::Overrun),
        NLMSG_ERROR | NLMSG_DONE => {
            // NLMSG_ERROR carries a negative errno (0 is an acknowledgement); NLMSG_DONE carries
            // 0, or a negative errno when the dump itself failed.
            let len = msg.payload.len();
            let code = match msg.payload.get(..4) {
                Some(_) => u32_at(msg.payload, 0).cast_signed(),
                None if msg.msg_type == NLMSG_DONE => 0,
                None => return Err(ParseError::ShortError { len }),
            };
            Ok(Some(if code < 0 {
                DumpItem::Error(code.saturating_neg())
            } else {
                DumpItem::Done
            }))
        }
        t if t < 0x10 => Err(ParseError::UnexpectedType { msg_type: t }),
        _ => Ok(Some(DumpItem::Data(msg))),
    }
}

fn push_header(out: &mut Vec<u8>, msg_type: u16, flags: u16, seq: u32) {
    out.extend_from_slice(&0u32.to_ne_bytes()); // length, patched by `finish`
    out.extend_from_slice(&msg_type.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
}

fn push_genl(out: &mut Vec<u8>, cmd: u8, version: u8) {
    out.extend_from_slice(&[cmd, version, 0, 0]);
}

fn push_attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(align4(out.len()), 0);
}

fn finish(mut out: Vec<u8>) -> Vec<u8> {
    let len = (out.len() as u32).to_ne_bytes();
    out[..4].copy_from_slice(&len);
    out
}

/// A dump of every generic netlink family. The source looks "IPVS" up in it rather than asking
/// for the family by name: a lookup by name makes the kernel load `ip_vs` (its module alias is
/// `net-pf-16-proto-16-family-IPVS`), and a collector must not switch IPVS on by looking.
pub fn family_dump_request(seq: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(20);
    push_header(&mut out, GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_DUMP, seq);
    push_genl(&mut out, CTRL_CMD_GETFAMILY, 1);
    finish(out)
}

/// A lookup of one family by name: what `ipvsadm` and libnl do. Not used by the source (it
/// autoloads the module); the lab uses it to show that the autoload is real.
pub fn family_by_name_request(seq: u32, name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    push_header(&mut out, GENL_ID_CTRL, NLM_F_REQUEST, seq);
    push_genl(&mut out, CTRL_CMD_GETFAMILY, 1);
    let mut z = name.as_bytes().to_vec();
    z.push(0);
    push_attr(&mut out, CTRL_ATTR_FAMILY_NAME, &z);
    finish(out)
}

/// A dump of every virtual service.
pub fn services_request(family: u16, seq: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(20);
    push_header(&mut out, family, NLM_F_REQUEST | NLM_F_DUMP, seq);
    push_genl(&mut out, IPVS_CMD_GET_SERVICE, IPVS_GENL_VERSION);
    finish(out)
}

/// A dump of the destinations of the service `key`.
pub fn destinations_request(family: u16, seq: u32, key: &ServiceKey) -> Vec<u8> {
    let mut nested = Vec::with_capacity(48);
    push_attr(&mut nested, IPVS_SVC_ATTR_AF, &key.af().to_ne_bytes());
    match key {
        ServiceKey::Fwmark { mark, .. } => {
            push_attr(&mut nested, IPVS_SVC_ATTR_FWMARK, &mark.to_ne_bytes());
        }
        ServiceKey::Address {
            protocol,
            addr,
            port,
            ..
        } => {
            push_attr(&mut nested, IPVS_SVC_ATTR_PROTOCOL, &protocol.to_ne_bytes());
            let mut raw = [0u8; 16];
            match addr {
                IpAddr::V4(a) => raw[..4].copy_from_slice(&a.octets()),
                IpAddr::V6(a) => raw.copy_from_slice(&a.octets()),
            }
            push_attr(&mut nested, IPVS_SVC_ATTR_ADDR, &raw);
            push_attr(&mut nested, IPVS_SVC_ATTR_PORT, &port.to_be_bytes());
        }
    }
    let mut out = Vec::with_capacity(24 + nested.len());
    push_header(&mut out, family, NLM_F_REQUEST | NLM_F_DUMP, seq);
    push_genl(&mut out, IPVS_CMD_GET_DEST, IPVS_GENL_VERSION);
    push_attr(&mut out, 0x8000 | IPVS_CMD_ATTR_SERVICE, &nested);
    finish(out)
}

/// Builders for replies as the kernel writes them, for tests here and in the lab.
pub mod build {
    use super::*;

    /// A whole message: header, generic netlink header, attributes.
    pub fn message(msg_type: u16, flags: u16, seq: u32, cmd: u8, attrs: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push_header(&mut out, msg_type, flags, seq);
        push_genl(&mut out, cmd, 1);
        out.extend_from_slice(attrs);
        finish(out)
    }

    /// `NLMSG_DONE` (or, with a negative `code`, a failed dump).
    pub fn done(seq: u32, code: i32) -> Vec<u8> {
        let mut out = Vec::new();
        push_header(&mut out, NLMSG_DONE, NLM_F_MULTI, seq);
        out.extend_from_slice(&code.to_ne_bytes());
        finish(out)
    }

    /// `NLMSG_ERROR` with `-errno` and the (empty) request header.
    pub fn error(seq: u32, errno: i32) -> Vec<u8> {
        let mut out = Vec::new();
        push_header(&mut out, NLMSG_ERROR, 0, seq);
        out.extend_from_slice(&(-errno).to_ne_bytes());
        out.extend_from_slice(&[0u8; 16]);
        finish(out)
    }

    pub fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push_attr(&mut out, kind, payload);
        out
    }

    pub fn stats64(s: &Stats) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in [
            (IPVS_STATS_ATTR_CONNS, s.connections),
            (IPVS_STATS_ATTR_INPKTS, s.packets_in),
            (IPVS_STATS_ATTR_OUTPKTS, s.packets_out),
            (IPVS_STATS_ATTR_INBYTES, s.bytes_in),
            (IPVS_STATS_ATTR_OUTBYTES, s.bytes_out),
        ] {
            push_attr(&mut out, k, &v.to_ne_bytes());
        }
        out
    }

    /// A service message as `ip_vs_genl_fill_service` writes it.
    pub fn service(seq: u32, svc: &Service) -> Vec<u8> {
        let mut n = Vec::new();
        push_attr(&mut n, IPVS_SVC_ATTR_AF, &svc.key.af().to_ne_bytes());
        match svc.key {
            ServiceKey::Fwmark { mark, .. } => {
                push_attr(&mut n, IPVS_SVC_ATTR_FWMARK, &mark.to_ne_bytes())
            }
            ServiceKey::Address {
                protocol,
                addr,
                port,
                ..
            } => {
                push_attr(&mut n, IPVS_SVC_ATTR_PROTOCOL, &protocol.to_ne_bytes());
                push_attr(&mut n, IPVS_SVC_ATTR_ADDR, &raw_addr(addr));
                push_attr(&mut n, IPVS_SVC_ATTR_PORT, &port.to_be_bytes());
            }
        }
        let mut sched = svc.scheduler.as_bytes().to_vec();
        sched.push(0);
        push_attr(&mut n, IPVS_SVC_ATTR_SCHED_NAME, &sched);
        let mut flags = svc.flags.to_ne_bytes().to_vec();
        flags.extend_from_slice(&u32::MAX.to_ne_bytes());
        push_attr(&mut n, IPVS_SVC_ATTR_FLAGS, &flags);
        push_attr(&mut n, IPVS_SVC_ATTR_TIMEOUT, &svc.timeout.to_ne_bytes());
        push_attr(&mut n, 9, &u32::MAX.to_ne_bytes()); // netmask
        push_attr(&mut n, 0x8000 | IPVS_SVC_ATTR_STATS64, &stats64(&svc.stats));
        message(
            0x20,
            NLM_F_MULTI,
            seq,
            IPVS_CMD_NEW_SERVICE,
            &attr(0x8000 | IPVS_CMD_ATTR_SERVICE, &n),
        )
    }

    /// A destination message as `ip_vs_genl_fill_dest` writes it.
    pub fn destination(seq: u32, af: u16, d: &Destination) -> Vec<u8> {
        let mut n = Vec::new();
        push_attr(&mut n, IPVS_DEST_ATTR_ADDR, &raw_addr(d.addr));
        push_attr(&mut n, IPVS_DEST_ATTR_PORT, &d.port.to_be_bytes());
        push_attr(&mut n, IPVS_DEST_ATTR_FWD_METHOD, &d.forward.to_ne_bytes());
        push_attr(&mut n, IPVS_DEST_ATTR_WEIGHT, &d.weight.to_ne_bytes());
        push_attr(
            &mut n,
            IPVS_DEST_ATTR_ACTIVE_CONNS,
            &d.active_connections.to_ne_bytes(),
        );
        push_attr(
            &mut n,
            IPVS_DEST_ATTR_INACT_CONNS,
            &d.inactive_connections.to_ne_bytes(),
        );
        push_attr(
            &mut n,
            IPVS_DEST_ATTR_PERSIST_CONNS,
            &d.persistent_connections.to_ne_bytes(),
        );
        push_attr(&mut n, IPVS_DEST_ATTR_ADDR_FAMILY, &af.to_ne_bytes());
        push_attr(&mut n, 0x8000 | IPVS_DEST_ATTR_STATS64, &stats64(&d.stats));
        message(
            0x20,
            NLM_F_MULTI,
            seq,
            IPVS_CMD_NEW_DEST,
            &attr(0x8000 | IPVS_CMD_ATTR_DEST, &n),
        )
    }

    pub fn raw_addr(addr: IpAddr) -> [u8; 16] {
        let mut raw = [0u8; 16];
        match addr {
            IpAddr::V4(a) => raw[..4].copy_from_slice(&a.octets()),
            IpAddr::V6(a) => raw.copy_from_slice(&a.octets()),
        }
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    fn sample_service() -> Service {
        Service {
            key: ServiceKey::Address {
                af: AF_INET,
                protocol: 6,
                addr: IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1)),
                port: 80,
            },
            scheduler: "rr".into(),
            flags: 2,
            timeout: 0,
            stats: Stats {
                connections: 7,
                packets_in: 70,
                packets_out: 50,
                bytes_in: 1 << 40,
                bytes_out: 12345,
            },
        }
    }

    fn sample_destination() -> Destination {
        Destination {
            addr: IpAddr::V6("fd00::2".parse().unwrap_or(Ipv6Addr::LOCALHOST)),
            port: 8080,
            forward: 0,
            weight: 3,
            active_connections: 2,
            inactive_connections: 5,
            persistent_connections: 0,
            stats: Stats {
                connections: 7,
                packets_in: u64::from(u32::MAX) + 1,
                packets_out: 1,
                bytes_in: 2,
                bytes_out: 3,
            },
        }
    }

    fn only(buf: &[u8]) -> Message<'_> {
        let mut it = messages(buf);
        let m = it.next().and_then(Result::ok);
        assert!(it.next().is_none());
        m.unwrap_or_else(|| panic!("no message in {buf:?}"))
    }

    #[test]
    fn service_round_trip() {
        for svc in [
            sample_service(),
            Service {
                key: ServiceKey::Fwmark {
                    af: AF_INET6,
                    mark: 260,
                },
                scheduler: "wrr".into(),
                flags: 3,
                timeout: 300,
                stats: Stats::default(),
            },
            Service {
                key: ServiceKey::Address {
                    af: AF_INET6,
                    protocol: 132,
                    addr: IpAddr::V6(Ipv6Addr::new(0xfd00, 0x96, 0, 0, 0, 0, 0, 1)),
                    port: 65535,
                },
                scheduler: String::new(),
                flags: 0,
                timeout: 0,
                stats: Stats::default(),
            },
        ] {
            let bytes = service(9, &svc);
            assert_eq!(parse_service(&only(&bytes)), Ok(svc));
        }
    }

    #[test]
    fn destination_round_trip_and_family_override() {
        let d = sample_destination();
        let bytes = destination(1, AF_INET6, &d);
        // The destination says AF_INET6 even though the service is IPv4 (a mixed-family tunnel).
        assert_eq!(parse_destination(&only(&bytes), AF_INET), Ok(d));
    }

    #[test]
    fn old_32_bit_stats_are_read_when_there_is_no_stats64() {
        let mut st = Vec::new();
        st.extend(attr(IPVS_STATS_ATTR_CONNS, &5u32.to_ne_bytes()));
        st.extend(attr(IPVS_STATS_ATTR_INPKTS, &6u32.to_ne_bytes()));
        st.extend(attr(IPVS_STATS_ATTR_OUTPKTS, &7u32.to_ne_bytes()));
        st.extend(attr(IPVS_STATS_ATTR_INBYTES, &8u64.to_ne_bytes()));
        st.extend(attr(IPVS_STATS_ATTR_OUTBYTES, &9u64.to_ne_bytes()));
        st.extend(attr(IPVS_STATS_ATTR_CONNS + 5, &1u32.to_ne_bytes())); // cps: ignored
        let mut n = Vec::new();
        n.extend(attr(IPVS_SVC_ATTR_AF, &AF_INET.to_ne_bytes()));
        n.extend(attr(IPVS_SVC_ATTR_FWMARK, &1u32.to_ne_bytes()));
        n.extend(attr(0x8000 | IPVS_SVC_ATTR_STATS, &st));
        let bytes = message(
            0x20,
            NLM_F_MULTI,
            1,
            IPVS_CMD_NEW_SERVICE,
            &attr(0x8000 | IPVS_CMD_ATTR_SERVICE, &n),
        );
        let svc = parse_service(&only(&bytes)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            svc.stats,
            Stats {
                connections: 5,
                packets_in: 6,
                packets_out: 7,
                bytes_in: 8,
                bytes_out: 9
            }
        );
        assert_eq!(
            svc.key,
            ServiceKey::Fwmark {
                af: AF_INET,
                mark: 1
            }
        );
    }

    #[test]
    fn dump_items_errors_and_sequence() {
        let done = done(4, 0);
        assert_eq!(dump_item(only(&done), 4), Ok(Some(DumpItem::Done)));
        assert_eq!(
            dump_item(only(&done), 5),
            Err(ParseError::WrongSequence { got: 4, want: 5 })
        );
        let failed = super::build::done(4, -22);
        assert_eq!(dump_item(only(&failed), 4), Ok(Some(DumpItem::Error(22))));
        let err = error(4, 1);
        assert_eq!(dump_item(only(&err), 4), Ok(Some(DumpItem::Error(1))));
        let mut short = error(4, 1);
        short.truncate(18);
        short[..4].copy_from_slice(&18u32.to_ne_bytes());
        assert_eq!(
            dump_item(only(&short), 4),
            Err(ParseError::ShortError { len: 2 })
        );
        let mut intr = service(4, &sample_service());
        intr[6] |= NLM_F_DUMP_INTR as u8;
        assert_eq!(dump_item(only(&intr), 4), Err(ParseError::DumpInterrupted));
    }

    #[test]
    fn several_messages_in_one_datagram() {
        let mut buf = service(1, &sample_service());
        buf.extend(destination(1, AF_INET6, &sample_destination()));
        buf.extend(done(1, 0));
        let msgs: Vec<_> = messages(&buf).collect();
        assert_eq!(msgs.len(), 3);
        assert!(msgs.iter().all(Result::is_ok));
    }

    #[test]
    fn malformed_lengths_are_errors() {
        let good = service(1, &sample_service());
        // A header that claims more than there is.
        let mut long = good.clone();
        long[..4].copy_from_slice(&(good.len() as u32 + 4).to_ne_bytes());
        assert!(matches!(
            messages(&long).next(),
            Some(Err(ParseError::BadMessageLength { .. }))
        ));
        // A header that claims less than a header.
        let mut tiny = good.clone();
        tiny[..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(matches!(
            messages(&tiny).next(),
            Some(Err(ParseError::BadMessageLength { declared: 3, .. }))
        ));
        // An attribute that overruns its message.
        let mut bad_attr = good.clone();
        let at = NLMSG_HDRLEN + GENL_HDRLEN;
        bad_attr[at..at + 2].copy_from_slice(&0xfff0u16.to_ne_bytes());
        assert!(matches!(
            parse_service(&only(&bad_attr)),
            Err(ParseError::BadAttributeLength { .. })
        ));
        // A port of three bytes.
        let mut n = Vec::new();
        n.extend(attr(IPVS_SVC_ATTR_AF, &AF_INET.to_ne_bytes()));
        n.extend(attr(IPVS_SVC_ATTR_PROTOCOL, &6u16.to_ne_bytes()));
        n.extend(attr(IPVS_SVC_ATTR_ADDR, &[10, 0, 0, 1]));
        n.extend(attr(IPVS_SVC_ATTR_PORT, &[0, 80, 0]));
        let bytes = message(
            0x20,
            0,
            1,
            IPVS_CMD_NEW_SERVICE,
            &attr(IPVS_CMD_ATTR_SERVICE, &n),
        );
        assert_eq!(
            parse_service(&only(&bytes)),
            Err(ParseError::AttributeSize {
                name: "IPVS_SVC_ATTR_PORT",
                len: 3,
                expected: 2
            })
        );
        // An unknown family.
        let mut n = Vec::new();
        n.extend(attr(IPVS_SVC_ATTR_AF, &7u16.to_ne_bytes()));
        n.extend(attr(IPVS_SVC_ATTR_PROTOCOL, &6u16.to_ne_bytes()));
        n.extend(attr(IPVS_SVC_ATTR_ADDR, &[0; 16]));
        n.extend(attr(IPVS_SVC_ATTR_PORT, &80u16.to_be_bytes()));
        let bytes = message(0x20, 0, 1, 1, &attr(IPVS_CMD_ATTR_SERVICE, &n));
        assert_eq!(
            parse_service(&only(&bytes)),
            Err(ParseError::UnknownFamily { af: 7 })
        );
        // No nested service at all, and the wrong command.
        let bytes = message(0x20, 0, 1, IPVS_CMD_NEW_SERVICE, &[]);
        assert!(matches!(
            parse_service(&only(&bytes)),
            Err(ParseError::MissingAttribute { .. })
        ));
        let bytes = message(0x20, 0, 1, IPVS_CMD_NEW_DEST, &[]);
        assert_eq!(
            parse_service(&only(&bytes)),
            Err(ParseError::UnexpectedCommand { cmd: 5, want: 1 })
        );
    }

    #[test]
    fn every_truncation_and_byte_flip_is_handled() {
        let mut buf = service(1, &sample_service());
        buf.extend(destination(1, AF_INET6, &sample_destination()));
        buf.extend(done(1, 0));
        let decode = |b: &[u8]| {
            for m in messages(b) {
                let Ok(m) = m else { continue };
                if let Ok(Some(DumpItem::Data(m))) = dump_item(m, 1) {
                    let _ = parse_service(&m);
                    let _ = parse_destination(&m, AF_INET);
                    let _ = parse_family(&m);
                }
            }
        };
        for cut in 0..buf.len() {
            decode(&buf[..cut]);
            // A cut inside the first message is always an error, never a silent success.
            if cut < service(1, &sample_service()).len() {
                assert!(
                    messages(&buf[..cut]).all(|m| m.is_err()),
                    "cut at {cut} decoded"
                );
            }
        }
        for i in 0..buf.len() {
            for bit in [0x01u8, 0x80, 0xff] {
                let mut b = buf.clone();
                b[i] ^= bit;
                decode(&b);
            }
        }
    }

    #[test]
    fn requests_are_well_formed() {
        let req = destinations_request(0x22, 7, &sample_service().key);
        let m = only(&req);
        assert_eq!((m.msg_type, m.seq), (0x22, 7));
        assert_eq!(m.flags, NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(m.payload[0], IPVS_CMD_GET_DEST);
        let nested: Vec<_> = attrs(&m.payload[GENL_HDRLEN..])
            .filter_map(Result::ok)
            .collect();
        assert_eq!(nested.len(), 1);
        assert_eq!(nested[0].kind, IPVS_CMD_ATTR_SERVICE);
        let inner: Vec<u16> = attrs(nested[0].payload)
            .filter_map(Result::ok)
            .map(|a| a.kind)
            .collect();
        assert_eq!(
            inner,
            vec![
                IPVS_SVC_ATTR_AF,
                IPVS_SVC_ATTR_PROTOCOL,
                IPVS_SVC_ATTR_ADDR,
                IPVS_SVC_ATTR_PORT
            ]
        );
        let fw = destinations_request(
            0x22,
            8,
            &ServiceKey::Fwmark {
                af: AF_INET,
                mark: 9,
            },
        );
        assert_eq!(only(&fw).payload.len(), GENL_HDRLEN + 4 + 8 + 8);
        let fam = family_dump_request(3);
        assert_eq!(only(&fam).msg_type, GENL_ID_CTRL);
        assert_eq!(family_by_name_request(3, "IPVS").len(), 16 + 4 + 4 + 8);
        assert_eq!(services_request(0x22, 1).len(), 20);
    }

    #[test]
    fn family_from_controller_message() {
        let mut a = attr(CTRL_ATTR_FAMILY_ID, &0x23u16.to_ne_bytes());
        a.extend(attr(CTRL_ATTR_FAMILY_NAME, b"IPVS\0"));
        a.extend(attr(3, &1u32.to_ne_bytes()));
        let bytes = message(GENL_ID_CTRL, NLM_F_MULTI, 1, 1, &a);
        assert_eq!(
            parse_family(&only(&bytes)),
            Ok(Some(("IPVS".to_owned(), 0x23)))
        );
        let bytes = message(GENL_ID_CTRL, NLM_F_MULTI, 1, 1, &attr(2, b"nl80211\0"));
        assert_eq!(parse_family(&only(&bytes)), Ok(None));
    }
}
