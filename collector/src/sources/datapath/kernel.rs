//! The Open vSwitch kernel datapath over generic netlink: the `ovs_datapath`, `ovs_vport` and
//! `ovs_ct_limit` families of `net/openvswitch` (include/uapi/linux/openvswitch.h), the figures
//! `ovs-dpctl show -s` prints, read the way it reads them, without a process.
//!
//! Requests are built here and replies decoded by pure functions, tested on replies captured
//! from a real kernel in the lab (`collector/tests/fixtures/datapath/read.bin`) and on every
//! truncation of them. The families are looked up in a dump of every family: a lookup by name
//! would make the kernel load `openvswitch` ([`crate::netlink::genl`]).

use super::{DpPort, PortStats, ZoneLimits};
use crate::netlink::frame::{Message, Request, attrs};
use crate::netlink::{DumpError, FrameError, Socket, genl};
use crate::sources::vswitchd::parse::Datapath;

pub const DATAPATH_FAMILY: &str = "ovs_datapath";
pub const VPORT_FAMILY: &str = "ovs_vport";
pub const CT_LIMIT_FAMILY: &str = "ovs_ct_limit";

const OVS_DATAPATH_VERSION: u8 = 2;
const OVS_VPORT_VERSION: u8 = 1;
const OVS_CT_LIMIT_VERSION: u8 = 1;

/// `OVS_*_CMD_GET`, the same value in the three families; the kernel answers a GET with GET.
const CMD_GET: u8 = 3;

const OVS_DP_ATTR_NAME: u16 = 1;
const OVS_DP_ATTR_STATS: u16 = 3;
const OVS_DP_ATTR_MEGAFLOW_STATS: u16 = 4;
const OVS_DP_ATTR_MASKS_CACHE_SIZE: u16 = 7;

const OVS_VPORT_ATTR_PORT_NO: u16 = 1;
const OVS_VPORT_ATTR_TYPE: u16 = 2;
const OVS_VPORT_ATTR_NAME: u16 = 3;
const OVS_VPORT_ATTR_STATS: u16 = 6;
const OVS_VPORT_ATTR_UPCALL_STATS: u16 = 10;
const OVS_VPORT_UPCALL_ATTR_SUCCESS: u16 = 0;
const OVS_VPORT_UPCALL_ATTR_FAIL: u16 = 1;

const OVS_CT_LIMIT_ATTR_ZONE_LIMIT: u16 = 1;
/// `OVS_ZONE_LIMIT_DEFAULT_ZONE`: the entry that carries the default limit.
const DEFAULT_ZONE: i32 = -1;

/// The attribute type without the nested and byte-order flags.
const TYPE_MASK: u16 = 0x3fff;

/// The families' ids in one namespace; `datapath` is `None` when `openvswitch` is not loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Families {
    pub datapath: Option<u16>,
    pub vport: Option<u16>,
    pub ct_limit: Option<u16>,
}

/// What one read of the kernel found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KernelData {
    pub datapaths: Vec<Datapath>,
    /// The namespace's conntrack zone limits (`None`: no `ovs_ct_limit` family, a kernel
    /// without `CONFIG_NF_CONNTRACK` in `openvswitch`).
    pub zone_limits: Option<ZoneLimits>,
}

/// A datapath's figures and the ifindex the vport dump of it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct DatapathMsg {
    pub dp_ifindex: i32,
    pub datapath: Datapath,
}

fn split_header<'a>(msg: &Message<'a>) -> Result<(i32, &'a [u8]), FrameError> {
    let body = genl::body(msg, CMD_GET)?;
    let Some((head, rest)) = body.split_first_chunk::<4>() else {
        return Err(FrameError::ShortGenlHeader {
            msg_type: msg.msg_type,
            len: msg.payload.len(),
        });
    };
    Ok((i32::from_ne_bytes(*head), rest))
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i * 8..i * 8 + 8]);
    u64::from_ne_bytes(a)
}

fn sized<'a>(
    payload: &'a [u8],
    name: &'static str,
    expected: usize,
) -> Result<&'a [u8], FrameError> {
    if payload.len() < expected {
        return Err(FrameError::AttributeSize {
            name,
            len: payload.len(),
            expected,
        });
    }
    Ok(&payload[..expected])
}

