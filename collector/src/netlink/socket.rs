//! A blocking netlink socket: send a request, read the reply within a timeout. A socket belongs
//! to the network namespace it was created in, whatever thread later uses it.

use super::dump::{Dump, DumpLimits};
use super::frame::{self, DumpItem, Message};
use super::{DumpError, NetlinkError};
use crate::limits;
use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto,
    setsockopt, socket, sockopt,
};
use nix::sys::time::{TimeVal, TimeValLike};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

/// The netlink protocols this collector speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `NETLINK_ROUTE`: links (SR-IOV VFs).
    Route,
    /// `NETLINK_GENERIC`: IPVS, the OVS datapath.
    Generic,
    /// `NETLINK_NETFILTER`: conntrack.
    Netfilter,
}

impl Protocol {
    fn sock(self) -> SockProtocol {
        match self {
            Protocol::Route => SockProtocol::NetlinkRoute,
            Protocol::Generic => SockProtocol::NetlinkGeneric,
            Protocol::Netfilter => SockProtocol::NetlinkNetFilter,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Protocol::Route => "route",
            Protocol::Generic => "generic",
            Protocol::Netfilter => "netfilter",
        }
    }
}

/// 64 KiB: big enough for any dump datagram of generic netlink (the kernel sizes them by the
/// reader's buffer, at most 32 KiB). [`Socket::set_receive_buffer`] for more.
pub const DEFAULT_RECV_BUFFER: usize = 64 * 1024;

/// Enters the network namespace at `path` on the calling thread. Call only on a thread that is
/// thrown away afterwards: the thread stays in that namespace.
pub fn enter_netns(path: &Path) -> Result<(), NetlinkError> {
    let file = std::fs::File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            NetlinkError::NamespaceAbsent {
                path: path.to_owned(),
            }
        } else {
            NetlinkError::OpenNamespace {
                path: path.to_owned(),
                source,
            }
        }
    })?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|source| {
        let hint = match source {
            Errno::EINVAL => " (not a network namespace)",
            Errno::EPERM => " (entering a namespace needs CAP_SYS_ADMIN)",
            _ => "",
        };
        NetlinkError::EnterNamespace {
            path: path.to_owned(),
            hint,
            source,
        }
    })
}

pub struct Socket {
    fd: OwnedFd,
    seq: u32,
    timeout: Duration,
    buf: Vec<u8>,
    limits: DumpLimits,
    /// Every datagram received, when capturing (the lab stores them as test fixtures).
    capture: Option<Vec<Vec<u8>>>,
}

impl Socket {
    /// A socket in the calling thread's network namespace. Each receive waits at most `timeout`.
    pub fn open(protocol: Protocol, timeout: Duration) -> Result<Socket, NetlinkError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            protocol.sock(),
        )
        .map_err(|source| NetlinkError::Open {
            protocol: protocol.name(),
            source,
        })?;
        let ms = i64::try_from(timeout.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::milliseconds(ms))
            .map_err(|source| NetlinkError::Timeout { source })?;
        Ok(Socket {
            fd,
            seq: std::process::id().wrapping_mul(0x9e37_79b9),
            timeout,
            buf: vec![0; DEFAULT_RECV_BUFFER],
            limits: DumpLimits::default(),
            capture: None,
        })
    }

    /// A socket in the network namespace at `netns`, which the calling thread enters first
    /// ([`enter_netns`]: call it only on a thread that is thrown away afterwards); `None` is
    /// [`Socket::open`] in the calling thread's namespace.
    pub fn open_in(
        protocol: Protocol,
        timeout: Duration,
        netns: Option<&Path>,
    ) -> Result<Socket, NetlinkError> {
        if let Some(path) = netns {
            enter_netns(path)?;
        }
        Socket::open(protocol, timeout)
    }

    /// Receives datagrams of up to `bytes` (a larger one is [`NetlinkError::Truncated`], never
    /// a silent cut).
    pub fn set_receive_buffer(&mut self, bytes: usize) {
        self.buf = vec![0; bytes.max(frame::NLMSG_HDRLEN)];
    }

    /// The bounds of each dump from now on.
    pub fn set_limits(&mut self, limits: DumpLimits) {
        self.limits = limits;
    }

    /// Starts keeping every received datagram.
    pub fn start_capture(&mut self) {
        self.capture = Some(Vec::new());
    }

    /// The datagrams received since [`Socket::start_capture`].
    pub fn take_capture(&mut self) -> Vec<Vec<u8>> {
        self.capture.take().unwrap_or_default()
    }

    /// The sequence number for the next request.
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn send(&self, req: &[u8]) -> Result<(), NetlinkError> {
        let kernel = NetlinkAddr::new(0, 0);
        loop {
            match sendto(self.fd.as_raw_fd(), req, &kernel, MsgFlags::empty()) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(source) => return Err(NetlinkError::Send { source }),
            }
        }
    }

    fn receive(&mut self) -> Result<usize, NetlinkError> {
        loop {
            // MSG_TRUNC: the datagram's real length, even when it did not fit.
            match recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::MSG_TRUNC) {
                Ok(n) if n > self.buf.len() => {
                    limits::exceeded("netlink_datagram_bytes");
                    return Err(NetlinkError::Truncated {
                        len: n,
                        buffer: self.buf.len(),
                    });
                }
                Ok(n) => {
                    if let Some(c) = self.capture.as_mut() {
                        c.push(self.buf[..n].to_vec());
                    }
                    return Ok(n);
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => {
                    return Err(NetlinkError::NoReply {
                        timeout: self.timeout,
                    });
                }
                Err(source) => return Err(NetlinkError::Receive { source }),
            }
        }
    }

    /// Sends `req` (built with sequence number `seq`) and calls `on_data` for each data message
    /// until the kernel ends the dump. Each receive waits at most the socket's timeout; the
    /// reply is bounded by [`Socket::set_limits`].
    pub fn dump<E>(
        &mut self,
        req: &[u8],
        seq: u32,
        mut on_data: impl FnMut(&Message<'_>) -> Result<(), E>,
    ) -> Result<(), DumpError<E>>
    where
        E: std::error::Error + 'static,
    {
        self.send(req)?;
        let mut dump = Dump::new(seq, self.limits);
        loop {
            let n = self.receive()?;
            if dump.feed(&self.buf[..n], &mut on_data)? {
                return Ok(());
            }
        }
    }

    /// Sends a request that is not a dump and returns the errno of the kernel's answer (0 for a
    /// data reply or an acknowledgement). The lab uses it to look a family up by name.
    pub fn request(&mut self, req: &[u8], seq: u32) -> Result<i32, NetlinkError> {
        self.send(req)?;
        let n = self.receive()?;
        for msg in frame::messages(&self.buf[..n]) {
            let msg = msg.map_err(|source| NetlinkError::Frame { source })?;
            match frame::dump_item(msg, seq).map_err(|source| NetlinkError::Frame { source })? {
                Some(DumpItem::Error(e)) => return Ok(e),
                Some(_) => return Ok(0),
                None => {}
            }
        }
        Ok(0)
    }
}
