//! Where flow text comes from: a file or standard input, a live bridge through the native
//! OpenFlow client (written as `ovs-ofctl -O OpenFlow13 dump-flows` writes it, so one parser
//! serves every input), or another node's daemon through its flow API.

use super::FlowsError;
use crate::openflow::message::{FlowDecoder, FlowTable, MultipartType};
use crate::openflow::{Client, Endpoint};
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// One named flow dump.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// Reads a file, or standard input for `-`.
pub fn read_input(path: &str) -> Result<Source, FlowsError> {
    if path == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| FlowsError::Read {
                path: "-".into(),
                source,
            })?;
        return Ok(Source {
            name: "stdin".into(),
            text,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| FlowsError::Read {
        path: path.into(),
        source,
    })?;
    let name = Path::new(path)
        .file_name()
        .map_or_else(|| path.to_owned(), |n| n.to_string_lossy().into_owned());
    Ok(Source { name, text })
}

/// One flow as `ovs-ofctl -O OpenFlow13 dump-flows` prints it (with its leading space).
pub fn ofctl_line(out: &mut String, f: &crate::openflow::Flow<'_>) {
    let _ = write!(
        out,
        " cookie={:#x}, duration={}.{:03}s, table={}, n_packets={}, n_bytes={}, ",
        f.cookie,
        f.duration_sec,
        f.duration_nsec / 1_000_000,
        f.table_id,
        f.packets,
        f.bytes
    );
    if f.idle_timeout != 0 {
        let _ = write!(out, "idle_timeout={}, ", f.idle_timeout);
    }
    if f.hard_timeout != 0 {
        let _ = write!(out, "hard_timeout={}, ", f.hard_timeout);
    }
    for (bit, name) in [
        (1u16, "send_flow_rem "),
        (2, "check_overlap "),
        (4, "reset_counts "),
        (8, "no_packet_counts "),
        (16, "no_byte_counts "),
    ] {
        if f.flags & bit != 0 {
            out.push_str(name);
        }
    }
    let default_priority = f.priority == 32768;
    if !default_priority {
        let _ = write!(out, "priority={}", f.priority);
        if !f.match_text.is_empty() {
            out.push(',');
        }
    }
    out.push_str(f.match_text);
    if !default_priority || !f.match_text.is_empty() {
        out.push(' ');
    }
    out.push_str("actions=");
    out.push_str(f.actions.filter(|a| !a.is_empty()).unwrap_or("drop"));
    out.push('\n');
}

/// A decoded flow table as ovs-ofctl text.
pub fn ofctl_text(table: &FlowTable) -> String {
    let mut out = String::with_capacity(table.len() * 160);
    for f in table {
        ofctl_line(&mut out, &f);
    }
    out
}

/// Flows `flows` reads from one switch at most (`openflow_flows`, as `--ovs.max-flows`).
pub const MAX_FLOWS: usize = 1_000_000;

/// Reads a bridge's flows over OpenFlow 1.3.
pub async fn fetch_openflow(endpoint: &Endpoint, deadline: Instant) -> Result<String, FlowsError> {
    let mut client = Client::connect(endpoint, deadline).await?;
    let mut decoder = FlowDecoder::new(true);
    let mut table = FlowTable::default();
    client
        .multipart(MultipartType::Flow, &mut |body| {
            decoder.decode(body, &mut table)?;
            crate::sources::openflow::fetch::check_flow_count(table.len(), MAX_FLOWS)
        })
        .await?;
    Ok(ofctl_text(&table))
}

/// Where a bridge's management socket is.
pub fn bridge_endpoint(rundir: &Path, bridge: &str) -> Endpoint {
    Endpoint::Unix(rundir.join(format!("{bridge}.mgmt")))
}

/// `--target`: `unix:PATH`, `tcp:HOST:PORT`, or `HOST` (port 6653).
pub async fn target_endpoint(raw: &str) -> Result<Endpoint, FlowsError> {
    use crate::sources::openflow::target::{Host, TargetSpec, parse};
    let spec = parse(raw, 6653).map_err(|e| FlowsError::Target {
        target: raw.into(),
        reason: e.to_string(),
    })?;
    match spec {
        TargetSpec::Unix(p) => Ok(Endpoint::Unix(p)),
        TargetSpec::Tcp {
            host: Host::Ip(ip),
            port,
        } => Ok(Endpoint::Tcp((ip, port).into())),
        TargetSpec::Tcp {
            host: Host::Name(name),
            port,
        } => tokio::net::lookup_host((name.as_str(), port))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .map(Endpoint::Tcp)
            .ok_or_else(|| FlowsError::Target {
                target: raw.into(),
                reason: "cannot resolve the name".into(),
            }),
    }
}

