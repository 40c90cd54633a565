//! VF counters over rtnetlink: one `RTM_GETLINK` dump with `IFLA_EXT_MASK = RTEXT_FILTER_VF`,
//! and a pure decoder of each link's `IFLA_VFINFO_LIST`.
//!
//! The kernel nests a PF's VFs like this (`include/uapi/linux/if_link.h`,
//! `net/core/rtnetlink.c: rtnl_fill_vfinfo`):
//!
//! ```text
//! RTM_NEWLINK: nlmsghdr, ifinfomsg (16 bytes), attributes:
//!   IFLA_IFNAME (3)               "ens785f0\0"
//!   IFLA_NUM_VF (21)              u32
//!   IFLA_VFINFO_LIST (22)         nested, one per VF:
//!     IFLA_VF_INFO (1)            nested:
//!       IFLA_VF_MAC (1)           struct ifla_vf_mac { u32 vf; u8 mac[32]; }
//!       IFLA_VF_VLAN (2) ...      each starts with the u32 vf number too
//!       IFLA_VF_STATS (8)         nested, u64 each:
//!         IFLA_VF_STATS_RX_PACKETS (0), _TX_PACKETS (1), _RX_BYTES (2), _TX_BYTES (3),
//!         _BROADCAST (4), _MULTICAST (5), _PAD (6), _RX_DROPPED (7), _TX_DROPPED (8)
//! ```
//!
//! `RTEXT_FILTER_SKIP_STATS` is deliberately not set: it makes the kernel leave `IFLA_VF_STATS`
//! out. The socket, framing (messages, attributes, the end of a dump) and the dump's bounds are
//! `crate::netlink`'s.

use crate::netlink::{self as nl, Dump, DumpLimits, FrameError, Message, NetlinkError};
use crate::netlink::{Protocol, Request, Socket};
use crate::sources::sriov::sysfs::VfCounters;
use std::convert::Infallible;
use std::time::Duration;

pub const RTM_NEWLINK: u16 = 16;
pub const RTM_GETLINK: u16 = 18;
pub const AF_UNSPEC: u8 = 0;
const IFINFOMSG_LEN: usize = 16;

pub const IFLA_IFNAME: u16 = 3;
pub const IFLA_NUM_VF: u16 = 21;
pub const IFLA_VFINFO_LIST: u16 = 22;
pub const IFLA_EXT_MASK: u16 = 29;

pub const IFLA_VF_INFO: u16 = 1;
pub const IFLA_VF_MAC: u16 = 1;
pub const IFLA_VF_STATS: u16 = 8;

pub const IFLA_VF_STATS_RX_PACKETS: u16 = 0;
pub const IFLA_VF_STATS_TX_PACKETS: u16 = 1;
pub const IFLA_VF_STATS_RX_BYTES: u16 = 2;
pub const IFLA_VF_STATS_TX_BYTES: u16 = 3;
pub const IFLA_VF_STATS_BROADCAST: u16 = 4;
pub const IFLA_VF_STATS_MULTICAST: u16 = 5;
pub const IFLA_VF_STATS_PAD: u16 = 6;
pub const IFLA_VF_STATS_RX_DROPPED: u16 = 7;
pub const IFLA_VF_STATS_TX_DROPPED: u16 = 8;

pub const RTEXT_FILTER_VF: u32 = 1 << 0;
pub const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;

/// Big enough for a PF with hundreds of VFs in one message; a larger one is an error, never a
/// silent cut.
const RECV_BUFFER: usize = 1024 * 1024;

/// What can be wrong with a link message's VF attributes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VfParseError {
    #[error("link message of {len} bytes is too short for an ifinfomsg")]
    ShortLink { len: usize },
    #[error("malformed attributes in {within}")]
    Attributes {
        within: &'static str,
        #[source]
        source: FrameError,
    },
    #[error("{what} of {len} bytes is too short for the u32 vf number")]
    ShortVfStruct { what: &'static str, len: usize },
    #[error("VF counter {attribute} has {len} bytes, expected 8")]
    CounterSize { attribute: u16, len: usize },
    #[error("a VF entry has no vf number (no IFLA_VF_MAC)")]
    NoVfNumber,
}

