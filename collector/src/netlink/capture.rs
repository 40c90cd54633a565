//! The file format of a captured read ([`super::Socket::start_capture`]): each datagram as a
//! big-endian u32 length, then its bytes. The lab and the capture tests write it; the fixture
//! tests, the golden file and [`crate::sources::datapath::kernel::Replay`] read it.

use super::FrameError;
use super::frame::{DumpItem, Message, dump_item, messages};

/// The bytes of a capture of `datagrams`.
pub fn encode(datagrams: &[Vec<u8>]) -> Vec<u8> {
    let mut bin = Vec::with_capacity(datagrams.iter().map(|d| d.len() + 4).sum());
    for d in datagrams {
        let len = u32::try_from(d.len()).unwrap_or(u32::MAX);
        bin.extend_from_slice(&len.to_be_bytes());
        bin.extend_from_slice(d);
    }
    bin
}

/// The datagrams of a capture; a cut length or datagram is an error.
pub fn decode(bin: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    let mut out = Vec::new();
    let mut rest = bin;
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err("a truncated length");
        };
        let len = u32::from_be_bytes(*len) as usize;
        let Some(d) = tail.get(..len) else {
            return Err("a truncated datagram");
        };
        out.push(d);
        rest = &tail[len..];
    }
    Ok(out)
}

/// The data messages of each reply in `datagrams`, in order; a reply ends at `NLMSG_DONE` or an
/// acknowledgement. An error reply in the capture is an error.
pub fn replies<'a>(datagrams: &[&'a [u8]]) -> Result<Vec<Vec<Message<'a>>>, FrameError> {
    let mut out = vec![Vec::new()];
    for d in datagrams {
        for m in messages(d) {
            let m = m?;
            match dump_item(m, m.seq)? {
                Some(DumpItem::Data(m)) => {
                    if let Some(v) = out.last_mut() {
                        v.push(m);
                    }
                }
                Some(DumpItem::Done) => out.push(Vec::new()),
                Some(DumpItem::Error(errno)) => return Err(FrameError::ErrorInCapture { errno }),
                None => {}
            }
        }
    }
    out.pop();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::testing::{done, genl_message};

    #[test]
    fn round_trip_and_cuts() {
        let a = genl_message(0x20, 2, 1, 3, &[]);
        let b = done(1, 0);
        let bin = encode(&[a.clone(), b.clone()]);
        let d = decode(&bin).expect("a capture");
        assert_eq!(d, [a.as_slice(), b.as_slice()]);
        let r = replies(&d).expect("replies");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].len(), 1);
        for n in 1..bin.len() {
            if n != a.len() + 4 {
                assert!(decode(&bin[..n]).is_err(), "cut at {n}");
            }
        }
    }
}
