//! Netlink framing as pure functions: the messages of a datagram, the attributes of a message
//! body, what a message of a reply means, and requests. No I/O here; `socket.rs` moves bytes.
//!
//! ```text
//! nlmsghdr   u32 len, u16 type, u16 flags, u32 seq, u32 pid        (16 bytes)
//! body       a family's fixed header (genlmsghdr, ifinfomsg, nfgenmsg, ...), then attributes
//! attribute  u16 nla_len, u16 nla_type, payload, padded to 4 bytes  (nested ones hold attributes)
//! ```
//!
//! Every length in a datagram is the peer's: each is checked against what is left before it is
//! used, and a bad one is a [`FrameError`], never a panic or an out-of-bounds slice.

use super::FrameError;

pub const NLMSG_HDRLEN: usize = 16;

pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLMSG_OVERRUN: u16 = 4;
/// Message types below this are netlink's own (`NLMSG_MIN_TYPE`).
pub const NLMSG_MIN_TYPE: u16 = 0x10;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP_INTR: u16 = 0x10;
pub const NLM_F_DUMP: u16 = 0x300;

/// Set on an attribute that holds attributes.
pub const NLA_F_NESTED: u16 = 0x8000;
/// Set on an attribute whose payload is big-endian.
pub const NLA_F_NET_BYTEORDER: u16 = 0x4000;
/// Attribute type bits that are the type, not flags.
pub const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);

/// The only version of the netfilter netlink header (`nfgenmsg.version`).
pub const NFNETLINK_V0: u8 = 0;

/// The netfilter netlink header of a message (`struct nfgenmsg`, 4 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NfGenMsg {
    pub family: u8,
    pub version: u8,
    /// Big-endian on the wire; here in host order (ctnetlink's per-CPU statistics put the CPU
    /// number here).
    pub res_id: u16,
}

/// A netfilter netlink message's header and the attributes' bytes after it.
pub fn nfgenmsg<'a>(msg: &Message<'a>) -> Result<(NfGenMsg, &'a [u8]), FrameError> {
    let p = msg.payload;
    if p.len() < 4 {
        return Err(FrameError::ShortNfgenHeader {
            msg_type: msg.msg_type,
            len: p.len(),
        });
    }
    Ok((
        NfGenMsg {
            family: p[0],
            version: p[1],
            res_id: u16::from_be_bytes([p[2], p[3]]),
        },
        &p[4..],
    ))
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

pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut x = [0u8; 2];
    if let Some(s) = b.get(at..at.saturating_add(2)) {
        x.copy_from_slice(s);
    }
    u16::from_ne_bytes(x)
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    if let Some(s) = b.get(at..at.saturating_add(4)) {
        x.copy_from_slice(s);
    }
    u32::from_ne_bytes(x)
}

pub(crate) const fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

/// The netlink messages in one datagram. After the first error the iterator ends.
pub fn messages(buf: &[u8]) -> Messages<'_> {
    Messages { buf, failed: false }
}

pub struct Messages<'a> {
    buf: &'a [u8],
    failed: bool,
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() || self.failed {
            return None;
        }
        let available = self.buf.len();
        if available < NLMSG_HDRLEN {
            self.failed = true;
            return Some(Err(FrameError::ShortHeader { available }));
        }
        let len = u32_at(self.buf, 0) as usize;
        if len < NLMSG_HDRLEN || len > available {
            self.failed = true;
            return Some(Err(FrameError::BadMessageLength {
                declared: len,
                available,
            }));
        }
        let msg = Message {
            msg_type: u16_at(self.buf, 4),
            flags: u16_at(self.buf, 6),
            seq: u32_at(self.buf, 8),
            pid: u32_at(self.buf, 12),
            payload: &self.buf[NLMSG_HDRLEN..len],
        };
        let next = align4(len).min(available);
        self.buf = &self.buf[next..];
        Some(Ok(msg))
    }
}

/// One attribute: its type (flag bits cleared) and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    pub kind: u16,
    /// `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER` as the peer set them.
    pub flags: u16,
    pub payload: &'a [u8],
}

impl<'a> Attr<'a> {
    fn sized<const N: usize>(&self, name: &'static str) -> Result<[u8; N], FrameError> {
        self.payload
            .try_into()
            .map_err(|_| FrameError::AttributeSize {
                name,
                len: self.payload.len(),
                expected: N,
            })
    }

    /// A `u8` attribute; `name` says which in an error.
    pub fn u8(&self, name: &'static str) -> Result<u8, FrameError> {
        self.sized::<1>(name).map(|b| b[0])
    }

    /// A host-order `u16` attribute.
    pub fn u16(&self, name: &'static str) -> Result<u16, FrameError> {
        self.sized(name).map(u16::from_ne_bytes)
    }

