//! A dump's replies, one datagram at a time, within bounds: the state of one dump, fed by
//! [`super::Socket::dump`] or directly by tests with captured datagrams.

use super::frame::{self, DumpItem, Message};
use super::{DumpError, NetlinkError};
use crate::limits;

/// Bounds on one dump's reply. The kernel ends every dump; these make sure a reply that does not
/// end, or is far larger than any real table, is refused rather than read forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpLimits {
    /// Data messages per dump (`netlink_dump_messages`).
    pub max_messages: usize,
    /// Bytes of datagrams per dump (`netlink_dump_bytes`).
    pub max_bytes: usize,
}

/// 1,000,000 messages: an IPVS service or destination, a link, a datapath flow or a conntrack
/// entry is one message; the largest tables this collector reads stay below that.
pub const MAX_DUMP_MESSAGES: usize = 1_000_000;
/// 512 MiB: a million messages of up to ≈500 bytes.
pub const MAX_DUMP_BYTES: usize = 512 << 20;

impl Default for DumpLimits {
    fn default() -> Self {
        DumpLimits {
            max_messages: MAX_DUMP_MESSAGES,
            max_bytes: MAX_DUMP_BYTES,
        }
    }
}

/// Where one dump is.
#[derive(Debug, Clone)]
pub struct Dump {
    seq: u32,
    limits: DumpLimits,
    messages: usize,
    bytes: usize,
    done: bool,
}

impl Dump {
    /// The reply to the request sent with sequence number `seq`.
    pub fn new(seq: u32, limits: DumpLimits) -> Dump {
        Dump {
            seq,
            limits,
            messages: 0,
            bytes: 0,
            done: false,
        }
    }

    /// True once `NLMSG_DONE` (or an acknowledgement) was read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Data messages read so far.
    pub fn messages(&self) -> usize {
        self.messages
    }

    /// Reads one datagram of the reply, calling `on_data` for each data message; true at the
    /// end of the dump. A kernel error (`NLMSG_ERROR`, or `NLMSG_DONE` with an errno) is
    /// [`NetlinkError::Kernel`].
    pub fn feed<E>(
        &mut self,
        datagram: &[u8],
        mut on_data: impl FnMut(&Message<'_>) -> Result<(), E>,
    ) -> Result<bool, DumpError<E>>
    where
        E: std::error::Error + 'static,
    {
        if self.done {
            return Ok(true);
        }
        self.bytes = self.bytes.saturating_add(datagram.len());
        if self.bytes > self.limits.max_bytes {
            limits::exceeded("netlink_dump_bytes");
            return Err(NetlinkError::TooLarge {
                what: "bytes",
                limit: self.limits.max_bytes,
            }
            .into());
        }
        for msg in frame::messages(datagram) {
            let msg = msg.map_err(|source| NetlinkError::Frame { source })?;
            match frame::dump_item(msg, self.seq)
                .map_err(|source| NetlinkError::Frame { source })?
            {
                None => {}
                Some(DumpItem::Data(m)) => {
                    self.messages += 1;
                    if self.messages > self.limits.max_messages {
                        limits::exceeded("netlink_dump_messages");
                        return Err(NetlinkError::TooLarge {
                            what: "messages",
                            limit: self.limits.max_messages,
                        }
                        .into());
                    }
                    on_data(&m).map_err(|source| DumpError::Decode { source })?;
                }
                Some(DumpItem::Done) => {
                    self.done = true;
                    return Ok(true);
                }
                Some(DumpItem::Error(errno)) => return Err(NetlinkError::kernel(errno).into()),
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::FrameError;
    use crate::netlink::testing::{done, error, genl_message};
    use std::convert::Infallible;

    fn count(d: &mut Dump, datagram: &[u8], n: &mut usize) -> Result<bool, DumpError<Infallible>> {
        d.feed(datagram, |_| {
            *n += 1;
            Ok(())
        })
    }

    #[test]
    fn a_dump_ends_at_done_across_datagrams() {
        let mut d = Dump::new(9, DumpLimits::default());
        let mut n = 0;
        let mut first = genl_message(0x20, 2, 9, 1, &[]);
        first.extend(genl_message(0x20, 2, 9, 1, &[]));
        assert!(matches!(count(&mut d, &first, &mut n), Ok(false)));
        let mut last = genl_message(0x20, 2, 9, 1, &[]);
        last.extend(done(9, 0));
        assert!(matches!(count(&mut d, &last, &mut n), Ok(true)));
        assert_eq!((n, d.messages(), d.is_done()), (3, 3, true));
    }

    #[test]
    fn kernel_errors_and_bad_framing_end_the_dump() {
        let mut d = Dump::new(9, DumpLimits::default());
        let mut n = 0;
        let err = count(&mut d, &error(9, 1), &mut n).err();
        assert!(
            matches!(&err, Some(DumpError::Netlink(NetlinkError::Kernel { errno, hint })) if *errno == nix::errno::Errno::EPERM && hint.contains("CAP_NET_ADMIN")),
            "{err:?}"
        );
        let err = count(&mut d, &done(9, -4), &mut n).err();
        assert!(matches!(
            err,
            Some(DumpError::Netlink(NetlinkError::Kernel {
                errno: nix::errno::Errno::EINTR,
                ..
            }))
        ));
        let err = count(&mut d, &done(8, 0), &mut n).err();
        assert!(matches!(
            err,
            Some(DumpError::Netlink(NetlinkError::Frame {
                source: FrameError::WrongSequence { got: 8, want: 9 }
            }))
        ));
    }

    #[test]
    fn the_callback_error_is_kept() {
        let mut d = Dump::new(1, DumpLimits::default());
        let r = d.feed(&genl_message(0x20, 2, 1, 1, &[]), |_| {
            Err(FrameError::Overrun)
        });
        assert!(matches!(
            r,
            Err(DumpError::Decode {
                source: FrameError::Overrun
            })
        ));
    }

    #[test]
    fn limits_stop_a_reply_that_does_not_end() {
        let msg = genl_message(0x20, 2, 1, 1, &[]);
        let mut d = Dump::new(
            1,
            DumpLimits {
                max_messages: 3,
                max_bytes: usize::MAX,
            },
        );
        let before = crate::limits::count("netlink_dump_messages");
        let mut n = 0;
        let mut fed = 0;
        let err = loop {
            fed += 1;
            match count(&mut d, &msg, &mut n) {
                Ok(false) if fed < 100 => {}
                other => break other,
            }
        };
        assert!(matches!(
            err,
            Err(DumpError::Netlink(NetlinkError::TooLarge {
                what: "messages",
                limit: 3
            }))
        ));
        assert_eq!((n, fed), (3, 4));
        assert!(crate::limits::count("netlink_dump_messages") > before);

        let mut d = Dump::new(
            1,
            DumpLimits {
                max_messages: usize::MAX,
                max_bytes: 2 * msg.len(),
            },
        );
        let before = crate::limits::count("netlink_dump_bytes");
        n = 0;
        assert!(matches!(count(&mut d, &msg, &mut n), Ok(false)));
        assert!(matches!(count(&mut d, &msg, &mut n), Ok(false)));
        assert!(matches!(
            count(&mut d, &msg, &mut n),
            Err(DumpError::Netlink(NetlinkError::TooLarge {
                what: "bytes",
                ..
            }))
        ));
        assert_eq!(n, 2);
        assert!(crate::limits::count("netlink_dump_bytes") > before);
    }
}
