//! IPVS over generic netlink: pure functions from the attributes of a reply to typed values,
//! and the two dump requests the source sends. Framing (messages, attributes, the end of a dump,
//! the family lookup) is `crate::netlink`'s; this file knows only IPVS.
//!
//! IPVS ports are big-endian; addresses are 16 bytes (`union nf_inet_addr`) whatever the family.
//! The attribute numbers are those of `include/uapi/linux/ip_vs.h`.

use crate::netlink::frame::{Attr, Message, Request, attrs, push_attr, u32_at};
use crate::netlink::{FrameError, genl};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// What can be wrong with an IPVS reply. Every decoder returns one of these instead of
/// panicking, whatever the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{what} message has no {attribute} attribute")]
    MissingAttribute {
        what: &'static str,
        attribute: &'static str,
    },
    #[error("unknown address family {af}")]
    UnknownFamily { af: u16 },
    #[error("malformed netlink")]
    Frame {
        #[from]
        source: FrameError,
    },
}

fn attr_addr(name: &'static str, af: u16, p: &[u8]) -> Result<IpAddr, ParseError> {
    let short = |expected| FrameError::AttributeSize {
        name,
        len: p.len(),
        expected,
    };
    match af {
        AF_INET => {
            let b: [u8; 4] = p.get(..4).and_then(|s| s.try_into().ok()).ok_or(short(4))?;
            Ok(IpAddr::V4(Ipv4Addr::from(b)))
        }
        AF_INET6 => {
            let b: [u8; 16] = p
                .get(..16)
                .and_then(|s| s.try_into().ok())
                .ok_or(short(16))?;
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
    let num = |name, a: &Attr<'_>, thirty_two: bool| -> Result<u64, FrameError> {
        if thirty_two {
            a.u32(name).map(u64::from)
        } else {
            a.u64(name)
        }
    };
    for a in attrs(p) {
        let a = a?;
        match a.kind {
            IPVS_STATS_ATTR_CONNS => s.connections = num("stats conns", &a, !wide)?,
            IPVS_STATS_ATTR_INPKTS => s.packets_in = num("stats inpkts", &a, !wide)?,
            IPVS_STATS_ATTR_OUTPKTS => s.packets_out = num("stats outpkts", &a, !wide)?,
            IPVS_STATS_ATTR_INBYTES => s.bytes_in = num("stats inbytes", &a, false)?,
            IPVS_STATS_ATTR_OUTBYTES => s.bytes_out = num("stats outbytes", &a, false)?,
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

/// A service from one `IPVS_CMD_NEW_SERVICE` message of a service dump.
pub fn parse_service(msg: &Message<'_>) -> Result<Service, ParseError> {
    let body = genl::body(msg, IPVS_CMD_NEW_SERVICE)?;
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
            IPVS_SVC_ATTR_AF => af = Some(a.u16("IPVS_SVC_ATTR_AF")?),
            IPVS_SVC_ATTR_PROTOCOL => protocol = Some(a.u16("IPVS_SVC_ATTR_PROTOCOL")?),
            IPVS_SVC_ATTR_ADDR => addr = Some(a.payload),
            IPVS_SVC_ATTR_PORT => port = Some(a.be16("IPVS_SVC_ATTR_PORT")?),
            IPVS_SVC_ATTR_FWMARK => fwmark = Some(a.u32("IPVS_SVC_ATTR_FWMARK")?),
            IPVS_SVC_ATTR_SCHED_NAME => svc.scheduler = a.string(),
            IPVS_SVC_ATTR_FLAGS => {
                // struct ip_vs_flags { u32 flags; u32 mask; }
                let flags_mask: [u8; 8] =
                    a.payload
                        .try_into()
                        .map_err(|_| FrameError::AttributeSize {
                            name: "IPVS_SVC_ATTR_FLAGS",
                            len: a.payload.len(),
                            expected: 8,
                        })?;
                svc.flags = u32_at(&flags_mask, 0);
            }
            IPVS_SVC_ATTR_TIMEOUT => svc.timeout = a.u32("IPVS_SVC_ATTR_TIMEOUT")?,
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
    let body = genl::body(msg, IPVS_CMD_NEW_DEST)?;
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
        match a.kind {
            IPVS_DEST_ATTR_ADDR => addr = Some(a.payload),
            IPVS_DEST_ATTR_PORT => port = Some(a.be16("IPVS_DEST_ATTR_PORT")?),
            IPVS_DEST_ATTR_FWD_METHOD => d.forward = a.u32("IPVS_DEST_ATTR_FWD_METHOD")?,
            IPVS_DEST_ATTR_WEIGHT => {
                d.weight = a.u32("IPVS_DEST_ATTR_WEIGHT")?.cast_signed();
            }
            IPVS_DEST_ATTR_ACTIVE_CONNS => {
                d.active_connections = a.u32("IPVS_DEST_ATTR_ACTIVE_CONNS")?;
            }
            IPVS_DEST_ATTR_INACT_CONNS => {
                d.inactive_connections = a.u32("IPVS_DEST_ATTR_INACT_CONNS")?;
            }
            IPVS_DEST_ATTR_PERSIST_CONNS => {
                d.persistent_connections = a.u32("IPVS_DEST_ATTR_PERSIST_CONNS")?;
            }
            IPVS_DEST_ATTR_ADDR_FAMILY => af = a.u16("IPVS_DEST_ATTR_ADDR_FAMILY")?,
            IPVS_DEST_ATTR_STATS => stats32 = Some(a.payload),
            IPVS_DEST_ATTR_STATS64 => stats64 = Some(a.payload),
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

/// A dump of every virtual service.
pub fn services_request(family: u16, seq: u32) -> Vec<u8> {
    Request::dump(family, seq)
        .genl(IPVS_CMD_GET_SERVICE, IPVS_GENL_VERSION)
        .finish()
}

/// The raw 16-byte `union nf_inet_addr` of `addr`.
fn raw_addr(addr: IpAddr) -> [u8; 16] {
    let mut raw = [0u8; 16];
    match addr {
        IpAddr::V4(a) => raw[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => raw.copy_from_slice(&a.octets()),
    }
    raw
}

/// A dump of the destinations of the service `key`.
pub fn destinations_request(family: u16, seq: u32, key: &ServiceKey) -> Vec<u8> {
    Request::dump(family, seq)
        .genl(IPVS_CMD_GET_DEST, IPVS_GENL_VERSION)
        .nested(IPVS_CMD_ATTR_SERVICE, |n| {
            push_attr(n, IPVS_SVC_ATTR_AF, &key.af().to_ne_bytes());
            match key {
                ServiceKey::Fwmark { mark, .. } => {
                    push_attr(n, IPVS_SVC_ATTR_FWMARK, &mark.to_ne_bytes());
                }
                ServiceKey::Address {
                    protocol,
                    addr,
                    port,
                    ..
                } => {
                    push_attr(n, IPVS_SVC_ATTR_PROTOCOL, &protocol.to_ne_bytes());
                    push_attr(n, IPVS_SVC_ATTR_ADDR, &raw_addr(*addr));
                    push_attr(n, IPVS_SVC_ATTR_PORT, &port.to_be_bytes());
                }
            }
        })
        .finish()
}

/// IPVS replies as the kernel writes them, for the tests below.
#[cfg(test)]
mod build {
    use super::*;
    pub use crate::netlink::frame::NLM_F_MULTI;
    pub use crate::netlink::testing::{attr, done, genl_message as message};

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
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;
    use crate::netlink::frame::{
        DumpItem, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_MULTI, NLM_F_REQUEST, NLMSG_HDRLEN, dump_item,
        messages,
    };
    use crate::netlink::genl::{GENL_HDRLEN, parse_family};
    use crate::netlink::testing::only;

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
    fn an_interrupted_service_dump_is_an_error() {
        let mut intr = service(4, &sample_service());
        intr[6] |= NLM_F_DUMP_INTR as u8;
        assert_eq!(
            dump_item(only(&intr), 4),
            Err(crate::netlink::FrameError::DumpInterrupted)
        );
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
            Some(Err(FrameError::BadMessageLength { .. }))
        ));
        // A header that claims less than a header.
        let mut tiny = good.clone();
        tiny[..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(matches!(
            messages(&tiny).next(),
            Some(Err(FrameError::BadMessageLength { declared: 3, .. }))
        ));
        // An attribute that overruns its message.
        let mut bad_attr = good.clone();
        let at = NLMSG_HDRLEN + GENL_HDRLEN;
        bad_attr[at..at + 2].copy_from_slice(&0xfff0u16.to_ne_bytes());
        assert!(matches!(
            parse_service(&only(&bad_attr)),
            Err(ParseError::Frame {
                source: FrameError::BadAttributeLength { .. }
            })
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
            Err(ParseError::Frame {
                source: FrameError::AttributeSize {
                    name: "IPVS_SVC_ATTR_PORT",
                    len: 3,
                    expected: 2
                }
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
            Err(ParseError::Frame {
                source: FrameError::UnexpectedCommand { cmd: 5, want: 1 }
            })
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
        assert_eq!(services_request(0x22, 1).len(), 20);
    }
}
