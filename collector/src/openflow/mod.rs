//! A small, owned OpenFlow 1.3 codec and client, enough to read statistics from Open vSwitch.
//!
//! Layers, from the bottom:
//! - [`wire`]: a bounds-checked big-endian reader;
//! - [`message`]: message framing, HELLO negotiation, multipart requests, and pure decoders for
//!   the replies we use (port description, port, flow, group description, group and table stats);
//! - [`oxm`]: OXM/NXM match TLVs decoded into a flat set of fields;
//! - [`format`]: those fields written exactly as `ovs-ofctl dump-flows` writes a match;
//! - [`actions`]: instructions and actions written as `ovs-ofctl` writes them;
//! - [`client`]: the async connection (unix or TCP), with timeouts.
//!
//! Everything except [`client`] is pure: functions from bytes to values, tested on bytes
//! captured from a real `ovs-vswitchd` and on truncated and corrupted variants of them.

pub mod actions;
pub mod client;
pub mod format;
pub mod message;
pub mod oxm;
mod wire;

pub use client::{Client, ClientError, Endpoint};
pub use message::{Flow, FlowDecoder, FlowTable};
pub use message::{FlowStats, GroupDesc, GroupStats, GroupType, PortDesc, PortStats, TableStats};

/// OpenFlow 1.3 wire version.
pub const OFP13_VERSION: u8 = 0x04;

/// Why bytes could not be decoded. Offsets are relative to the start of the message body
/// being decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated {what} at offset {offset}: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        offset: usize,
        need: usize,
        have: usize,
    },
    #[error("bad length {len} for {what} at offset {offset}: {reason}")]
    BadLength {
        what: &'static str,
        offset: usize,
        len: usize,
        reason: &'static str,
    },
    #[error("invalid {what} at offset {offset}: {detail}")]
    Invalid {
        what: &'static str,
        offset: usize,
        detail: String,
    },
}

/// OpenFlow reserved port numbers (OpenFlow 1.0 16-bit form, as Open vSwitch prints them).
pub mod port {
    pub const MAX: u16 = 0xff00;
    pub const UNSET: u16 = 0xfff7;
    pub const IN_PORT: u16 = 0xfff8;
    pub const TABLE: u16 = 0xfff9;
    pub const NORMAL: u16 = 0xfffa;
    pub const FLOOD: u16 = 0xfffb;
    pub const ALL: u16 = 0xfffc;
    pub const CONTROLLER: u16 = 0xfffd;
    pub const LOCAL: u16 = 0xfffe;
    pub const ANY: u16 = 0xffff;

    /// Converts an OpenFlow 1.1+ 32-bit port number to the 16-bit form Open vSwitch uses
    /// internally (and prints). Returns `None` for numbers with no 16-bit equivalent.
    pub fn from_ofp11(port: u32) -> Option<u16> {
        if port < u32::from(MAX) {
            Some(port as u16)
        } else if port >= 0xffff_ff00 {
            Some((port - 0xffff_0000) as u16)
        } else {
            None
        }
    }

    /// The name Open vSwitch gives a reserved port, if `port` is one.
    pub fn reserved_name(port: u16) -> Option<&'static str> {
        Some(match port {
            IN_PORT => "IN_PORT",
            TABLE => "TABLE",
            NORMAL => "NORMAL",
            FLOOD => "FLOOD",
            ALL => "ALL",
            CONTROLLER => "CONTROLLER",
            LOCAL => "LOCAL",
            ANY => "ANY",
            UNSET => "UNSET",
            _ => return None,
        })
    }
}