    /// A host-order `u32` attribute.
    pub fn u32(&self, name: &'static str) -> Result<u32, FrameError> {
        self.sized(name).map(u32::from_ne_bytes)
    }

    /// A host-order `u64` attribute.
    pub fn u64(&self, name: &'static str) -> Result<u64, FrameError> {
        self.sized(name).map(u64::from_ne_bytes)
    }

    /// A big-endian `u16` attribute (ports).
    pub fn be16(&self, name: &'static str) -> Result<u16, FrameError> {
        self.sized(name).map(u16::from_be_bytes)
    }

    /// A big-endian `u32` attribute.
    pub fn be32(&self, name: &'static str) -> Result<u32, FrameError> {
        self.sized(name).map(u32::from_be_bytes)
    }

    /// A big-endian `u64` attribute (ctnetlink counters).
    pub fn be64(&self, name: &'static str) -> Result<u64, FrameError> {
        self.sized(name).map(u64::from_be_bytes)
    }

    /// A NUL-terminated string attribute (anything after the first NUL is ignored; bytes that
    /// are not UTF-8 are replaced).
    pub fn string(&self) -> String {
        let end = self
            .payload
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.payload.len());
        String::from_utf8_lossy(&self.payload[..end]).into_owned()
    }

    /// The attributes nested in this one.
    pub fn nested(&self) -> Attrs<'a> {
        attrs(self.payload)
    }
}

/// The attributes in `buf` (a message body after its fixed header, or a nested attribute).
/// After the first error the iterator ends.
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
    type Item = Result<Attr<'a>, FrameError>;

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
            return Some(Err(FrameError::BadAttributeLength {
                offset: self.offset,
                declared: len,
                available: rest.len(),
            }));
        }
        let raw = u16_at(rest, 2);
        let attr = Attr {
            kind: raw & NLA_TYPE_MASK,
            flags: raw & !NLA_TYPE_MASK,
            payload: &rest[4..len],
        };
        self.offset += align4(len).min(rest.len());
        Some(Ok(attr))
    }
}

/// What one message of a reply means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpItem<'a> {
    /// A data message.
    Data(Message<'a>),
    /// The end of a dump, or an acknowledgement (`NLMSG_ERROR` with 0).
    Done,
    /// The kernel refused the request: a positive errno.
    Error(i32),
}

/// Classifies one message of the reply to request `seq` (`None`: `NLMSG_NOOP`, skip it).
pub fn dump_item<'a>(msg: Message<'a>, seq: u32) -> Result<Option<DumpItem<'a>>, FrameError> {
    if msg.seq != seq {
        return Err(FrameError::WrongSequence {
            got: msg.seq,
            want: seq,
        });
    }
    if msg.flags & NLM_F_DUMP_INTR != 0 {
        return Err(FrameError::DumpInterrupted);
    }
    match msg.msg_type {
        NLMSG_NOOP => Ok(None),
        NLMSG_OVERRUN => Err(FrameError::Overrun),
        NLMSG_ERROR | NLMSG_DONE => {
            // NLMSG_ERROR carries a negative errno (0 is an acknowledgement); NLMSG_DONE carries
            // 0, or a negative errno when the dump itself failed.
            let len = msg.payload.len();
            let code = match msg.payload.get(..4) {
                Some(_) => u32_at(msg.payload, 0).cast_signed(),
                None if msg.msg_type == NLMSG_DONE => 0,
                None => return Err(FrameError::ShortError { len }),
            };
            Ok(Some(if code < 0 {
                DumpItem::Error(code.saturating_neg())
            } else {
                DumpItem::Done
            }))
        }
        t if t < NLMSG_MIN_TYPE => Err(FrameError::UnexpectedType { msg_type: t }),
        _ => Ok(Some(DumpItem::Data(msg))),
    }
}

/// Appends one attribute (padded to 4 bytes) to `out`. Attributes are built by this crate from
/// fixed-size values; a payload past 65,531 bytes cannot be framed and gets a length the kernel
/// refuses (`EINVAL`), never a silently cut one.
pub fn push_attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = u16::try_from(4 + payload.len()).unwrap_or(0);
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(align4(out.len()), 0);
}

/// A request being built: the netlink header, then whatever the family puts after it.
#[derive(Debug, Clone)]
pub struct Request {
    buf: Vec<u8>,
}