/// One datapath of an `OVS_DP_CMD_GET` dump.
pub fn parse_datapath(msg: &Message<'_>) -> Result<DatapathMsg, FrameError> {
    let (dp_ifindex, body) = split_header(msg)?;
    let mut d = Datapath {
        kind: "system".to_owned(),
        ..Datapath::default()
    };
    for a in attrs(body) {
        let a = a?;
        match a.kind & TYPE_MASK {
            OVS_DP_ATTR_NAME => d.name = a.string(),
            OVS_DP_ATTR_STATS => {
                // struct ovs_dp_stats: n_hit, n_missed, n_lost, n_flows.
                let s = sized(a.payload, "OVS_DP_ATTR_STATS", 32)?;
                d.hit = u64_at(s, 0);
                d.missed = u64_at(s, 1);
                d.lost = u64_at(s, 2);
                d.flows = u64_at(s, 3);
            }
            OVS_DP_ATTR_MEGAFLOW_STATS => {
                // struct ovs_dp_megaflow_stats: n_mask_hit (u64), n_masks (u32), pad0,
                // n_cache_hit (u64, zero before Linux 5.12), pad1.
                let s = sized(a.payload, "OVS_DP_ATTR_MEGAFLOW_STATS", 32)?;
                d.mask_hit = Some(u64_at(s, 0));
                let mut m = [0u8; 4];
                m.copy_from_slice(&s[8..12]);
                d.masks = Some(u64::from(u32::from_ne_bytes(m)));
                d.cache_hit = Some(u64_at(s, 2));
            }
            OVS_DP_ATTR_MASKS_CACHE_SIZE => {
                d.caches.push((
                    "masks-cache".to_owned(),
                    u64::from(a.u32("OVS_DP_ATTR_MASKS_CACHE_SIZE")?),
                ));
            }
            _ => {}
        }
    }
    Ok(DatapathMsg {
        dp_ifindex,
        datapath: d,
    })
}

/// The port type's name as `ovs-dpctl show` prints it (`system` for a plain netdev).
pub fn vport_type_name(t: u32) -> String {
    match t {
        1 => "system".to_owned(),
        2 => "internal".to_owned(),
        3 => "gre".to_owned(),
        4 => "vxlan".to_owned(),
        5 => "geneve".to_owned(),
        other => format!("type{other}"),
    }
}

/// One port of an `OVS_VPORT_CMD_GET` dump.
pub fn parse_vport(msg: &Message<'_>) -> Result<DpPort, FrameError> {
    let (_, body) = split_header(msg)?;
    let mut p = DpPort::default();
    for a in attrs(body) {
        let a = a?;
        match a.kind & TYPE_MASK {
            OVS_VPORT_ATTR_PORT_NO => p.number = a.u32("OVS_VPORT_ATTR_PORT_NO")?,
            OVS_VPORT_ATTR_TYPE => p.kind = vport_type_name(a.u32("OVS_VPORT_ATTR_TYPE")?),
            OVS_VPORT_ATTR_NAME => p.name = a.string(),
            OVS_VPORT_ATTR_STATS => {
                // struct ovs_vport_stats: rx/tx packets, rx/tx bytes, rx/tx errors, rx/tx
                // dropped.
                let s = sized(a.payload, "OVS_VPORT_ATTR_STATS", 64)?;
                p.stats = Some(PortStats {
                    rx_packets: Some(u64_at(s, 0)),
                    tx_packets: Some(u64_at(s, 1)),
                    rx_bytes: Some(u64_at(s, 2)),
                    tx_bytes: Some(u64_at(s, 3)),
                    rx_errors: Some(u64_at(s, 4)),
                    tx_errors: Some(u64_at(s, 5)),
                    rx_dropped: Some(u64_at(s, 6)),
                    tx_dropped: Some(u64_at(s, 7)),
                    ..PortStats::default()
                });
            }
            OVS_VPORT_ATTR_UPCALL_STATS => {
                let (mut ok, mut fail) = (None, None);
                for u in a.nested() {
                    let u = u?;
                    match u.kind & TYPE_MASK {
                        OVS_VPORT_UPCALL_ATTR_SUCCESS => {
                            ok = Some(u.u64("OVS_VPORT_UPCALL_ATTR_SUCCESS")?);
                        }
                        OVS_VPORT_UPCALL_ATTR_FAIL => {
                            fail = Some(u.u64("OVS_VPORT_UPCALL_ATTR_FAIL")?);
                        }
                        _ => {}
                    }
                }
                p.upcalls = ok.zip(fail);
            }
            _ => {}
        }
    }
    Ok(p)
}

