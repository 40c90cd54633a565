//! Netlink, once for every source that speaks it: IPVS and the coming OVS datapath
//! (`ovs_datapath`, `ovs_vport`) over generic netlink, SR-IOV links over rtnetlink, conntrack
//! over ctnetlink.
//!
//! - [`frame`]: pure framing. The messages of a datagram, the attributes (NLAs) of a body with
//!   bounds checks and typed values, what a reply message means (`NLMSG_DONE`, `NLMSG_ERROR`,
//!   an interrupted dump), and requests ([`Request`]).
//! - [`dump`]: one dump's reply fed a datagram at a time, within [`DumpLimits`] (counted in
//!   `dataplane_collector_limit_exceeded_total`, docs/limits.md).
//! - [`socket`]: a blocking socket of a protocol, opened in the calling thread's network
//!   namespace or after entering one, with a receive timeout; `dump` and `request`.
//! - [`genl`]: the generic netlink controller: a family id by name from a dump of every family,
//!   which never makes the kernel load a module (a lookup by name would).
//!
//! Source-specific decoding (IPVS services, VF counters) lives with each source and gets its
//! attributes from here. Why owned code and not `neli` or `netlink-packet-*`: docs/netlink.md.

pub mod capture;
pub mod dump;
pub mod frame;
pub mod genl;
pub mod socket;
#[cfg(test)]
pub(crate) mod testing;

pub use dump::{Dump, DumpLimits};
pub use frame::{
    Attr, DumpItem, Message, NfGenMsg, Request, attrs, dump_item, messages, nfgenmsg, push_attr,
};
pub use socket::{Protocol, Socket};

use nix::errno::Errno;
use std::path::PathBuf;
use std::time::Duration;

/// What can be wrong with the bytes of a reply. Every decoder returns one of these instead of
/// panicking, whatever the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("netlink message truncated: {available} bytes left, a header needs 16")]
    ShortHeader { available: usize },
    #[error("netlink message claims {declared} bytes but {available} are left")]
    BadMessageLength { declared: usize, available: usize },
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
    #[error("generic netlink header missing from a {len}-byte message of type {msg_type}")]
    ShortGenlHeader { msg_type: u16, len: usize },
    #[error("netfilter netlink header missing from a {len}-byte message of type {msg_type}")]
    ShortNfgenHeader { msg_type: u16, len: usize },
    #[error("unexpected generic netlink command {cmd} (expected {want})")]
    UnexpectedCommand { cmd: u8, want: u8 },
    #[error("error message of {len} bytes is too short for an errno")]
    ShortError { len: usize },
    #[error("reply has sequence number {got}, the request had {want}")]
    WrongSequence { got: u32, want: u32 },
    #[error("unexpected message type {msg_type} in a dump reply")]
    UnexpectedType { msg_type: u16 },
    #[error("the kernel interrupted the dump (the table changed while it was read)")]
    DumpInterrupted,
    #[error("the kernel reported a receive buffer overrun")]
    Overrun,
    #[error("a captured read holds an error reply (errno {errno})")]
    ErrorInCapture { errno: i32 },
}

/// What can go wrong opening a socket, talking over it, or with the framing of a reply.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("network namespace {path} does not exist")]
    NamespaceAbsent { path: PathBuf },
    #[error("cannot open network namespace {path}")]
    OpenNamespace {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot enter network namespace {path}{hint}")]
    EnterNamespace {
        path: PathBuf,
        hint: &'static str,
        #[source]
        source: Errno,
    },
    #[error("cannot run a thread to enter a network namespace")]
    Thread {
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open a {protocol} netlink socket")]
    Open {
        protocol: &'static str,
        #[source]
        source: Errno,
    },
    #[error("cannot set the socket's receive timeout")]
    Timeout {
        #[source]
        source: Errno,
    },
    #[error("cannot send the request")]
    Send {
        #[source]
        source: Errno,
    },
    #[error("no reply within {timeout:?}")]
    NoReply { timeout: Duration },
    #[error("cannot receive the reply")]
    Receive {
        #[source]
        source: Errno,
    },
    #[error("a {len}-byte reply does not fit the {buffer}-byte receive buffer")]
    Truncated { len: usize, buffer: usize },
    #[error("the reply has more than {limit} {what}, the bound of one dump")]
    TooLarge { what: &'static str, limit: usize },
    #[error("the kernel refused the request: {errno}{hint}")]
    Kernel { errno: Errno, hint: &'static str },
    #[error("malformed reply")]
    Frame {
        #[source]
        source: FrameError,
    },
}

impl NetlinkError {
    /// The kernel's refusal, with a hint for the usual cause.
    pub fn kernel(errno: i32) -> NetlinkError {
        let errno = Errno::from_raw(errno);
        let hint = match errno {
            Errno::EPERM => " (this request needs CAP_NET_ADMIN)",
            _ => "",
        };
        NetlinkError::Kernel { errno, hint }
    }
}

/// A dump that failed: in netlink, or in the caller's decoding of one of its messages.
#[derive(Debug, thiserror::Error)]
pub enum DumpError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error("cannot decode a message of the reply")]
    Decode {
        #[source]
        source: E,
    },
}

impl From<DumpError<std::convert::Infallible>> for NetlinkError {
    fn from(e: DumpError<std::convert::Infallible>) -> NetlinkError {
        match e {
            DumpError::Netlink(e) => e,
            DumpError::Decode { source } => match source {},
        }
    }
}