impl Request {
    /// A message of type `msg_type` (a family id for generic netlink) with `flags`
    /// (`NLM_F_REQUEST` is added) and sequence number `seq`.
    pub fn new(msg_type: u16, flags: u16, seq: u32) -> Request {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `finish`
        buf.extend_from_slice(&msg_type.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        Request { buf }
    }

    /// A dump request (`NLM_F_REQUEST | NLM_F_DUMP`).
    pub fn dump(msg_type: u16, seq: u32) -> Request {
        Request::new(msg_type, NLM_F_DUMP, seq)
    }

    /// The generic netlink header.
    pub fn genl(mut self, cmd: u8, version: u8) -> Request {
        self.buf.extend_from_slice(&[cmd, version, 0, 0]);
        self
    }

    /// The netfilter netlink header (`nfgenmsg`): an address family (`AF_UNSPEC` for most
    /// requests), [`NFNETLINK_V0`], and a resource id, which the kernel reads big-endian.
    pub fn nfgen(mut self, family: u8, version: u8, res_id: u16) -> Request {
        self.buf.extend_from_slice(&[family, version]);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        self
    }

    /// A family's fixed header (`ifinfomsg`, `nfgenmsg`, ...), as bytes.
    pub fn header(mut self, bytes: &[u8]) -> Request {
        self.buf.extend_from_slice(bytes);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    /// An attribute.
    pub fn attr(mut self, kind: u16, payload: &[u8]) -> Request {
        push_attr(&mut self.buf, kind, payload);
        self
    }

    /// A nested attribute, its attributes written by `fill`.
    pub fn nested(mut self, kind: u16, fill: impl FnOnce(&mut Vec<u8>)) -> Request {
        let mut inner = Vec::with_capacity(64);
        fill(&mut inner);
        push_attr(&mut self.buf, kind | NLA_F_NESTED, &inner);
        self
    }

    /// The bytes to send.
    pub fn finish(mut self) -> Vec<u8> {
        let len = u32::try_from(self.buf.len()).unwrap_or(0).to_ne_bytes();
        self.buf[..4].copy_from_slice(&len);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::testing::{attr, done, error, genl_message, only};

    #[test]
    fn dump_items_errors_and_sequence() {
        let d = done(4, 0);
        assert_eq!(dump_item(only(&d), 4), Ok(Some(DumpItem::Done)));
        assert_eq!(
            dump_item(only(&d), 5),
            Err(FrameError::WrongSequence { got: 4, want: 5 })
        );
        let failed = done(4, -22);
        assert_eq!(dump_item(only(&failed), 4), Ok(Some(DumpItem::Error(22))));
        let err = error(4, 1);
        assert_eq!(dump_item(only(&err), 4), Ok(Some(DumpItem::Error(1))));
        let ack = error(4, 0);
        assert_eq!(dump_item(only(&ack), 4), Ok(Some(DumpItem::Done)));
        let mut short = error(4, 1);
        short.truncate(18);
        short[..4].copy_from_slice(&18u32.to_ne_bytes());
        assert_eq!(
            dump_item(only(&short), 4),
            Err(FrameError::ShortError { len: 2 })
        );
        let mut intr = genl_message(0x20, NLM_F_MULTI, 4, 1, &[]);
        intr[6] |= NLM_F_DUMP_INTR as u8;
        assert_eq!(dump_item(only(&intr), 4), Err(FrameError::DumpInterrupted));
        let noop = crate::netlink::testing::message(NLMSG_NOOP, 0, 4, &[]);
        assert_eq!(dump_item(only(&noop), 4), Ok(None));
        let overrun = crate::netlink::testing::message(NLMSG_OVERRUN, 0, 4, &[]);
        assert_eq!(dump_item(only(&overrun), 4), Err(FrameError::Overrun));
        let reserved = crate::netlink::testing::message(7, 0, 4, &[]);
        assert_eq!(
            dump_item(only(&reserved), 4),
            Err(FrameError::UnexpectedType { msg_type: 7 })
        );
    }

    #[test]
    fn malformed_lengths_are_errors() {
        let good = genl_message(0x20, 0, 1, 1, &attr(1, &7u32.to_ne_bytes()));
        let mut long = good.clone();
        long[..4].copy_from_slice(&(good.len() as u32 + 4).to_ne_bytes());
        assert!(matches!(
            messages(&long).next(),
            Some(Err(FrameError::BadMessageLength { .. }))
        ));
        let mut tiny = good.clone();
        tiny[..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(matches!(
            messages(&tiny).next(),
            Some(Err(FrameError::BadMessageLength { declared: 3, .. }))
        ));
        // After an error the iterator ends.
        assert_eq!(messages(&tiny).count(), 1);
        assert_eq!(
            messages(&good[..10]).next(),
            Some(Err(FrameError::ShortHeader { available: 10 }))
        );
        // Attributes: one that overruns, one shorter than its header, a truncated header.
        for (len, available) in [(0xfff0u16, 8), (2, 8), (0, 8)] {
            let mut a = attr(1, &7u32.to_ne_bytes());
            a[..2].copy_from_slice(&len.to_ne_bytes());
            assert_eq!(
                attrs(&a).collect::<Vec<_>>(),
                vec![Err(FrameError::BadAttributeLength {
                    offset: 0,
                    declared: usize::from(len),
                    available
                })]
            );
        }
        assert!(matches!(
            attrs(&[8, 0, 1]).next(),
            Some(Err(FrameError::BadAttributeLength { available: 3, .. }))
        ));
    }

    #[test]
    fn attribute_values_are_checked_for_size() {
        let a = Attr {
            kind: 1,
            flags: 0,
            payload: &[0, 80, 0],
        };
        assert_eq!(
            a.be16("port"),
            Err(FrameError::AttributeSize {
                name: "port",
                len: 3,
                expected: 2
            })
        );
        assert!(a.u32("x").is_err() && a.u64("x").is_err() && a.u8("x").is_err());
        let a = Attr {
            kind: 1,
            flags: 0,
            payload: &[0, 80],
        };
        assert_eq!(a.be16("port"), Ok(80));
        assert_eq!(a.u16("x"), Ok(u16::from_ne_bytes([0, 80])));
        let s = Attr {
            kind: 2,
            flags: 0,
            payload: b"rr\0junk",
        };
        assert_eq!(s.string(), "rr");
    }

    #[test]
    fn nested_flag_is_kept_apart_from_the_type() {
        let inner = attr(3, &[1, 2, 3, 4]);
        let outer = attr(NLA_F_NESTED | 2, &inner);
        let a: Vec<_> = attrs(&outer).filter_map(Result::ok).collect();
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].kind, a[0].flags), (2, NLA_F_NESTED));
        let n: Vec<_> = a[0].nested().filter_map(Result::ok).collect();
        assert_eq!((n[0].kind, n[0].payload), (3, &[1u8, 2, 3, 4][..]));
    }

    #[test]
    fn requests_are_framed() {
        let r = Request::dump(0x22, 7)
            .genl(4, 1)
            .attr(1, &[1, 2, 3])
            .nested(2, |n| push_attr(n, 5, &9u32.to_ne_bytes()))
            .finish();
        let m = only(&r);
        assert_eq!((m.msg_type, m.seq), (0x22, 7));
        assert_eq!(m.flags, NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(&m.payload[..4], &[4, 1, 0, 0]);
        let a: Vec<_> = attrs(&m.payload[4..]).filter_map(Result::ok).collect();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].payload, &[1, 2, 3]);
        assert_eq!(a[1].flags, NLA_F_NESTED);
        assert_eq!(r.len(), 16 + 4 + 8 + 12);
        // A fixed header is padded to 4 bytes.
        assert_eq!(Request::new(18, 0, 1).header(&[0; 5]).finish().len(), 24);
    }