/// The reply to `OVS_CT_LIMIT_CMD_GET` without zones: the default limit, then every zone with
/// a limit of its own and its live count (`struct ovs_zone_limit` records, no attribute
/// headers, inside `OVS_CT_LIMIT_ATTR_ZONE_LIMIT`).
pub fn parse_ct_limits(msg: &Message<'_>) -> Result<ZoneLimits, FrameError> {
    let (_, body) = split_header(msg)?;
    let mut out = ZoneLimits::default();
    for a in attrs(body) {
        let a = a?;
        if a.kind & TYPE_MASK != OVS_CT_LIMIT_ATTR_ZONE_LIMIT {
            continue;
        }
        let records = a.payload.chunks_exact(12);
        if !records.remainder().is_empty() {
            return Err(FrameError::AttributeSize {
                name: "OVS_CT_LIMIT_ATTR_ZONE_LIMIT",
                len: a.payload.len(),
                expected: a.payload.len() / 12 * 12,
            });
        }
        for r in records {
            let word = |i: usize| {
                let mut b = [0u8; 4];
                b.copy_from_slice(&r[i * 4..i * 4 + 4]);
                b
            };
            let zone = i32::from_ne_bytes(word(0));
            let limit = u64::from(u32::from_ne_bytes(word(1)));
            let count = u64::from(u32::from_ne_bytes(word(2)));
            if zone == DEFAULT_ZONE {
                out.default_limit = limit;
            } else if let Ok(zone) = u16::try_from(zone) {
                out.zones.push((zone, limit, count));
            }
        }
    }
    Ok(out)
}

fn ovs_header(dp_ifindex: i32) -> [u8; 4] {
    dp_ifindex.to_ne_bytes()
}

pub fn datapaths_request(family: u16, seq: u32) -> Vec<u8> {
    Request::dump(family, seq)
        .genl(CMD_GET, OVS_DATAPATH_VERSION)
        .header(&ovs_header(0))
        .finish()
}

pub fn vports_request(family: u16, seq: u32, dp_ifindex: i32) -> Vec<u8> {
    Request::dump(family, seq)
        .genl(CMD_GET, OVS_VPORT_VERSION)
        .header(&ovs_header(dp_ifindex))
        .finish()
}

/// Not a dump: one reply, then the acknowledgement `NLM_F_ACK` asks for, which ends it.
pub fn ct_limits_request(family: u16, seq: u32) -> Vec<u8> {
    Request::new(family, crate::netlink::frame::NLM_F_ACK, seq)
        .genl(CMD_GET, OVS_CT_LIMIT_VERSION)
        .header(&ovs_header(0))
        .finish()
}

/// Where dumps go: the kernel ([`Socket`]) or a captured read replayed ([`Replay`]).
pub trait Dumper {
    fn next_seq(&mut self) -> u32;
    fn dump(
        &mut self,
        req: &[u8],
        seq: u32,
        on_data: &mut dyn FnMut(&Message<'_>) -> Result<(), FrameError>,
    ) -> Result<(), DumpError<FrameError>>;
}

impl Dumper for Socket {
    fn next_seq(&mut self) -> u32 {
        Socket::next_seq(self)
    }

    fn dump(
        &mut self,
        req: &[u8],
        seq: u32,
        on_data: &mut dyn FnMut(&Message<'_>) -> Result<(), FrameError>,
    ) -> Result<(), DumpError<FrameError>> {
        Socket::dump(self, req, seq, on_data)
    }
}

/// A read captured with [`Socket::start_capture`] ([`crate::netlink::capture`]), fed back in order to the same decoders (fixtures, tests). Each dump takes the
/// datagrams up to its end; its sequence number is the capture's.
pub struct Replay<'a> {
    datagrams: Vec<&'a [u8]>,
    next: usize,
}

impl<'a> Replay<'a> {
    pub fn new(bin: &'a [u8]) -> Result<Replay<'a>, String> {
        let datagrams = crate::netlink::capture::decode(bin)?;
        Ok(Replay { datagrams, next: 0 })
    }
}

impl Dumper for Replay<'_> {
    fn next_seq(&mut self) -> u32 {
        0
    }

