//! A blocking generic netlink socket: send a dump request, hand each data message of the reply
//! to a callback. A socket belongs to the network namespace it was created in, whatever thread
//! later uses it.

use super::parse::{self, DumpItem, Message, ParseError};
use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto,
    setsockopt, socket, sockopt,
};
use nix::sys::time::{TimeVal, TimeValLike};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

/// Big enough for any dump datagram: the kernel sizes them by the reader's buffer, at most
/// 32 KiB.
const RECV_BUFFER: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot open a generic netlink socket")]
    Open {
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
    #[error("a {len}-byte reply does not fit the {RECV_BUFFER}-byte receive buffer")]
    Truncated { len: usize },
    #[error("the kernel refused the request: {errno}{hint}")]
    Kernel { errno: Errno, hint: &'static str },
    #[error("malformed reply")]
    Parse {
        #[from]
        source: ParseError,
    },
}

pub struct Socket {
    fd: OwnedFd,
    seq: u32,
    timeout: Duration,
    buf: Vec<u8>,
    /// Every datagram received, when capturing (the lab stores them as test fixtures).
    capture: Option<Vec<Vec<u8>>>,
}

impl Socket {
    /// A socket in the calling thread's network namespace. Each receive waits at most `timeout`.
    pub fn open(timeout: Duration) -> Result<Socket, NetlinkError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkGeneric,
        )
        .map_err(|source| NetlinkError::Open { source })?;
        let ms = i64::try_from(timeout.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::milliseconds(ms))
            .map_err(|source| NetlinkError::Timeout { source })?;
        Ok(Socket {
            fd,
            seq: std::process::id().wrapping_mul(0x9e37_79b9),
            timeout,
            buf: vec![0; RECV_BUFFER],
            capture: None,
        })
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
                Ok(n) if n > self.buf.len() => return Err(NetlinkError::Truncated { len: n }),
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
    /// until the kernel ends the dump.
    pub fn dump(
        &mut self,
        req: &[u8],
        seq: u32,
        mut on_data: impl FnMut(&Message<'_>) -> Result<(), ParseError>,
    ) -> Result<(), NetlinkError> {
        self.send(req)?;
        loop {
            let n = self.receive()?;
            for msg in parse::messages(&self.buf[..n]) {
                match parse::dump_item(msg?, seq)? {
                    None => {}
                    Some(DumpItem::Data(m)) => on_data(&m)?,
                    Some(DumpItem::Done) => return Ok(()),
                    Some(DumpItem::Error(errno)) => {
                        let errno = Errno::from_raw(errno);
                        let hint = if errno == Errno::EPERM {
                            " (reading IPVS needs CAP_NET_ADMIN)"
                        } else {
                            ""
                        };
                        return Err(NetlinkError::Kernel { errno, hint });
                    }
                }
            }
        }
    }

    /// Sends a request that is not a dump and returns the errno of the kernel's answer (0 for a
    /// data reply or an acknowledgement). The lab uses it to look a family up by name.
    pub fn request(&mut self, req: &[u8], seq: u32) -> Result<i32, NetlinkError> {
        self.send(req)?;
        let n = self.receive()?;
        for msg in parse::messages(&self.buf[..n]) {
            match parse::dump_item(msg?, seq)? {
                Some(DumpItem::Error(e)) => return Ok(e),
                Some(_) => return Ok(0),
                None => {}
            }
        }
        Ok(0)
    }
}
