//! The read-only JSON flow API's format: `GET /api/v1/flows[?bridge=NAME…][&filter=EXPR]`
//! (served by the daemon with `--web.enable-flow-api`, see `server::flow_api`).
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
//! Pure: the query's meaning and the JSON pieces. The HTTP side lives with the server.

use super::{filter, parse};

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

/// What a flow API request asks for.
#[derive(Debug)]
pub struct FlowQuery<'a> {
    /// `?bridge=` (repeatable); empty: every bridge.
    pub bridges: Vec<&'a str>,
    /// `?filter=`, parsed.
    pub filter: Option<filter::Filter>,
}

/// Why a flow API query was refused (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("unknown parameter {name:?} (bridge, filter)")]
    UnknownParameter { name: String },
    #[error("bad filter: {reason}")]
    Filter { reason: String },
}

/// Reads the query parameters as given.
pub fn parse_query(query: &[(String, String)]) -> Result<FlowQuery<'_>, QueryError> {
    let mut bridges: Vec<&str> = Vec::new();
    let mut filter_expr = None;
    for (k, v) in query {
        match k.as_str() {
            "bridge" => bridges.push(v),
            "filter" => filter_expr = Some(v.as_str()),
            other => {
                return Err(QueryError::UnknownParameter {
                    name: other.to_owned(),
                });
            }
        }
    }
    let filter = filter_expr
        .map(filter::Filter::parse)
        .transpose()
        .map_err(|e| QueryError::Filter {
            reason: e.to_string(),
        })?;
    Ok(FlowQuery { bridges, filter })
}

/// `{"node": NAME, "bridges": [` — the body's start when the bridges could be listed.
pub fn head(node: &str) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"{\"node\": ");
    super::view::json::write_str(&mut head, node);
    head.extend_from_slice(b", \"bridges\": [");
    head
}

/// The whole body when the node's bridges cannot be listed (no Open vSwitch): no bridges and
/// why.
pub fn no_bridges(node: &str, reason: &str) -> String {
    let mut body = Vec::with_capacity(256);
    body.extend_from_slice(b"{\"node\": ");
    super::view::json::write_str(&mut body, node);
    body.extend_from_slice(b", \"bridges\": [], \"reason\": ");
    super::view::json::write_str(&mut body, reason);
    body.extend_from_slice(b"}\n");
    String::from_utf8_lossy(&body).into_owned()
}

/// One bridge's object (preceded by `, ` unless `first`): its flows (the `ofctl` text lines
/// that pass `filter`), or the error that kept them from being read.
pub fn bridge(
    name: &str,
    flows: Result<&str, &str>,
    filter: Option<&filter::Filter>,
    first: bool,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(64 * 1024);
    if !first {
        body.extend_from_slice(b", ");
    }
    body.extend_from_slice(b"{\"bridge\": ");
    super::view::json::write_str(&mut body, name);
    match flows {
        Ok(text) => {
            body.extend_from_slice(b", \"flows\": [");
            let mut first_flow = true;
            for line in text.lines() {
                if let Some(f) = filter {
                    match parse::parse_line(line, 0) {
                        Ok(flow) if f.matches(&flow) => {}
                        _ => continue,
                    }
                }
                if !first_flow {
                    body.extend_from_slice(b", ");
                }
                first_flow = false;
                super::view::json::write_str(&mut body, line);
            }
            body.push(b']');
        }
        Err(e) => {
            body.extend_from_slice(b", \"error\": ");
            super::view::json::write_str(&mut body, e);
        }
    }
    body.push(b'}');
    body
}

/// The body's end.
pub const TAIL: &[u8] = b"]}\n";

/// The body as a client reads it (`flows --node`, `flows sync`): what [`head`], [`bridge`],
/// [`TAIL`] and [`no_bridges`] write, in one type.
#[derive(Debug, serde::Deserialize)]
pub struct Reply {
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub bridges: Vec<ReplyBridge>,
    /// Why there are no bridges (no Open vSwitch on the node).
    #[serde(default)]
    pub reason: Option<String>,
}

/// One bridge of a [`Reply`]: its flows as `ovs-ofctl` text lines, or why they could not be read.
#[derive(Debug, serde::Deserialize)]
pub struct ReplyBridge {
    #[serde(default)]
    pub bridge: String,
    #[serde(default)]
    pub flows: Vec<String>,
    #[serde(default)]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encoding() {
        assert_eq!(encode_query("br-int"), "br-int");
        assert_eq!(encode_query("a b&c=d"), "a%20b%26c%3Dd");
    }

    #[test]
    fn query_and_body_pieces() {
        let q = vec![
            ("bridge".to_owned(), "br-int".to_owned()),
            ("filter".to_owned(), "priority>10".to_owned()),
        ];
        let parsed = parse_query(&q).expect("a good query");
        assert_eq!(parsed.bridges, vec!["br-int"]);
        assert!(parsed.filter.is_some());
        let bad = vec![("nope".to_owned(), String::new())];
        assert!(matches!(
            parse_query(&bad),
            Err(QueryError::UnknownParameter { .. })
        ));
        let bad = vec![("filter".to_owned(), "((".to_owned())];
        assert!(matches!(parse_query(&bad), Err(QueryError::Filter { .. })));

        let text = " cookie=0x0, priority=20 actions=drop\n cookie=0x0, priority=5 actions=drop\n";
        let f = filter::Filter::parse("priority>10").expect("filter");
        let one = String::from_utf8(bridge("br0", Ok(text), Some(&f), true)).expect("utf-8");
        assert!(
            one.starts_with("{\"bridge\": \"br0\", \"flows\": ["),
            "{one}"
        );
        assert!(
            one.contains("priority=20") && !one.contains("priority=5"),
            "{one}"
        );
        let err = String::from_utf8(bridge("br1", Err("down"), None, false)).expect("utf-8");
        assert_eq!(err, ", {\"bridge\": \"br1\", \"error\": \"down\"}");
        // What the server writes is what the client reads.
        let whole = [
            head("n\"ode").as_slice(),
            &bridge("b", Ok(text), None, true),
            &bridge("c\\", Err("down \u{1}"), None, false),
            TAIL,
        ]
        .concat();
        let r: Reply = serde_json::from_slice(&whole).expect("JSON");
        assert_eq!(r.node.as_deref(), Some("n\"ode"));
        assert_eq!(r.bridges.len(), 2);
        assert_eq!(r.bridges[0].bridge, "b");
        assert_eq!(r.bridges[0].flows, text.lines().collect::<Vec<_>>());
        assert_eq!(r.bridges[1].bridge, "c\\");
        assert_eq!(r.bridges[1].error.as_deref(), Some("down \u{1}"));
        let none: Reply = serde_json::from_str(&no_bridges("n", "no OVS")).expect("JSON");
        assert_eq!(none.reason.as_deref(), Some("no OVS"));
        assert!(none.bridges.is_empty());
    }
}