    fn dump(
        &mut self,
        _req: &[u8],
        _seq: u32,
        on_data: &mut dyn FnMut(&Message<'_>) -> Result<(), FrameError>,
    ) -> Result<(), DumpError<FrameError>> {
        let first = self.datagrams.get(self.next).copied().unwrap_or_default();
        let seq = crate::netlink::messages(first)
            .next()
            .and_then(Result::ok)
            .map_or(0, |m| m.seq);
        let mut dump = crate::netlink::Dump::new(seq, crate::netlink::DumpLimits::default());
        while let Some(d) = self.datagrams.get(self.next).copied() {
            self.next += 1;
            if dump.feed(d, &mut *on_data)? {
                return Ok(());
            }
        }
        Err(DumpError::Netlink(crate::netlink::NetlinkError::NoReply {
            timeout: std::time::Duration::ZERO,
        }))
    }
}

/// The three families' ids, from one dump of every family (loads no module).
pub fn families(d: &mut impl Dumper) -> Result<Families, DumpError<FrameError>> {
    let mut f = Families::default();
    let seq = d.next_seq();
    d.dump(&genl::family_dump_request(seq), seq, &mut |m| {
        if let Some((name, id)) = genl::parse_family(m)? {
            match name.as_str() {
                DATAPATH_FAMILY => f.datapath = Some(id),
                VPORT_FAMILY => f.vport = Some(id),
                CT_LIMIT_FAMILY => f.ct_limit = Some(id),
                _ => {}
            }
        }
        Ok(())
    })?;
    Ok(f)
}

/// What failed in a read, for the error message.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {what}")]
pub struct ReadError {
    pub what: &'static str,
    #[source]
    pub source: DumpError<FrameError>,
}

fn ctx<T>(what: &'static str, r: Result<T, DumpError<FrameError>>) -> Result<T, ReadError> {
    r.map_err(|source| ReadError { what, source })
}

/// Reads every datapath, its ports and the zone limits. `Ok(None)`: no `ovs_datapath`
/// family (the module is not loaded).
pub fn read(d: &mut impl Dumper) -> Result<Option<KernelData>, ReadError> {
    let fam = ctx("the generic netlink families", families(d))?;
    let (Some(dp_family), Some(vport_family)) = (fam.datapath, fam.vport) else {
        return Ok(None);
    };
    let mut found = Vec::new();
    let seq = d.next_seq();
    ctx(
        "the kernel datapaths",
        d.dump(&datapaths_request(dp_family, seq), seq, &mut |m| {
            found.push(parse_datapath(m)?);
            Ok(())
        }),
    )?;
    let mut out = KernelData::default();
    for DatapathMsg {
        dp_ifindex,
        mut datapath,
    } in found
    {
        let seq = d.next_seq();
        ctx(
            "a kernel datapath's ports",
            d.dump(
                &vports_request(vport_family, seq, dp_ifindex),
                seq,
                &mut |m| {
                    datapath.ports.push(parse_vport(m)?);
                    Ok(())
                },
            ),
        )?;
        datapath.ports.sort_by_key(|p| p.number);
        out.datapaths.push(datapath);
    }
    if let Some(ct) = fam.ct_limit {
        let seq = d.next_seq();
        let mut limits = None;
        ctx(
            "the conntrack zone limits",
            d.dump(&ct_limits_request(ct, seq), seq, &mut |m| {
                limits = Some(parse_ct_limits(m)?);
                Ok(())
            }),
        )?;
        out.zone_limits = limits;
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::testing::{attr, message, only};

    fn ovs_msg(family: u16, ifindex: i32, attrs: &[u8]) -> Vec<u8> {
        let mut body = vec![CMD_GET, 1, 0, 0];
        body.extend_from_slice(&ifindex.to_ne_bytes());
        body.extend_from_slice(attrs);
        message(family, 2, 1, &body)
    }

    fn u64s(v: &[u64]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_ne_bytes()).collect()
    }

    #[test]
    fn a_datapath_with_its_stats() {
        let mut a = attr(OVS_DP_ATTR_NAME, b"ovs-system\0");
        a.extend(attr(OVS_DP_ATTR_STATS, &u64s(&[10, 3, 1, 2])));
        let mut mega = u64s(&[25]);
        mega.extend(7u32.to_ne_bytes());
        mega.extend(0u32.to_ne_bytes());
        mega.extend(u64s(&[9, 0]));
        a.extend(attr(OVS_DP_ATTR_MEGAFLOW_STATS, &mega));
        a.extend(attr(OVS_DP_ATTR_MASKS_CACHE_SIZE, &256u32.to_ne_bytes()));
        a.extend(attr(99, b"future"));
        let bytes = ovs_msg(0x20, 5, &a);
        let d = parse_datapath(&only(&bytes)).expect("a datapath");
        assert_eq!(d.dp_ifindex, 5);
        let d = d.datapath;
        assert_eq!((d.name.as_str(), d.kind.as_str()), ("ovs-system", "system"));
        assert_eq!((d.hit, d.missed, d.lost, d.flows), (10, 3, 1, 2));
        assert_eq!(
            (d.mask_hit, d.masks, d.cache_hit),
            (Some(25), Some(7), Some(9))
        );
        assert_eq!(d.caches, vec![("masks-cache".to_owned(), 256)]);
        // Short stats are an error, not a read past the end.
        let bytes = ovs_msg(0x20, 5, &attr(OVS_DP_ATTR_STATS, &u64s(&[1, 2])));
        assert!(matches!(
            parse_datapath(&only(&bytes)),
            Err(FrameError::AttributeSize { expected: 32, .. })
        ));
    }

    #[test]
    fn a_vport_with_stats_and_upcalls() {
        let mut a = attr(OVS_VPORT_ATTR_PORT_NO, &3u32.to_ne_bytes());
        a.extend(attr(OVS_VPORT_ATTR_TYPE, &2u32.to_ne_bytes()));
        a.extend(attr(OVS_VPORT_ATTR_NAME, b"br0\0"));
        a.extend(attr(OVS_VPORT_ATTR_STATS, &u64s(&[1, 2, 3, 4, 5, 6, 7, 8])));
        let mut up = attr(OVS_VPORT_UPCALL_ATTR_SUCCESS, &11u64.to_ne_bytes());
        up.extend(attr(OVS_VPORT_UPCALL_ATTR_FAIL, &2u64.to_ne_bytes()));
        a.extend(attr(OVS_VPORT_ATTR_UPCALL_STATS | 0x8000, &up));
        let bytes = ovs_msg(0x21, 5, &a);
        let p = parse_vport(&only(&bytes)).expect("a vport");
        assert_eq!(
            (p.number, p.name.as_str(), p.kind.as_str()),
            (3, "br0", "internal")
        );
        let s = p.stats.expect("stats");
        assert_eq!((s.rx_packets, s.tx_packets), (Some(1), Some(2)));
        assert_eq!((s.rx_bytes, s.tx_bytes), (Some(3), Some(4)));
        assert_eq!((s.rx_errors, s.tx_errors), (Some(5), Some(6)));
        assert_eq!((s.rx_dropped, s.tx_dropped), (Some(7), Some(8)));
        assert_eq!(p.upcalls, Some((11, 2)));
        assert_eq!(vport_type_name(1), "system");
        assert_eq!(vport_type_name(42), "type42");
    }

    #[test]
    fn zone_limits_records() {
        let mut recs = Vec::new();
        for (z, l, c) in [(-1i32, 100u32, 0u32), (5, 10, 3), (70000, 1, 1)] {
            recs.extend(z.to_ne_bytes());
            recs.extend(l.to_ne_bytes());
            recs.extend(c.to_ne_bytes());
        }
        let bytes = ovs_msg(0x22, 0, &attr(OVS_CT_LIMIT_ATTR_ZONE_LIMIT | 0x8000, &recs));
        let z = parse_ct_limits(&only(&bytes)).expect("limits");
        // A zone id past u16 (none exists) is skipped.
        assert_eq!(
            z,
            ZoneLimits {
                default_limit: 100,
                zones: vec![(5, 10, 3)]
            }
        );
        let bytes = ovs_msg(0x22, 0, &attr(OVS_CT_LIMIT_ATTR_ZONE_LIMIT, &recs[..13]));
        assert!(parse_ct_limits(&only(&bytes)).is_err());
    }

    #[test]
    fn requests_carry_the_ovs_header() {
        let r = vports_request(0x21, 9, 7);
        let m = only(&r);
        assert_eq!(m.msg_type, 0x21);
        assert_eq!(&m.payload[..4], &[CMD_GET, OVS_VPORT_VERSION, 0, 0]);
        assert_eq!(&m.payload[4..8], &7i32.to_ne_bytes());
        let r = ct_limits_request(0x22, 9);
        let m = only(&r);
        assert_eq!(
            m.flags & crate::netlink::frame::NLM_F_DUMP,
            0,
            "the zone limits are not a dump"
        );
    }

    #[test]
    fn hostile_messages_are_errors() {
        // No ovs_header, the wrong command.
        let short = message(0x20, 2, 1, &[CMD_GET, 1, 0, 0, 1]);
        assert!(parse_datapath(&only(&short)).is_err());
        let wrong = message(0x20, 2, 1, &[1, 1, 0, 0, 0, 0, 0, 0]);
        assert!(parse_vport(&only(&wrong)).is_err());
    }
}