/// One VF as the PF's driver reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfInfo {
    pub id: u32,
    /// `None`: the driver gave no `IFLA_VF_STATS` for this VF.
    pub stats: Option<VfCounters>,
}

/// One link of the dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: i32,
    pub name: String,
    /// `IFLA_NUM_VF`: the kernel adds it (0 without SR-IOV) to links with a parent device when
    /// `RTEXT_FILTER_VF` is asked for; `None` on virtual links (lo, veth).
    pub num_vf: Option<u32>,
    pub vfs: Vec<VfInfo>,
}

fn u32_ne(p: &[u8]) -> Option<u32> {
    p.get(..4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_ne_bytes)
}

fn attrs_of<'a>(
    within: &'static str,
    buf: &'a [u8],
) -> impl Iterator<Item = Result<nl::Attr<'a>, VfParseError>> {
    nl::attrs(buf).map(move |r| r.map_err(|source| VfParseError::Attributes { within, source }))
}

/// Decodes the nested `IFLA_VF_STATS` attribute.
pub fn parse_vf_stats(buf: &[u8]) -> Result<VfCounters, VfParseError> {
    let mut c = VfCounters::default();
    for a in attrs_of("IFLA_VF_STATS", buf) {
        let a = a?;
        if a.kind == IFLA_VF_STATS_PAD {
            continue;
        }
        let slot = match a.kind {
            IFLA_VF_STATS_RX_PACKETS => &mut c.rx_packets,
            IFLA_VF_STATS_TX_PACKETS => &mut c.tx_packets,
            IFLA_VF_STATS_RX_BYTES => &mut c.rx_bytes,
            IFLA_VF_STATS_TX_BYTES => &mut c.tx_bytes,
            IFLA_VF_STATS_BROADCAST => &mut c.rx_broadcast,
            IFLA_VF_STATS_MULTICAST => &mut c.rx_multicast,
            IFLA_VF_STATS_RX_DROPPED => &mut c.rx_dropped,
            IFLA_VF_STATS_TX_DROPPED => &mut c.tx_dropped,
            // Newer kernels may add counters: skip what we do not know.
            _ => continue,
        };
        let v: [u8; 8] = a
            .payload
            .try_into()
            .map_err(|_| VfParseError::CounterSize {
                attribute: a.kind,
                len: a.payload.len(),
            })?;
        *slot = Some(u64::from_ne_bytes(v));
    }
    Ok(c)
}

/// Decodes one `IFLA_VF_INFO`.
pub fn parse_vf_info(buf: &[u8]) -> Result<VfInfo, VfParseError> {
    let mut id = None;
    let mut stats = None;
    for a in attrs_of("IFLA_VF_INFO", buf) {
        let a = a?;
        match a.kind {
            IFLA_VF_MAC => {
                id = Some(u32_ne(a.payload).ok_or(VfParseError::ShortVfStruct {
                    what: "IFLA_VF_MAC",
                    len: a.payload.len(),
                })?);
            }
            IFLA_VF_STATS => stats = Some(parse_vf_stats(a.payload)?),
            _ => {}
        }
    }
    Ok(VfInfo {
        id: id.ok_or(VfParseError::NoVfNumber)?,
        stats,
    })
}

/// Decodes the VFs of `IFLA_VFINFO_LIST`.
pub fn parse_vfinfo_list(buf: &[u8]) -> Result<Vec<VfInfo>, VfParseError> {
    let mut out = Vec::new();
    for a in attrs_of("IFLA_VFINFO_LIST", buf) {
        let a = a?;
        if a.kind == IFLA_VF_INFO {
            out.push(parse_vf_info(a.payload)?);
        }
    }
    Ok(out)
}

