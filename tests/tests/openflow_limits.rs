//! A hostile switch: a fake OpenFlow 1.3 peer on a `<bridge>.mgmt` socket that claims 2^32-1
//! flows, or never ends its reply. The daemon (in this process) must answer, stay alive and
//! keep its memory bounded, and count the bound it hit. Needs no root: the socket is in a
//! temporary run directory.

use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use testbed::daemon::Daemon;
use testbed::prom;

const OFP13: u8 = 4;
const HELLO: u8 = 0;
const MULTIPART_REQUEST: u8 = 18;
const MULTIPART_REPLY: u8 = 19;
const MP_FLOW: u16 = 1;
const MP_TABLE: u16 = 3;
const REPLY_MORE: u16 = 1;

#[derive(Clone, Copy)]
enum Hostile {
    /// Table stats say 2^32-1 active flows; the flow reply holds two.
    ClaimsFourBillionFlows,
    /// Flow replies of 1,000 flows each, every one marked "more", until the client leaves.
    EndlessFlows,
    /// Empty flow replies marked "more", until the client leaves.
    EndlessEmptyReplies,
}

fn header(msg_type: u8, len: usize, xid: u32) -> Vec<u8> {
    let mut v = vec![OFP13, msg_type];
    v.extend_from_slice(&(len as u16).to_be_bytes());
    v.extend_from_slice(&xid.to_be_bytes());
    v
}

fn multipart_reply(xid: u32, kind: u16, more: bool, body: &[u8]) -> Vec<u8> {
    let mut v = header(MULTIPART_REPLY, 16 + body.len(), xid);
    v.extend_from_slice(&kind.to_be_bytes());
    v.extend_from_slice(&(if more { REPLY_MORE } else { 0 }).to_be_bytes());
    v.extend_from_slice(&[0; 4]);
    v.extend_from_slice(body);
    v
}

/// One `ofp_flow_stats` with an empty match and no instructions (56 bytes).
fn flow_stats(priority: u16, cookie: u64) -> Vec<u8> {
    let mut v = 56u16.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 0]); // table 0, pad
    v.extend_from_slice(&[0; 8]); // duration
    v.extend_from_slice(&priority.to_be_bytes());
    v.extend_from_slice(&[0; 6]); // idle, hard, flags
    v.extend_from_slice(&[0; 4]); // pad
    v.extend_from_slice(&cookie.to_be_bytes());
    v.extend_from_slice(&1u64.to_be_bytes()); // packets
    v.extend_from_slice(&100u64.to_be_bytes()); // bytes
    v.extend_from_slice(&[0, 1, 0, 4, 0, 0, 0, 0]); // OXM match, no fields, padded
    v
}

fn read_msg(s: &mut UnixStream) -> std::io::Result<Vec<u8>> {
    let mut h = [0u8; 8];
    s.read_exact(&mut h)?;
    let len = usize::from(u16::from_be_bytes([h[2], h[3]])).max(8);
    let mut m = h.to_vec();
    m.resize(len, 0);
    s.read_exact(&mut m[8..])?;
    Ok(m)
}

/// Answers one connection as `mode` says; returns when the client goes.
fn serve(mut s: UnixStream, mode: Hostile) -> std::io::Result<()> {
    let hello = read_msg(&mut s)?;
    let xid = u32::from_be_bytes([hello[4], hello[5], hello[6], hello[7]]);
    s.write_all(&header(HELLO, 8, xid))?;
    loop {
        let m = read_msg(&mut s)?;
        if m[1] != MULTIPART_REQUEST {
            continue;
        }
        let xid = u32::from_be_bytes([m[4], m[5], m[6], m[7]]);
        let kind = u16::from_be_bytes([m[8], m[9]]);
        match (kind, mode) {
            (MP_TABLE, _) => {
                let mut t = vec![0u8; 4];
                t.extend_from_slice(&u32::MAX.to_be_bytes()); // active_count
                t.extend_from_slice(&[0; 16]);
                s.write_all(&multipart_reply(xid, MP_TABLE, false, &t))?;
            }
            (MP_FLOW, Hostile::ClaimsFourBillionFlows) => {
                let body = [flow_stats(10, 1), flow_stats(0, 2)].concat();
                s.write_all(&multipart_reply(xid, MP_FLOW, false, &body))?;
            }
            (MP_FLOW, Hostile::EndlessFlows) => {
                let body: Vec<u8> = (0..1000).flat_map(|i| flow_stats(i, 7)).collect();
                let msg = multipart_reply(xid, MP_FLOW, true, &body);
                loop {
                    s.write_all(&msg)?;
                }
            }
            (MP_FLOW, Hostile::EndlessEmptyReplies) => {
                let msg = multipart_reply(xid, MP_FLOW, true, &[]);
                loop {
                    s.write_all(&msg)?;
                }
            }
            (other, _) => s.write_all(&multipart_reply(xid, other, false, &[]))?,
        }
    }
}

fn fake_switch(rundir: &Path, mode: Hostile) -> Result<()> {
    let listener = UnixListener::bind(rundir.join("evil.mgmt")).context("bind fake switch")?;
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            std::thread::spawn(move || {
                let _ = serve(conn, mode);
            });
        }
    });
    Ok(())
}

/// The peak resident memory of this process (the daemon runs in it), in bytes.
fn peak_rss() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmHWM in /proc/self/status")?;
    Ok(kb * 1024)
}

