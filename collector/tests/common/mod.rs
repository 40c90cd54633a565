//! A fake OpenFlow 1.3 switch on a unix socket that replays captured multipart replies, and
//! misbehaves on request (wrong version, silence, errors) for the fault tests.

#![allow(dead_code)]

pub mod conntrack;
pub mod ebpf;
pub mod ipvs;
pub mod kubelet;
pub mod ovsdb;
#[path = "../../../tests/src/promtool.rs"]
pub mod promtool;
pub mod unixctl;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Length-prefixed bodies from a fixture file.
pub fn load_bodies(name: &str) -> Vec<Vec<u8>> {
    let bin = std::fs::read(Path::new(FIXTURES).join(name)).unwrap_or_default();
    let mut out = Vec::new();
    let mut rest = bin.as_slice();
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        out.push(rest[4..4 + len].to_vec());
        rest = &rest[4 + len..];
    }
    out
}

/// The demo bridge captured from a real ovs-vswitchd: multipart type -> reply bodies.
pub fn demo_replies() -> HashMap<u16, Vec<Vec<u8>>> {
    let mut m = HashMap::new();
    for (kind, name) in [
        (13u16, "port-desc"),
        (4, "port-stats"),
        (3, "table-stats"),
        (7, "group-desc"),
        (6, "group-stats"),
        (1, "flow-stats"),
    ] {
        m.insert(kind, load_bodies(&format!("demo.{name}.bin")));
    }
    m
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    Normal,
    /// HELLO offering OpenFlow 1.0 only.
    OnlyOf10,
    /// Accepts the connection and never says anything.
    Silent,
    /// Answers every multipart request with OFPT_ERROR BAD_REQUEST/BAD_MULTIPART.
    Reject,
    /// Sends an ECHO_REQUEST before each reply (the client must answer and carry on).
    EchoFirst,
}

/// Serves `replies` at `path` until the runtime ends.
pub async fn serve(path: PathBuf, replies: HashMap<u16, Vec<Vec<u8>>>, behavior: Behavior) {
    let _ = std::fs::remove_file(&path);
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => panic!("bind {}: {e}", path.display()),
    };
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let replies = replies.clone();
            tokio::spawn(async move {
                if behavior == Behavior::Silent {
                    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                    return;
                }
                let hello: Vec<u8> = if behavior == Behavior::OnlyOf10 {
                    vec![1, 0, 0, 16, 0, 0, 0, 1, 0, 1, 0, 8, 0, 0, 0, 0b10]
                } else {
                    vec![4, 0, 0, 16, 0, 0, 0, 1, 0, 1, 0, 8, 0, 0, 0, 0b1_0010]
                };
                if sock.write_all(&hello).await.is_err() {
                    return;
                }
                loop {
                    let mut hdr = [0u8; 8];
                    if sock.read_exact(&mut hdr).await.is_err() {
                        return;
                    }
                    let len = u16::from_be_bytes([hdr[2], hdr[3]]) as usize;
                    let mut body = vec![0u8; len.saturating_sub(8)];
                    if sock.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let xid = [hdr[4], hdr[5], hdr[6], hdr[7]];
                    if hdr[1] != 18 {
                        continue; // HELLO, ECHO_REPLY: nothing to answer
                    }
                    let kind = u16::from_be_bytes([body[0], body[1]]);
                    if behavior == Behavior::Reject {
                        let mut e = vec![4, 1, 0, 12];
                        e.extend_from_slice(&xid);
                        e.extend_from_slice(&[0, 1, 0, 2]);
                        let _ = sock.write_all(&e).await;
                        continue;
                    }
                    if behavior == Behavior::EchoFirst {
                        let echo = [4u8, 2, 0, 8, 0xee, 0xee, 0xee, 0xee];
                        let _ = sock.write_all(&echo).await;
                    }
                    let bodies = replies
                        .get(&kind)
                        .cloned()
                        .unwrap_or_else(|| vec![Vec::new()]);
                    let n = bodies.len().max(1);
                    for i in 0..n {
                        let b = bodies.get(i).cloned().unwrap_or_default();
                        let total = 16 + b.len();
                        let mut m = vec![4, 19];
                        m.extend_from_slice(&(total as u16).to_be_bytes());
                        m.extend_from_slice(&xid);
                        m.extend_from_slice(&kind.to_be_bytes());
                        let more: u16 = if i + 1 < n { 1 } else { 0 };
                        m.extend_from_slice(&more.to_be_bytes());
                        m.extend_from_slice(&[0; 4]);
                        m.extend_from_slice(&b);
                        if sock.write_all(&m).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
}

/// The bridge name in the demo capture (its LOCAL port's name).
pub fn demo_bridge_name() -> String {
    let mut descs = Vec::new();
    for b in load_bodies("demo.port-desc.bin") {
        let _ = dataplane_collector::openflow::message::decode_port_descs(&b, &mut descs);
    }
    descs
        .into_iter()
        .find(|d| d.port_no == 0xfffe)
        .map(|d| d.name)
        .unwrap_or_else(|| "br-demo".to_owned())
}

/// The demo capture's pod ports (every port but LOCAL), by port number.
pub fn demo_pod_ports() -> Vec<String> {
    let mut descs = Vec::new();
    for b in load_bodies("demo.port-desc.bin") {
        let _ = dataplane_collector::openflow::message::decode_port_descs(&b, &mut descs);
    }
    descs.sort_by_key(|d| d.port_no);
    descs
        .into_iter()
        .filter(|d| d.port_no != 0xfffe)
        .map(|d| d.name)
        .collect()
}
