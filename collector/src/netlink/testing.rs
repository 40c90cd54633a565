//! Replies as the kernel writes them, for the unit tests of this module and of the sources
//! (compiled only for tests).

use super::frame::{Message, NLM_F_MULTI, NLMSG_DONE, NLMSG_ERROR, messages, push_attr};

fn finish(msg_type: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    out.extend_from_slice(&msg_type.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(body);
    out
}

/// A message with a body of raw bytes.
pub fn message(msg_type: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    finish(msg_type, flags, seq, body)
}

/// A generic netlink message: header, command `cmd` (version 1), attributes.
pub fn genl_message(msg_type: u16, flags: u16, seq: u32, cmd: u8, attrs: &[u8]) -> Vec<u8> {
    let mut body = vec![cmd, 1, 0, 0];
    body.extend_from_slice(attrs);
    finish(msg_type, flags, seq, &body)
}

/// `NLMSG_DONE` (or, with a negative `code`, a failed dump).
pub fn done(seq: u32, code: i32) -> Vec<u8> {
    finish(NLMSG_DONE, NLM_F_MULTI, seq, &code.to_ne_bytes())
}

/// `NLMSG_ERROR` with `-errno` and the (empty) request header.
pub fn error(seq: u32, errno: i32) -> Vec<u8> {
    let mut body = (-errno).to_ne_bytes().to_vec();
    body.extend_from_slice(&[0u8; 16]);
    finish(NLMSG_ERROR, 0, seq, &body)
}

/// One attribute, padded.
pub fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    push_attr(&mut out, kind, payload);
    out
}

/// The only message of `buf` (a test failure otherwise).
pub fn only(buf: &[u8]) -> Message<'_> {
    let mut it = messages(buf);
    let m = it.next().and_then(Result::ok);
    assert!(it.next().is_none(), "more than one message in {buf:?}");
    m.unwrap_or_else(|| panic!("no message in {buf:?}"))
}

/// A netfilter netlink message: `nfgenmsg` (family, version 0, `res_id` big-endian), attributes.
pub fn nf_message(msg_type: u16, flags: u16, seq: u32, res_id: u16, attrs: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 0];
    body.extend_from_slice(&res_id.to_be_bytes());
    body.extend_from_slice(attrs);
    finish(msg_type, flags, seq, &body)
}
