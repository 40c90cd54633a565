//! Root-only: the HTTP server's own bounds, against the daemon serving a real Open vSwitch
//! bridge with a large flow table:
//!
//! - clients that ask for a large /flows and never read do not stall anyone else (one address
//!   gets half the `--web.max-requests` slots at most), and are reset after
//!   `--web.write-timeout` (their slots freed);
//! - a client that sends nothing, or half a header, is closed after `--web.header-timeout`; a
//!   keep-alive connection is not, between requests, and is closed after `--web.idle-timeout`;
//! - connections past `--web.max-connections` are closed at once, and the server serves again
//!   once the others go;
//! - silly `X-Prometheus-Scrape-Timeout-Seconds` values are answered;
//! - a flow API filter nested too deep is a 400;
//! - the rate limit is per client address, and `--web.rate-limit-exempt` addresses never get 429;
//! - /healthz is 503 while readers too slow for anything but too fast for the write timeout
//!   hold every `--web.max-requests` slot, and 200 again once they go.

use anyhow::{Context, Result, bail};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn, sockopt};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;
use testbed::daemon::Daemon;
use testbed::ovs::Ovs;

/// Generous: how long a test waits for something that should happen in well under a second.
const PATIENCE: Duration = Duration::from_secs(60);

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// A bridge with `n` flows.
fn big_bridge(ovs: &Ovs, n: u32) -> Result<String> {
    let br = format!("br{}", testbed::topology::unique_tag());
    ovs.add_bridge(&br)?;
    let mut text = String::with_capacity(n as usize * 80);
    for i in 0..n {
        let ip = Ipv4Addr::from(0x0a00_0000 + i);
        text.push_str(&format!(
            "table=0,priority=100,tcp,nw_src={ip},tp_dst=80,actions=drop\n"
        ));
    }
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), text)?;
    ovs.add_flows_file(&br, file.path())?;
    Ok(br)
}

/// A TCP connection to `to`, from `from` when given, with a receive buffer of `rcvbuf` bytes
/// when given (set before connecting, so the window stays that small).
fn connect(from: Option<Ipv4Addr>, rcvbuf: Option<usize>, to: SocketAddr) -> Result<TcpStream> {
    let SocketAddr::V4(to) = to else {
        bail!("IPv4 only")
    };
    let fd = socket::socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )?;
    if let Some(size) = rcvbuf {
        socket::setsockopt(&fd, sockopt::RcvBuf, &size)?;
    }
    if let Some(ip) = from {
        socket::bind(fd.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(ip, 0)))?;
    }
    socket::connect(fd.as_raw_fd(), &SockaddrIn::from(to))?;
    Ok(TcpStream::from(fd))
}

fn request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
}

/// GET over a connection from `from`; the status.
fn status_from(from: Ipv4Addr, to: SocketAddr, path: &str) -> Result<u16> {
    let mut s = connect(Some(from), None, to)?;
    s.set_read_timeout(Some(PATIENCE))?;
    s.write_all(request(path).as_bytes())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status line in {:?}", &text[..text.len().min(200)]))?;
    Ok(code)
}

/// Reads until the server ends the connection; what was read, and whether it was a reset.
/// An error if the server keeps it open for [`PATIENCE`].
fn until_closed(s: &mut TcpStream) -> Result<(Vec<u8>, bool)> {
    s.set_read_timeout(Some(PATIENCE))?;
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok((out, false)),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok((out, true)),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => bail!("the server did not close the connection: {e}"),
        }
    }
}

/// `dataplane_collector_limit_exceeded_total{limit=NAME}` (0 when absent).
fn limit_count(d: &Daemon, name: &str) -> Result<f64> {
    let (status, body) = d.get("/metrics")?;
    if status != 200 {
        bail!("/metrics: {status}");
    }
    Ok(testbed::prom::parse(&body)?
        .iter()
        .find(|s| s.name == "dataplane_collector_limit_exceeded_total" && s.label("limit") == name)
        .map_or(0.0, |s| s.value))
}