    #[test]
    fn netfilter_requests_carry_a_big_endian_resource_id() {
        let r = Request::dump(0x0104, 3)
            .nfgen(2, NFNETLINK_V0, 0x0102)
            .finish();
        let m = only(&r);
        assert_eq!((m.msg_type, m.flags), (0x0104, NLM_F_REQUEST | NLM_F_DUMP));
        assert_eq!(m.payload, &[2, 0, 1, 2]);
        assert_eq!(r.len(), 20);
        let (h, rest) = nfgenmsg(&m).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            h,
            NfGenMsg {
                family: 2,
                version: 0,
                res_id: 0x0102
            }
        );
        assert!(rest.is_empty());
        let r = Request::new(0x0105, NLM_F_ACK, 4)
            .nfgen(0, NFNETLINK_V0, 0)
            .attr(1, &[9, 9, 9, 9])
            .finish();
        let m = only(&r);
        let (_, rest) = nfgenmsg(&m).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(attrs(rest).count(), 1);
        let short = crate::netlink::testing::message(0x0104, 0, 1, &[0, 0, 1]);
        assert_eq!(
            nfgenmsg(&only(&short)),
            Err(FrameError::ShortNfgenHeader {
                msg_type: 0x0104,
                len: 3
            })
        );
    }

    #[test]
    fn every_truncation_and_byte_flip_is_handled() {
        let mut buf = genl_message(
            0x20,
            NLM_F_MULTI,
            1,
            1,
            &attr(NLA_F_NESTED | 1, &attr(2, b"x\0")),
        );
        buf.extend(done(1, 0));
        let walk = |b: &[u8]| {
            let mut n = 0;
            for m in messages(b) {
                let Ok(m) = m else { break };
                let _ = dump_item(m, 1);
                for a in attrs(m.payload.get(4..).unwrap_or(&[])) {
                    let Ok(a) = a else { break };
                    n += a.nested().count();
                }
            }
            n
        };
        assert_eq!(walk(&buf), 1);
        for cut in 0..buf.len() {
            walk(&buf[..cut]);
        }
        for i in 0..buf.len() {
            for bit in [0x01u8, 0x80, 0xff] {
                let mut b = buf.clone();
                b[i] ^= bit;
                walk(&b);
            }
        }
    }
}