/// One bridge of a node's flow API answer.
#[derive(Debug, Clone)]
pub struct NodeBridge {
    pub node: String,
    pub bridge: String,
    pub text: String,
}

/// `http://HOST:PORT[/prefix]` (or `HOST:PORT`): host, port and path prefix.
fn split_url(url: &str) -> Result<(String, u16, String), FlowsError> {
    let bad = |reason: &str| FlowsError::Node {
        node: url.into(),
        reason: reason.into(),
    };
    if url.starts_with("https://") {
        return Err(bad("https is not supported; reach the daemon over http"));
    }
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
        let (h, p) = h.split_once(']').ok_or_else(|| bad("bad IPv6 address"))?;
        (h, p.strip_prefix(':').unwrap_or(""))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (hostport, ""),
        }
    };
    let port = if port.is_empty() {
        crate::flagvalue::DEFAULT_LISTEN
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(9477)
    } else {
        port.parse().map_err(|_| bad("bad port"))?
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok((host.to_owned(), port, path.to_owned()))
}

/// Largest answer `flows --node` reads from a node (`flows_node_response_bytes`): a
/// million-flow table is about 200 MB of JSON.
pub const MAX_NODE_RESPONSE_BYTES: usize = 512 << 20;

/// A plain HTTP/1.1 GET; returns the status and the body.
pub async fn http_get(
    url: &str,
    path_and_query: &str,
    deadline: Instant,
) -> Result<(u16, Vec<u8>), FlowsError> {
    http_get_bounded(url, path_and_query, deadline, MAX_NODE_RESPONSE_BYTES).await
}

/// [`http_get`], reading at most `max` bytes of the answer.
async fn http_get_bounded(
    url: &str,
    path_and_query: &str,
    deadline: Instant,
    max: usize,
) -> Result<(u16, Vec<u8>), FlowsError> {
    let (host, port, prefix) = split_url(url)?;
    let err = |reason: String| FlowsError::Node {
        node: url.into(),
        reason,
    };
    let work = async {
        let mut s = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| err(format!("cannot connect: {e}")))?;
        let req = format!(
            "GET {prefix}{path_and_query} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| err(format!("cannot send the request: {e}")))?;
        let mut raw = Vec::new();
        (&mut s)
            .take(max as u64 + 1)
            .read_to_end(&mut raw)
            .await
            .map_err(|e| err(format!("cannot read the answer: {e}")))?;
        if raw.len() > max {
            crate::limits::exceeded("flows_node_response_bytes");
            return Err(err(format!(
                "the answer is larger than {max} bytes; ask for fewer \
                 bridges (--bridge) or filter on the node (--filter)"
            )));
        }
        parse_http(&raw).map_err(|r| err(r.into()))
    };
    tokio::time::timeout_at(deadline, work)
        .await
        .map_err(|_| err("timed out".into()))?
}

/// Splits an HTTP/1.1 response into status and body (content-length, chunked, or to the end).
pub fn parse_http(raw: &[u8]) -> Result<(u16, Vec<u8>), &'static str> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|_| "headers are not text")?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("no status line")?;
    let mut chunked = false;
    let mut length = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if k == "content-length" {
                length = v.parse::<usize>().ok();
            }
        }
    }
    let body = &raw[head_end + 4..];
    if chunked {
        let mut out = Vec::new();
        let mut rest = body;
        loop {
            let nl = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or("truncated chunk")?;
            let size_text = std::str::from_utf8(&rest[..nl]).map_err(|_| "bad chunk size")?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| "bad chunk size")?;
            rest = &rest[nl + 2..];
            if size == 0 {
                break;
            }
            if rest.len() < size {
                return Err("truncated chunk");
            }
            out.extend_from_slice(&rest[..size]);
            rest = rest.get(size + 2..).unwrap_or(&[]);
        }
        return Ok((status, out));
    }
    match length {
        Some(n) if body.len() >= n => Ok((status, body[..n].to_vec())),
        Some(_) => Err("truncated body"),
        None => Ok((status, body.to_vec())),
    }
}

