//! Real servers and clients for the IPVS scenario. Each runs as its own process inside a
//! network namespace (`ip netns exec NS lab-guest serve ...`), so nothing here enters a
//! namespace itself.

use anyhow::{Context, Result, bail};
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

/// A TCP reply is three times the request; a UDP reply twice the datagram.
pub fn tcp_reply_len(request: usize) -> usize {
    3 * request
}

/// `serve PORT...`: TCP and UDP on `[::]:PORT` (both families) for each port. Prints `ready`.
pub fn serve(args: &[String]) -> Result<()> {
    let ports: Vec<u16> = args
        .iter()
        .map(|p| p.parse().with_context(|| format!("port {p}")))
        .collect::<Result<_>>()?;
    for &port in &ports {
        let tcp = TcpListener::bind(("::", port)).with_context(|| format!("tcp {port}"))?;
        std::thread::spawn(move || {
            for conn in tcp.incoming().flatten() {
                std::thread::spawn(move || {
                    let _ = answer_tcp(conn);
                });
            }
        });
        let udp = UdpSocket::bind(("::", port)).with_context(|| format!("udp {port}"))?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = udp.recv_from(&mut buf) {
                let reply = vec![b'u'; 2 * n];
                let _ = udp.send_to(&reply, from);
            }
        });
    }
    println!("ready");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn answer_tcp(mut conn: TcpStream) -> Result<()> {
    let mut req = Vec::new();
    conn.read_to_end(&mut req)?;
    conn.write_all(&vec![b's'; tcp_reply_len(req.len())])?;
    Ok(())
}

/// One request over TCP: `len` bytes out, the whole reply back.
pub fn tcp_request(to: SocketAddr, len: usize) -> Result<()> {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5))
        .with_context(|| format!("connect {to}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(&vec![b'c'; len])?;
    s.shutdown(Shutdown::Write)?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply)
        .with_context(|| format!("reply from {to}"))?;
    if reply.len() != tcp_reply_len(len) {
        bail!(
            "{to}: {} reply bytes for {len}, expected {}",
            reply.len(),
            tcp_reply_len(len)
        );
    }
    Ok(())
}

/// One datagram from a fresh socket (a new IPVS connection each), and its reply.
pub fn udp_request(to: SocketAddr, len: usize) -> Result<()> {
    let bind: SocketAddr = if to.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let s = UdpSocket::bind(bind)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.send_to(&vec![b'c'; len], to)?;
    let mut buf = [0u8; 4096];
    let (n, _) = s
        .recv_from(&mut buf)
        .with_context(|| format!("no UDP reply from {to}"))?;
    if n != 2 * len {
        bail!("{to}: {n} UDP reply bytes for {len}");
    }
    Ok(())
}

/// One datagram from a fresh socket, no reply awaited (for drops).
pub fn send_datagram(to: SocketAddr, len: usize) -> Result<()> {
    let bind: SocketAddr = if to.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    UdpSocket::bind(bind)?.send_to(&vec![b'd'; len], to)?;
    Ok(())
}

/// `clients (tcp|udp|send) ADDR COUNT ...`: COUNT requests of 100 + i bytes to each ADDR.
pub fn clients(args: &[String]) -> Result<()> {
    for spec in args.chunks(3) {
        let [kind, addr, count] = spec else {
            bail!("clients: (tcp|udp|send) ADDR COUNT, got {spec:?}");
        };
        let to: SocketAddr = addr.parse().with_context(|| format!("address {addr}"))?;
        let count: usize = count.parse()?;
        for i in 0..count {
            match kind.as_str() {
                "tcp" => tcp_request(to, 100 + i)?,
                "udp" => udp_request(to, 100 + i)?,
                "send" => send_datagram(to, 100 + i)?,
                k => bail!("clients: unknown kind {k}"),
            }
        }
    }
    Ok(())
}

/// `hold ADDR N`: N connections that send a little and stay open (IPVS counts them as active)
/// until the process is killed. Prints `ready`.
pub fn hold(args: &[String]) -> Result<()> {
    let [addr, n] = args else {
        bail!("hold ADDR N");
    };
    let to: SocketAddr = addr.parse()?;
    let mut held = Vec::new();
    for _ in 0..n.parse::<usize>()? {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
        s.write_all(b"held")?;
        held.push(s);
    }
    println!("ready");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