fn wait_until(what: &str, mut cond: impl FnMut() -> Result<bool>) -> Result<()> {
    let start = std::time::Instant::now();
    while start.elapsed() < PATIENCE {
        if cond()? {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("timed out waiting for {what}")
}

#[test]
fn clients_that_never_read_are_reset_and_stall_nobody() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let ovs = Ovs::start()?;
    let br = big_bridge(&ovs, 20_000)?;
    let rundir = ovs.rundir().to_string_lossy().into_owned();
    let d = Daemon::start(&args(&[
        "--ovs.rundir",
        &rundir,
        "--web.write-timeout",
        "5s",
    ]))?;
    let (status, full) = d.get("/flows")?;
    assert_eq!(status, 200);
    assert!(full.contains(&br), "the bridge is served");
    let before = limit_count(&d, "http_write_timeout")?;

    // Four clients of one address ask for the large table and never read it: half of
    // --web.max-requests (8), all one address may hold.
    let bad = Ipv4Addr::new(127, 0, 0, 2);
    let mut stuck = Vec::new();
    for _ in 0..4 {
        let mut s = connect(Some(bad), Some(4096), d.addr)?;
        s.write_all(request("/flows").as_bytes())?;
        // The status line: this one holds its slot now (and reads nothing more).
        let mut status = [0u8; 12];
        s.set_read_timeout(Some(PATIENCE))?;
        s.read_exact(&mut status)?;
        assert_eq!(&status, b"HTTP/1.1 200");
        stuck.push(s);
    }
    // A fifth from that address is refused.
    assert_eq!(status_from(bad, d.addr, "/groups")?, 503);
    // Everyone else is served meanwhile.
    for _ in 0..3 {
        let (status, body) = d.get("/metrics")?;
        assert_eq!(status, 200);
        assert!(body.contains("dataplane_collector_build_info"));
        assert_eq!(d.get("/healthz")?.0, 200);
    }
    // Each stuck client is reset after the write timeout: its response cut short.
    wait_until("4 write timeouts", || {
        Ok(limit_count(&d, "http_write_timeout")? >= before + 4.0)
    })?;
    for s in &mut stuck {
        let (got, reset) = until_closed(s)?;
        let complete = got.ends_with(b"0\r\n\r\n");
        assert!(
            reset || !complete,
            "a stuck client got its whole response ({} bytes) instead of a reset",
            got.len()
        );
        assert!(got.len() < full.len(), "cut short");
        eprintln!(
            "stuck client: {} of {} bytes, then {}",
            got.len(),
            full.len(),
            if reset { "reset" } else { "closed" }
        );
    }
    // Their permits are back: a full scrape again.
    let (status, again) = d.get("/flows")?;
    assert_eq!(status, 200);
    assert!(again.contains(&br));
    Ok(())
}

#[test]
fn silent_and_half_header_clients_are_closed_after_the_header_timeout() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let d = Daemon::start(&args(&[
        "--web.header-timeout",
        "1s",
        "--web.idle-timeout",
        "4s",
    ]))?;
    let before = limit_count(&d, "http_header_timeout")?;
    let mut silent = connect(None, None, d.addr)?;
    let mut half = connect(None, None, d.addr)?;
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: te")?;
    for s in [&mut silent, &mut half] {
        let (got, _) = until_closed(s)?;
        assert!(
            !String::from_utf8_lossy(&got).contains("200 OK"),
            "nothing served"
        );
    }
    assert!(limit_count(&d, "http_header_timeout")? >= before + 2.0);
    // A keep-alive connection is not cut between requests by the header timeout: two requests
    // over one connection, well apart.
    let mut s = connect(None, None, d.addr)?;
    s.set_read_timeout(Some(PATIENCE))?;
    for _ in 0..2 {
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")?;
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf)?;
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        std::thread::sleep(Duration::from_millis(1500));
    }
    // And closed once idle for --web.idle-timeout.
    let (got, _) = until_closed(&mut s)?;
    assert!(got.is_empty());
    Ok(())
}

#[test]
fn connections_past_the_cap_are_closed() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let d = Daemon::start(&args(&[
        "--web.max-connections",
        "4",
        "--web.header-timeout",
        "120s",
    ]))?;
    let before = limit_count(&d, "http_connections")?;
    let idle: Vec<TcpStream> = (0..4)
        .map(|_| connect(None, None, d.addr))
        .collect::<Result<_>>()?;
    // The server accepts in order: each further connection is past the cap.
    for _ in 0..3 {
        let mut extra = connect(None, None, d.addr)?;
        let (got, _) = until_closed(&mut extra)?;
        assert!(got.is_empty(), "an extra connection was served");
    }
    drop(idle);
    // Once they are gone, the server serves again.
    wait_until("a slot", || {
        Ok(d.get("/healthz").is_ok_and(|(s, _)| s == 200))
    })?;
    assert!(limit_count(&d, "http_connections")? >= before + 3.0);
    Ok(())
}

