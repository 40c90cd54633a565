//! The read-only JSON flow API the daemon serves with `--web.enable-flow-api`:
//! `GET /api/v1/flows[?bridge=NAME…][&filter=EXPR]`.
//!
//! ```json
//! {"node": "worker-1", "bridges": [{"bridge": "br-int", "flows": [" cookie=0x0, … actions=drop", …]}]}
//! ```
//!
//! Each flow is one line of `ovs-ofctl -O OpenFlow13 dump-flows` text, read over the native
//! OpenFlow client, so `flows --node` parses a remote table exactly like a local dump. A bridge
//! that cannot be read carries an `error` instead of `flows`; no Open vSwitch on the node is an
//! empty `bridges` list with a `reason` (never an HTTP 500).
//!
//! A request holds a `--web.max-requests` permit (HTTP 503 when none is free) until its body,
//! streamed a bridge at a time, has been sent.

use super::{filter, parse, source};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The node's name: `NODE_NAME` (the DaemonSet sets it from the downward API), else the host
/// name.
pub fn node_name() -> String {
    std::env::var("NODE_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Percent-encodes a query value.
pub fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Handles `GET /api/v1/flows` (query parameters as given).
pub async fn handle(
    app: &crate::server::AppState,
    query: &[(String, String)],
    deadline: tokio::time::Instant,
    client: Option<std::net::IpAddr>,
) -> Response {
    let mut wanted: Vec<&str> = Vec::new();
    let mut filter_expr = None;
    for (k, v) in query {
        match k.as_str() {
            "bridge" => wanted.push(v),
            "filter" => filter_expr = Some(v.as_str()),
            other => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("unknown parameter {other:?} (bridge, filter)\n"),
                )
                    .into_response();
            }
        }
    }
    let filter = match filter_expr.map(filter::Filter::parse).transpose() {
        Ok(f) => f,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("bad filter: {e}\n")).into_response(),
    };
    // A --web.max-requests permit, held until the body is sent whole (or abandoned).
    let permit = match app.try_permit(client) {
        Ok(p) => p,
        Err(refused) => return refused.into_response(),
    };
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"{\"node\": ");
    super::view::json::write_str(&mut head, &node_name());
    let bridges = match crate::sources::openflow::fetch::local_bridges(&app.ovs_rundir).await {
        Ok(b) => b,
        Err(e) => {
            head.extend_from_slice(b", \"bridges\": [], \"reason\": ");
            super::view::json::write_str(&mut head, &e.to_string());
            head.extend_from_slice(b"}\n");
            return json_response(StatusCode::OK, String::from_utf8_lossy(&head).into_owned());
        }
    };
    let bridges: Vec<_> = bridges
        .into_iter()
        .filter(|(name, _)| wanted.is_empty() || wanted.contains(&name.as_str()))
        .collect();
    if let Some(missing) = wanted
        .iter()
        .find(|w| !bridges.iter().any(|(n, _)| n == *w))
    {
        return (
            StatusCode::NOT_FOUND,
            format!("no bridge {missing:?} on this node\n"),
        )
            .into_response();
    }
    head.extend_from_slice(b", \"bridges\": [");

    // The body is streamed, a bridge at a time, in chunks of CHUNK bytes; a chunk the client
    // does not take within --web.write-timeout ends the response with an error.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let aborted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let write_timeout = app.http.write_timeout;
    let aborted_tx = aborted.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let send = |buf: Vec<u8>| {
            let tx = tx.clone();
            let aborted = aborted_tx.clone();
            async move {
                for chunk in buf.chunks(CHUNK) {
                    let bytes = bytes::Bytes::copy_from_slice(chunk);
                    match tokio::time::timeout(write_timeout, tx.send(Ok(bytes))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return false,
                        Err(_) => {
                            aborted.store(true, std::sync::atomic::Ordering::Release);
                            return false;
                        }
                    }
                }
                true
            }
        };
        if !send(head).await {
            return;
        }
        for (i, (name, endpoint)) in bridges.iter().enumerate() {
            let mut body = Vec::with_capacity(64 * 1024);
            if i > 0 {
                body.extend_from_slice(b", ");
            }
            body.extend_from_slice(b"{\"bridge\": ");
            super::view::json::write_str(&mut body, name);
            match source::fetch_openflow(endpoint, deadline).await {
                Ok(text) => {
                    body.extend_from_slice(b", \"flows\": [");
                    let mut first = true;
                    for line in text.lines() {
                        if let Some(f) = &filter {
                            match parse::parse_line(line, 0) {
                                Ok(flow) if f.matches(&flow) => {}
                                _ => continue,
                            }
                        }
                        if !first {
                            body.extend_from_slice(b", ");
                        }
                        first = false;
                        super::view::json::write_str(&mut body, line);
                    }
                    body.push(b']');
                }
                Err(e) => {
                    tracing::info!(bridge = %name, error = %e, "flow API: cannot read bridge");
                    body.extend_from_slice(b", \"error\": ");
                    super::view::json::write_str(&mut body, &e.to_string());
                }
            }
            body.push(b'}');
            if !send(body).await {
                return;
            }
        }
        send(b"]}\n".to_vec()).await;
    });
    let body = axum::body::Body::from_stream(crate::server::ReceiverStream { rx, aborted });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The flow API's body chunks.
const CHUNK: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encoding() {
        assert_eq!(encode_query("br-int"), "br-int");
        assert_eq!(encode_query("a b&c=d"), "a%20b%26c%3Dd");
    }
}