/// Decodes the payload of an `RTM_NEWLINK` message (after the netlink header).
pub fn parse_link(payload: &[u8]) -> Result<Link, VfParseError> {
    let hdr = payload
        .get(..IFINFOMSG_LEN)
        .ok_or(VfParseError::ShortLink { len: payload.len() })?;
    let index = u32_ne(&hdr[4..8]).unwrap_or(0).cast_signed();
    let mut link = Link {
        index,
        name: String::new(),
        num_vf: None,
        vfs: Vec::new(),
    };
    for a in attrs_of("the link message", &payload[IFINFOMSG_LEN..]) {
        let a = a?;
        match a.kind {
            IFLA_IFNAME => {
                let end = a
                    .payload
                    .iter()
                    .position(|&b| b == 0)
                    .unwrap_or(a.payload.len());
                link.name = String::from_utf8_lossy(&a.payload[..end]).into_owned();
            }
            IFLA_NUM_VF => link.num_vf = u32_ne(a.payload),
            IFLA_VFINFO_LIST => link.vfs = parse_vfinfo_list(a.payload)?,
            _ => {}
        }
    }
    Ok(link)
}

/// The request: dump every link, with VF information and VF counters.
pub fn link_dump_request(seq: u32) -> Vec<u8> {
    // ifinfomsg: family, pad, type, index, flags, change.
    let mut ifinfomsg = [0u8; IFINFOMSG_LEN];
    ifinfomsg[0] = AF_UNSPEC;
    Request::dump(RTM_GETLINK, seq)
        .header(&ifinfomsg)
        .attr(IFLA_EXT_MASK, &RTEXT_FILTER_VF.to_ne_bytes())
        .finish()
}

/// A link of the dump, or why its message could not be decoded.
pub type LinkResult = Result<Link, (i32, VfParseError)>;

/// Dumps every link of the calling thread's network namespace with its VFs. A link whose VF
/// attributes are malformed comes back as an error of its own; the rest of the dump is kept.
pub fn dump_links(timeout: Duration) -> Result<Vec<LinkResult>, NetlinkError> {
    let mut sock = Socket::open(Protocol::Route, timeout)?;
    sock.set_receive_buffer(RECV_BUFFER);
    let seq = sock.next_seq();
    let mut links = Vec::new();
    sock.dump(&link_dump_request(seq), seq, |m| {
        links.extend(link_of(m));
        Ok::<(), Infallible>(())
    })?;
    Ok(links)
}

/// Decodes one datagram of the dump into `links`; true at the end of the dump.
pub fn collect_links(
    datagram: &[u8],
    seq: u32,
    links: &mut Vec<LinkResult>,
) -> Result<bool, NetlinkError> {
    let mut dump = Dump::new(seq, DumpLimits::default());
    Ok(dump.feed(datagram, |m| {
        links.extend(link_of(m));
        Ok::<(), Infallible>(())
    })?)
}

fn link_of(m: &Message<'_>) -> Option<LinkResult> {
    if m.msg_type != RTM_NEWLINK {
        return None;
    }
    Some(parse_link(m.payload).map_err(|e| {
        let index = u32_ne(m.payload.get(4..8).unwrap_or(&[])).unwrap_or(0);
        (index.cast_signed(), e)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::frame::{NLM_F_DUMP, NLM_F_REQUEST};

    #[test]
    fn request_asks_for_vfs_and_their_counters() {
        let r = link_dump_request(7);
        assert_eq!(r.len(), 40);
        assert_eq!(u32_ne(&r[0..4]), Some(40));
        assert_eq!(&r[4..6], &RTM_GETLINK.to_ne_bytes());
        assert_eq!(&r[6..8], &(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        assert_eq!(&r[34..36], &IFLA_EXT_MASK.to_ne_bytes());
        let mask = u32_ne(&r[36..40]).unwrap_or(0);
        assert_eq!(mask & RTEXT_FILTER_VF, RTEXT_FILTER_VF);
        assert_eq!(mask & RTEXT_FILTER_SKIP_STATS, 0);
    }
}