#[test]
fn silly_scrape_timeout_headers_are_answered() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let d = Daemon::start(&[])?;
    for silly in ["1e20", "NaN", "-1", "inf", "18446744073709551616", "x"] {
        let r = ureq::get(&d.url("/metrics"))
            .set("X-Prometheus-Scrape-Timeout-Seconds", silly)
            .timeout(PATIENCE)
            .call()
            .with_context(|| format!("scrape with {silly}"))?;
        assert_eq!(r.status(), 200, "{silly}");
    }
    assert_eq!(d.get("/healthz")?.0, 200);
    Ok(())
}

#[test]
fn a_filter_nested_too_deep_is_a_400() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let ovs = Ovs::start()?;
    let _br = big_bridge(&ovs, 10)?;
    let rundir = ovs.rundir().to_string_lossy().into_owned();
    let d = Daemon::start(&args(&["--ovs.rundir", &rundir, "--web.enable-flow-api"]))?;
    let (status, body) = d.get(&format!("/api/v1/flows?filter={}", "%28".repeat(1500)))?;
    assert_eq!(status, 400, "{body}");
    let (status, body) = d.get("/api/v1/flows")?;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).context("streamed JSON")?;
    assert_eq!(
        json["bridges"][0]["flows"].as_array().map(Vec::len),
        Some(10),
        "{body}"
    );
    assert_eq!(d.get("/healthz")?.0, 200);
    Ok(())
}

#[test]
fn the_rate_limit_is_per_client_and_exempts_prometheus() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let d = Daemon::start(&args(&[
        "--web.rate-limit",
        "1",
        "--web.rate-burst",
        "2",
        "--web.rate-limit-exempt",
        "127.0.0.1/32",
    ]))?;
    let other = Ipv4Addr::new(127, 0, 0, 2);
    let statuses: Vec<u16> = (0..20)
        .map(|_| status_from(other, d.addr, "/"))
        .collect::<Result<_>>()?;
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(statuses[0], 200, "{statuses:?}");
    // The exempt address is never limited, even now that the other one is.
    for _ in 0..30 {
        assert_eq!(status_from(Ipv4Addr::LOCALHOST, d.addr, "/")?, 200);
    }
    assert!(limit_count(&d, "http_rate_limit")? >= 1.0);
    Ok(())
}

#[test]
fn healthz_is_503_while_every_scrape_slot_is_stuck() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let ovs = Ovs::start()?;
    let _br = big_bridge(&ovs, 40_000)?;
    let rundir = ovs.rundir().to_string_lossy().into_owned();
    let d = Daemon::start(&args(&[
        "--ovs.rundir",
        &rundir,
        "--web.max-requests",
        "2",
        // One address may take only half the slots, unless exempt.
        "--web.rate-limit-exempt",
        "127.0.0.1/32",
        // Long enough that the 40k-flow read succeeds on a loaded machine (a failed read is a
        // tiny response that frees its slot at once, and /healthz never goes 503).
        "--scrape.timeout",
        "10s",
        "--web.write-timeout",
        "5s",
    ]))?;
    assert_eq!(d.get("/healthz")?.0, 200);
    // Two clients take their large responses a trickle at a time: never stalled long enough
    // for the write timeout, but holding both slots far longer than a scrape can take.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let mut s = connect(None, Some(4096), d.addr)?;
        s.write_all(request("/flows").as_bytes())?;
        let stop = stop.clone();
        readers.push(std::thread::spawn(move || {
            // About 100 KB/s: the response lasts over a minute, never stalls for 5 s.
            let mut buf = [0u8; 1024];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if matches!(s.read(&mut buf), Ok(0) | Err(_)) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            true
        }));
    }
    wait_until("/healthz 503", || Ok(d.get("/healthz")?.0 == 503))?;
    assert_eq!(d.get("/metrics")?.0, 503, "no slot for a scrape");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(
            r.join().map_err(|_| anyhow::anyhow!("reader panicked"))?,
            "a trickle reader's response ended early"
        );
    }
    // The readers are gone (their sockets closed): the slots come back.
    wait_until("/healthz 200", || Ok(d.get("/healthz")?.0 == 200))?;
    assert_eq!(d.get("/metrics")?.0, 200);
    Ok(())
}