/// Reads a node's flows through its flow API (`GET /api/v1/flows`).
pub async fn fetch_node(
    url: &str,
    bridges: &[String],
    deadline: Instant,
) -> Result<Vec<NodeBridge>, FlowsError> {
    let mut q = String::from("/api/v1/flows");
    for (i, b) in bridges.iter().enumerate() {
        q.push(if i == 0 { '?' } else { '&' });
        q.push_str("bridge=");
        q.push_str(&super::api::encode_query(b));
    }
    let (status, body) = http_get(url, &q, deadline).await?;
    let err = |reason: String| FlowsError::Node {
        node: url.into(),
        reason,
    };
    if status != 200 {
        return Err(err(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body).trim()
        )));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| err(format!("bad JSON: {e}")))?;
    let node = v["node"].as_str().unwrap_or(url).to_owned();
    let mut out = Vec::new();
    for b in v["bridges"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let bridge = b["bridge"].as_str().unwrap_or("").to_owned();
        if let Some(e) = b["error"].as_str() {
            return Err(err(format!("bridge {bridge}: {e}")));
        }
        let mut text = String::new();
        for l in b["flows"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            if let Some(l) = l.as_str() {
                text.push_str(l);
                text.push('\n');
            }
        }
        out.push(NodeBridge {
            node: node.clone(),
            bridge,
            text,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            split_url("http://10.0.0.1:9477").expect("ok"),
            ("10.0.0.1".into(), 9477, String::new())
        );
        assert_eq!(
            split_url("node-a:1234/prefix/").expect("ok"),
            ("node-a".into(), 1234, "/prefix".into())
        );
        assert_eq!(
            split_url("http://[::1]:80").expect("ok"),
            ("::1".into(), 80, String::new())
        );
        assert_eq!(split_url("http://node").expect("ok").1, 9477);
        assert!(split_url("https://x").is_err());
    }

    #[test]
    fn http_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse_http(raw), Ok((200, b"hello".to_vec())));
        let raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n";
        assert_eq!(parse_http(raw), Ok((200, b"hello".to_vec())));
        let raw = b"HTTP/1.1 404 Not Found\r\n\r\noff";
        assert_eq!(parse_http(raw), Ok((404, b"off".to_vec())));
        assert!(parse_http(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello").is_err());
    }

    #[test]
    fn ofctl_lines_like_ovs_ofctl() {
        use crate::openflow::message::{FlowStats, TextSpan};
        let stats = |priority, idle| FlowStats {
            table_id: 2,
            priority,
            idle_timeout: idle,
            hard_timeout: 0,
            flags: 0,
            cookie: 0x10,
            packets: 3,
            bytes: 180,
            duration_sec: 1,
            duration_nsec: 491_000_000,
            match_span: TextSpan::default(),
            actions_span: None,
        };
        let mut t = FlowTable::default();
        t.push(stats(29, 0), "ip", Some("drop"));
        t.push(stats(32768, 10), "arp", Some("NORMAL"));
        t.push(stats(32768, 0), "", Some("drop"));
        t.push(stats(0, 0), "", Some("drop"));
        assert_eq!(
            ofctl_text(&t),
            " cookie=0x10, duration=1.491s, table=2, n_packets=3, n_bytes=180, priority=29,ip actions=drop\n \
             cookie=0x10, duration=1.491s, table=2, n_packets=3, n_bytes=180, idle_timeout=10, arp actions=NORMAL\n \
             cookie=0x10, duration=1.491s, table=2, n_packets=3, n_bytes=180, actions=drop\n \
             cookie=0x10, duration=1.491s, table=2, n_packets=3, n_bytes=180, priority=0 actions=drop\n"
        );
    }

    #[tokio::test]
    async fn a_node_that_never_stops_answering_is_cut_off() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut req = [0u8; 1024];
            let _ = s.read(&mut req).await;
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
            let chunk = vec![b'x'; 64 * 1024];
            while s.write_all(&chunk).await.is_ok() {}
        });
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        let before = crate::limits::count("flows_node_response_bytes");
        let r = http_get_bounded(
            &format!("http://{addr}"),
            "/api/v1/flows",
            deadline,
            1 << 20,
        )
        .await;
        let msg = r.map(|_| String::new()).unwrap_or_else(|e| e.to_string());
        assert!(msg.contains("larger than 1048576 bytes"), "{msg}");
        assert_eq!(
            crate::limits::count("flows_node_response_bytes"),
            before + 1
        );
    }
}
