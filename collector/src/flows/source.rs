//! Where flow text comes from: a file or standard input, a live bridge through the native
//! OpenFlow client (written as `ovs-ofctl -O OpenFlow13 dump-flows` writes it, so one parser
//! serves every input), or another node's daemon through its flow API.

use super::FlowsError;
use crate::openflow::message::{FlowDecoder, FlowTable, MultipartType};
use crate::openflow::{Client, Endpoint};
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::Path;
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

/// The URI of `path_and_query` on a node given as `http://HOST[:PORT][/prefix]` or
/// `HOST[:PORT]` (the port defaults to the daemon's own).
fn node_uri(url: &str, path_and_query: &str) -> Result<hyper::Uri, FlowsError> {
    let bad = |reason: &str| FlowsError::Node {
        node: url.into(),
        reason: reason.into(),
    };
    if url.starts_with("https://") {
        return Err(bad("https is not supported; reach the daemon over http"));
    }
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(bad("a user name in the address is not supported"));
    }
    let authority: hyper::http::uri::Authority =
        authority.parse().map_err(|_| bad("bad host or port"))?;
    if authority.host().is_empty() {
        return Err(bad("no host"));
    }
    // The text after the last `:` outside brackets, when there is one.
    let port_text = authority
        .as_str()
        .rsplit_once(':')
        .map(|(_, p)| p)
        .filter(|p| !p.contains(']'));
    let port = match (authority.port_u16(), port_text) {
        (Some(p), _) => p,
        (None, Some(_)) => return Err(bad("bad port")),
        (None, None) => crate::flagvalue::DEFAULT_LISTEN
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(9477),
    };
    format!("http://{}:{port}{prefix}{path_and_query}", authority.host())
        .parse()
        .map_err(|_| bad("bad path"))
}

/// Largest answer `flows --node` reads from a node (`flows_node_response_bytes`): a
/// million-flow table is about 200 MB of JSON.
pub const MAX_NODE_RESPONSE_BYTES: usize = 512 << 20;

/// An error and its causes, one line (hyper's own text is only the outermost).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let _ = write!(s, ": {c}");
        cur = c.source();
    }
    s
}

/// GET `uri` (hyper's HTTP/1.1 client) by `deadline`, reading at most `max` bytes of the body;
/// the status and the body.
async fn http_get(
    node: &str,
    uri: hyper::Uri,
    deadline: Instant,
    max: usize,
) -> Result<(u16, Vec<u8>), FlowsError> {
    use http_body_util::BodyExt as _;
    let err = |reason: String| FlowsError::Node {
        node: node.into(),
        reason,
    };
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let req = hyper::Request::get(uri)
        .header(hyper::header::ACCEPT, "application/json")
        .body(http_body_util::Empty::new())
        .map_err(|e| err(format!("bad request: {e}")))?;
    let work = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| err(format!("cannot get an answer: {}", chain(&e))))?;
        let status = resp.status().as_u16();
        let body = http_body_util::Limited::new(resp.into_body(), max)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    crate::limits::exceeded("flows_node_response_bytes");
                    err(format!(
                        "the answer is larger than {max} bytes; ask for fewer \
                         bridges (--bridge) or filter on the node (--filter)"
                    ))
                } else {
                    err(format!("cannot read the answer: {}", chain(&*e)))
                }
            })?;
        Ok((status, body.to_bytes().to_vec()))
    };
    tokio::time::timeout_at(deadline, work)
        .await
        .map_err(|_| err("timed out".into()))?
}

/// Reads a node's flows through its flow API (`GET /api/v1/flows`).
pub async fn fetch_node(
    url: &str,
    bridges: &[String],
    deadline: Instant,
) -> Result<Vec<NodeBridge>, FlowsError> {
    fetch_node_bounded(url, bridges, deadline, MAX_NODE_RESPONSE_BYTES).await
}