fn start(mode: Hostile, extra: &[&str]) -> Result<(tempfile::TempDir, Daemon)> {
    let rundir = tempfile::tempdir()?;
    fake_switch(rundir.path(), mode)?;
    let mut args = vec![
        format!("--ovs.rundir={}", rundir.path().display()),
        format!("--ovs.db=unix:{}/no-db.sock", rundir.path().display()),
        "--scrape.timeout=20s".to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let d = Daemon::start(&args)?;
    Ok((rundir, d))
}

fn value(text: &str, name: &str, label: (&str, &str)) -> Option<f64> {
    let samples = prom::parse(text).ok()?;
    samples
        .iter()
        .find(|s| s.name == name && s.label(label.0) == label.1)
        .map(|s| s.value)
}

/// 256 MiB over what the process held before: far below a reservation for 2^32 flows (274 GB)
/// or an unbounded read, far above what a bounded scrape needs.
const MEMORY_SLACK: u64 = 256 << 20;

#[test]
fn a_switch_claiming_four_billion_flows_gets_a_bounded_reservation() -> Result<()> {
    let before = peak_rss()?;
    let (_dir, d) = start(Hostile::ClaimsFourBillionFlows, &[])?;
    let (status, text) = d.get("/flows")?;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        value(&text, "ovs_openflow_up", ("bridge", "evil")),
        Some(1.0),
        "{text}"
    );
    let flows = prom::parse(&text)?
        .iter()
        .filter(|s| s.name == "ovs_flow_packets_total")
        .count();
    assert_eq!(flows, 2, "{text}");
    assert!(peak_rss()? < before + MEMORY_SLACK);
    Ok(())
}

#[test]
fn a_switch_that_never_ends_its_reply_hits_the_flow_bound() -> Result<()> {
    let before = peak_rss()?;
    let (_dir, d) = start(Hostile::EndlessFlows, &["--ovs.max-flows=20000"])?;
    let (status, text) = d.get("/flows")?;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        value(&text, "ovs_openflow_up", ("bridge", "evil")),
        Some(0.0),
        "{text}"
    );
    assert!(
        value(
            &text,
            "dataplane_collector_limit_exceeded_total",
            ("limit", "openflow_flows")
        )
        .is_some_and(|v| v >= 1.0),
        "{text}"
    );
    assert_eq!(d.get("/healthz")?.0, 200);
    assert!(peak_rss()? < before + MEMORY_SLACK);
    Ok(())
}

#[test]
fn a_switch_that_never_ends_its_reply_hits_the_byte_bound() -> Result<()> {
    let (_dir, d) = start(Hostile::EndlessFlows, &["--ovs.max-reply-bytes=1048576"])?;
    let (status, text) = d.get("/flows")?;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        value(&text, "ovs_openflow_up", ("bridge", "evil")),
        Some(0.0),
        "{text}"
    );
    assert!(
        value(
            &text,
            "dataplane_collector_limit_exceeded_total",
            ("limit", "openflow_reply_bytes")
        )
        .is_some_and(|v| v >= 1.0),
        "{text}"
    );
    Ok(())
}

#[test]
fn endless_empty_replies_hit_the_message_bound() -> Result<()> {
    let (_dir, d) = start(Hostile::EndlessEmptyReplies, &[])?;
    let (status, text) = d.get("/flows")?;
    assert_eq!(status, 200, "{text}");
    assert!(
        value(
            &text,
            "dataplane_collector_limit_exceeded_total",
            ("limit", "openflow_reply_messages")
        )
        .is_some_and(|v| v >= 1.0),
        "{text}"
    );
    assert_eq!(d.get("/healthz")?.0, 200);
    Ok(())
}

/// `--ovs.allowed-targets` with a port: an allowed address on another port is refused before
/// any connection is made (a listener there sees nothing); the listed port is connected to.
#[test]
fn an_allowed_address_on_an_unlisted_port_is_refused_without_connecting() -> Result<()> {
    let unlisted = std::net::TcpListener::bind("127.0.0.1:0")?;
    unlisted.set_nonblocking(true)?;
    let listed = std::net::TcpListener::bind("127.0.0.1:0")?;
    listed.set_nonblocking(true)?;
    let (unlisted_port, listed_port) = (unlisted.local_addr()?.port(), listed.local_addr()?.port());
    let rundir = tempfile::tempdir()?;
    let d = Daemon::start(&[
        format!("--ovs.rundir={}", rundir.path().display()),
        format!("--ovs.db=unix:{}/no-db.sock", rundir.path().display()),
        format!("--ovs.allowed-targets=127.0.0.0/8:{listed_port}"),
        "--scrape.timeout=2s".to_owned(),
    ])?;

    let (status, body) = d.get(&format!("/ports?target=tcp:127.0.0.1:{unlisted_port}"))?;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not allowed"), "{body}");
    // A bare address means --ovs.target-port, which is not listed either.
    assert_eq!(d.get("/ports?target=127.0.0.1")?.0, 400);
    match unlisted.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the daemon connected to an unlisted port: {other:?}"),
    }

    // The listed port is allowed: the daemon connects (the fake peer never answers HELLO, so
    // the scrape of that switch fails, but the connection was made).
    let (status, body) = d.get(&format!("/ports?target=tcp:127.0.0.1:{listed_port}"))?;
    assert_eq!(status, 200, "{body}");
    listed.set_nonblocking(false)?;
    let (conn, _) = listed
        .accept()
        .context("the daemon did not connect to the listed port")?;
    drop(conn);
    Ok(())
}
