//! A small OVSDB (RFC 7047) client: JSON-RPC over `unix:` or `tcp:`, a `monitor` of the
//! Open_vSwitch row (`other_config`) and the Bridge,
//! Port and Interface tables kept as a replica from pushed updates, and reconnection with
//! backoff. No `ovs-vsctl`, no polling.
//!
//! - [`proto`]: framing, requests, OVSDB data types (pure);
//! - [`replica`]: the monitored rows (decoded by serde from the bytes) and their joins (pure);
//! - [`message`]: one JSON-RPC message classified, its table updates decoded (pure);
//! - [`client`]: the long-lived monitor task and the handle scrapes read through.

pub mod client;
pub mod message;
pub mod proto;
pub mod replica;

pub use client::{DbEndpoint, Handle, OvsdbError, State};
pub use replica::{Interface, InterfaceView, Replica};