async fn fetch_node_bounded(
    url: &str,
    bridges: &[String],
    deadline: Instant,
    max: usize,
) -> Result<Vec<NodeBridge>, FlowsError> {
    let mut q = String::from("/api/v1/flows");
    for (i, b) in bridges.iter().enumerate() {
        q.push(if i == 0 { '?' } else { '&' });
        q.push_str("bridge=");
        q.push_str(&super::api::encode_query(b));
    }
    let (status, body) = http_get(url, node_uri(url, &q)?, deadline, max).await?;
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
    let reply: super::api::Reply =
        serde_json::from_slice(&body).map_err(|e| err(format!("bad JSON: {e}")))?;
    let node = reply.node.unwrap_or_else(|| url.to_owned());
    let mut out = Vec::with_capacity(reply.bridges.len());
    for b in reply.bridges {
        if let Some(e) = b.error {
            return Err(err(format!("bridge {}: {e}", b.bridge)));
        }
        let mut text = String::with_capacity(b.flows.iter().map(|l| l.len() + 1).sum());
        for l in &b.flows {
            text.push_str(l);
            text.push('\n');
        }
        out.push(NodeBridge {
            node: node.clone(),
            bridge: b.bridge,
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
        let uri = |u: &str| node_uri(u, "/api/v1/flows").map(|u| u.to_string());
        assert_eq!(
            uri("http://10.0.0.1:9477").ok().as_deref(),
            Some("http://10.0.0.1:9477/api/v1/flows")
        );
        assert_eq!(
            uri("node-a:1234/prefix/").ok().as_deref(),
            Some("http://node-a:1234/prefix/api/v1/flows")
        );
        assert_eq!(
            uri("http://[::1]:80").ok().as_deref(),
            Some("http://[::1]:80/api/v1/flows")
        );
        assert_eq!(
            uri("http://node").ok().as_deref(),
            Some("http://node:9477/api/v1/flows")
        );
        for bad in [
            "https://x",
            "",
            "http://",
            "node:",
            "node:99999",
            "u@node",
            "no de",
        ] {
            assert!(uri(bad).is_err(), "{bad}: {:?}", uri(bad));
        }
    }

    /// A one-connection HTTP server answering every request with `answer`, then `tail`
    /// forever when it is set.
    async fn server(answer: &'static [u8], tail: bool) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
            let _ = s.write_all(answer).await;
            let chunk = vec![b'x'; 64 * 1024];
            while tail && s.write_all(&chunk).await.is_ok() {}
        });
        format!("http://{addr}")
    }

    fn in_a_minute() -> Instant {
        Instant::now() + std::time::Duration::from_secs(60)
    }

    #[tokio::test]
    async fn a_node_reply_chunked_or_not_becomes_text_per_bridge() {
        let mut body = String::from("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
        for part in [
            "{\"node\": \"n1\", \"b",
            "ridges\": [{\"bridge\": \"br0\", \"flows\": [\" a\", \" b\"]}]}",
            "",
        ] {
            body.push_str(&format!("{:x}\r\n{part}\r\n", part.len()));
        }
        let url = server(Box::leak(body.into_bytes().into_boxed_slice()), false).await;
        let got = fetch_node(&url, &[], in_a_minute()).await;
        let got = got.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].node.as_str(), got[0].bridge.as_str()),
            ("n1", "br0")
        );
        assert_eq!(got[0].text, " a\n b\n");
        let url = server(
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\noff",
            false,
        )
        .await;
        let e = fetch_node(&url, &[], in_a_minute())
            .await
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("HTTP 404: off")),
            "{e:?}"
        );
        let url = server(
            b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{\"node\"",
            false,
        )
        .await;
        let e = fetch_node(&url, &[], in_a_minute())
            .await
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some(), "a truncated body is an error");
        let url = server(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nno", false).await;
        let e = fetch_node(&url, &[], in_a_minute())
            .await
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("bad JSON")),
            "{e:?}"
        );
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
        let url = server(b"HTTP/1.1 200 OK\r\n\r\n", true).await;
        let before = crate::limits::count("flows_node_response_bytes");
        let r = fetch_node_bounded(&url, &[], in_a_minute(), 1 << 20).await;
        let msg = r.map(|_| String::new()).unwrap_or_else(|e| e.to_string());
        assert!(msg.contains("larger than 1048576 bytes"), "{msg}");
        assert_eq!(
            crate::limits::count("flows_node_response_bytes"),
            before + 1
        );
    }
}
