//! RFC 7047 on the wire: JSON-RPC 1.0 messages concatenated on a stream, OVSDB data
//! (atoms, sets, maps), and `monitor` table updates. Pure functions, no I/O.

use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Why bytes or JSON from the server could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("invalid JSON from the server at byte {offset} of a message: {detail}")]
    Json { offset: usize, detail: String },
    #[error("message from the server too large: over {limit} bytes (--ovs.db-max-message-bytes)")]
    TooLarge { limit: usize },
    #[error("message from the server nested deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("unexpected {what}: {detail}")]
    Unexpected { what: &'static str, detail: String },
}

/// The largest single message accepted by default (`--ovs.db-max-message-bytes`): the full
/// dump of 30,000 interfaces with their statistics is about 30 MB.
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// The deepest nesting of `{` and `[` accepted in a message. OVSDB messages nest about 8
/// levels (a map column inside a row inside a table update inside `params`).
pub const MAX_MESSAGE_DEPTH: usize = 64;

/// Splits a byte stream of concatenated JSON values (ovsdb-server sends no delimiter) into
/// values. Feed it what arrives; take complete values out.
///
/// Linear in bytes: each byte is scanned once, tracking only whether it is inside a string
/// (and after a backslash there) and the depth of `{`/`[`; the end of a top-level value is the
/// byte that brings the depth back to 0, and only then is that value handed to `serde_json`.
/// A message longer than the bound, or nested deeper than [`MAX_MESSAGE_DEPTH`], is an error
/// (and the connection is dropped: nothing after it can be trusted).
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Where the value being scanned starts (bytes before it were consumed).
    start: usize,
    /// Bytes before this were scanned.
    scan: usize,
    /// `{`/`[` open; 0 before the value's first byte.
    depth: usize,
    in_string: bool,
    escaped: bool,
    max_message: usize,
    /// Bytes examined so far, over the framer's life (each byte once: tests check it).
    scanned: u64,
}

impl Default for Framer {
    fn default() -> Self {
        Framer::new(DEFAULT_MAX_MESSAGE)
    }
}

impl Framer {
    pub fn new(max_message: usize) -> Self {
        Framer {
            buf: Vec::new(),
            start: 0,
            scan: 0,
            depth: 0,
            in_string: false,
            escaped: false,
            max_message: max_message.max(1),
            scanned: 0,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        // Drop what was consumed: only the partial value in progress moves, once per value.
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.scan -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete JSON value, if one has fully arrived.
    pub fn next_value(&mut self) -> Result<Option<Value>, ProtoError> {
        match self.find_next()? {
            Some(r) => parse(&self.buf[r]).map(Some),
            None => Ok(None),
        }
    }

    /// The bytes of the next complete JSON value, if one has fully arrived (to parse with
    /// [`parse`] where it suits the caller: a large one off the async workers).
    pub fn next_slice(&mut self) -> Result<Option<&[u8]>, ProtoError> {
        Ok(self.find_next()?.map(|r| &self.buf[r]))
    }

    fn find_next(&mut self) -> Result<Option<std::ops::Range<usize>>, ProtoError> {
        if self.depth == 0 && self.start > 0 && self.start == self.buf.len() {
            // Everything taken out: start over at the front of the buffer.
            self.buf.clear();
            self.start = 0;
            self.scan = 0;
        }
        let from = self.scan;
        let r = self.scan_value();
        self.scanned += self.scan.saturating_sub(from) as u64;
        r
    }

    fn scan_value(&mut self) -> Result<Option<std::ops::Range<usize>>, ProtoError> {
        let mut i = self.scan;
        let n = self.buf.len();
        while i < n {
            let b = self.buf[i];
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                } else if let Some(off) = find_string_special(&self.buf[i + 1..]) {
                    // Skip the plain bytes of the string at once.
                    i += off;
                } else {
                    i = n - 1;
                }
                i += 1;
                continue;
            }
            if self.depth == 0 {
                // Between values: whitespace, then an object or an array (JSON-RPC messages
                // are objects; a bare scalar has no end we could find without a delimiter).
                match b {
                    b' ' | b'\t' | b'\r' | b'\n' => {
                        i += 1;
                        self.start = i;
                        continue;
                    }
                    b'{' | b'[' => {}
                    _ => {
                        self.scan = i;
                        return Err(ProtoError::Json {
                            offset: i - self.start,
                            detail: format!("expected a JSON object, found {:?}", char::from(b)),
                        });
                    }
                }
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => {
                    self.depth += 1;
                    if self.depth > MAX_MESSAGE_DEPTH {
                        self.scan = i;
                        crate::limits::exceeded("ovsdb_message_depth");
                        return Err(ProtoError::TooDeep {
                            limit: MAX_MESSAGE_DEPTH,
                        });
                    }
                }
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        let end = i + 1;
                        if end - self.start > self.max_message {
                            self.scan = end;
                            return Err(self.too_large());
                        }
                        let range = self.start..end;
                        self.start = end;
                        self.scan = end;
                        return Ok(Some(range));
                    }
                }
                _ => {}
            }
            i += 1;
        }
        self.scan = n;
        if self.depth > 0 && n - self.start > self.max_message {
            return Err(self.too_large());
        }
        Ok(None)
    }

    fn too_large(&self) -> ProtoError {
        crate::limits::exceeded("ovsdb_message_bytes");
        ProtoError::TooLarge {
            limit: self.max_message,
        }
    }

    /// Bytes examined so far.
    pub fn scanned(&self) -> u64 {
        self.scanned
    }

    /// Bytes held: the partial value in progress (and values not yet taken out).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

/// Parses one message's bytes (from [`Framer::next_slice`]).
pub fn parse(bytes: &[u8]) -> Result<Value, ProtoError> {
    serde_json::from_slice(bytes).map_err(|e| ProtoError::Json {
        offset: e.column(),
        detail: e.to_string(),
    })
}

/// The offset of the first `"` or `\` in a string's remaining bytes.
fn find_string_special(s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == b'"' || b == b'\\')
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A reply to one of our requests.
    Response {
        id: Value,
        result: Value,
        error: Value,
    },
    /// A request from the server (`echo`).
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    /// A notification (`update` with table updates).
    Notification { method: String, params: Value },
}

/// Classifies a JSON-RPC 1.0 message.
pub fn classify(v: Value) -> Result<Incoming, ProtoError> {
    let Value::Object(mut m) = v else {
        return Err(ProtoError::Unexpected {
            what: "message",
            detail: "not a JSON object".to_owned(),
        });
    };
    let id = m.remove("id").unwrap_or(Value::Null);
    match m.remove("method") {
        Some(Value::String(method)) => {
            let params = m.remove("params").unwrap_or(Value::Null);
            if id.is_null() {
                Ok(Incoming::Notification { method, params })
            } else {
                Ok(Incoming::Request { id, method, params })
            }
        }
        Some(other) => Err(ProtoError::Unexpected {
            what: "method",
            detail: other.to_string(),
        }),
        None => Ok(Incoming::Response {
            id,
            result: m.remove("result").unwrap_or(Value::Null),
            error: m.remove("error").unwrap_or(Value::Null),
        }),
    }
}

/// The columns we monitor, per table.
pub const BRIDGE_COLUMNS: &[&str] = &["name", "ports", "datapath_type"];
pub const PORT_COLUMNS: &[&str] = &["name", "interfaces", "external_ids"];
pub const INTERFACE_COLUMNS: &[&str] = &[
    "name",
    "type",
    "ofport",
    "mac_in_use",
    "external_ids",
    "statistics",
    "link_state",
    "admin_state",
    "link_resets",
    "link_speed",
    "mtu",
    "error",
];

/// `monitor` for the Bridge, Port and Interface tables of Open_vSwitch.
pub fn monitor_request(id: u64) -> Value {
    json!({
        "id": id,
        "method": "monitor",
        "params": [
            "Open_vSwitch",
            "dataplane-collector",
            {
                "Bridge": {"columns": BRIDGE_COLUMNS},
                "Port": {"columns": PORT_COLUMNS},
                "Interface": {"columns": INTERFACE_COLUMNS},
            }
        ]
    })
}

/// An `echo` request (a barrier: the server answers after everything it sent before).
pub fn echo_request(id: &str) -> Value {
    json!({"id": id, "method": "echo", "params": []})
}

/// The reply to the server's `echo`.
pub fn echo_reply(id: Value, params: Value) -> Value {
    json!({"id": id, "result": params, "error": null})
}

/// An OVSDB atom or a set of them, as Rust values.
fn atom_to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(a) if a.len() == 2 && (a[0] == "uuid" || a[0] == "named-uuid") => {
            a[1].as_str().map(str::to_owned)
        }
        _ => None,
    }
}

/// The atoms of a datum that may be a single atom or `["set", [...]]`.
pub fn set_atoms(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) if a.len() == 2 && a[0] == "set" => a[1]
            .as_array()
            .map(|x| x.iter().collect())
            .unwrap_or_default(),
        other => vec![other],
    }
}

/// A string column (empty set → `None`).
pub fn datum_string(v: &Value) -> Option<String> {
    set_atoms(v).first().and_then(|a| atom_to_string(a))
}

/// An integer column (empty set → `None`).
pub fn datum_i64(v: &Value) -> Option<i64> {
    set_atoms(v).first().and_then(|a| a.as_i64())
}

/// UUIDs of a set-of-references column.
pub fn datum_uuids(v: &Value) -> Vec<String> {
    set_atoms(v)
        .into_iter()
        .filter_map(atom_to_string)
        .collect()
}

/// A `["map", [[k, v], …]]` column as ordered key/value pairs (values as strings or integers).
pub fn datum_map(v: &Value) -> Vec<(String, Value)> {
    match v {
        Value::Array(a) if a.len() == 2 && a[0] == "map" => a[1]
            .as_array()
            .map(|pairs| {
                pairs
                    .iter()
                    .filter_map(|p| {
                        let p = p.as_array()?;
                        Some((atom_to_string(p.first()?)?, p.get(1)?.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// One row change from a `monitor` update: `new` is `None` for a deleted row.
#[derive(Debug, Clone, PartialEq)]
pub struct RowUpdate {
    pub table: String,
    pub uuid: String,
    pub new: Option<serde_json::Map<String, Value>>,
}

/// Flattens `<table-updates>` (`{table: {uuid: {"old": …, "new": …}}}`).
pub fn table_updates(v: &Value) -> Result<Vec<RowUpdate>, ProtoError> {
    let Value::Object(tables) = v else {
        return Err(ProtoError::Unexpected {
            what: "table updates",
            detail: "not an object".to_owned(),
        });
    };
    let mut out = Vec::new();
    for (table, rows) in tables {
        let Value::Object(rows) = rows else {
            return Err(ProtoError::Unexpected {
                what: "table update",
                detail: format!("{table}: not an object"),
            });
        };
        for (uuid, change) in rows {
            let new = match change.get("new") {
                Some(Value::Object(row)) => Some(row.clone()),
                Some(other) => {
                    return Err(ProtoError::Unexpected {
                        what: "row update",
                        detail: format!("{table} {uuid}: \"new\" is {other}"),
                    });
                }
                None => None,
            };
            out.push(RowUpdate {
                table: table.clone(),
                uuid: uuid.clone(),
                new,
            });
        }
    }
    Ok(out)
}

/// Integer values of a map column (`statistics`), skipping anything else.
pub fn int_map(v: &Value) -> BTreeMap<String, i64> {
    datum_map(v)
        .into_iter()
        .filter_map(|(k, v)| v.as_i64().map(|i| (k, i)))
        .collect()
}

/// String values of a map column (`external_ids`).
pub fn string_map(v: &Value) -> BTreeMap<String, String> {
    datum_map(v)
        .into_iter()
        .filter_map(|(k, v)| atom_to_string(&v).map(|s| (k, s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages as ovsdb-server writes them back to back, with strings that hold braces,
    /// brackets, escaped quotes and backslashes.
    fn stream() -> (Vec<u8>, Vec<Value>) {
        let values = vec![
            json!({"id": 1, "result": {"Interface": {"u1": {"new": {"name": "p}{1", "statistics": ["map", [["rx_bytes", 10]]]}}}}, "error": null}),
            json!({"id": null, "method": "update", "params": ["x", {"Interface": {"u2": {"new": {"name": "q\"]\\", "external_ids": ["map", [["k", "\\\"{[}]\\"]]]}}}}]}),
            json!({"id": "echo", "method": "echo", "params": []}),
            json!([1, [2, [3, {"a": "\u{e9}\u{1F600}"}]]]),
            json!({"id": 7, "result": [], "error": null}),
        ];
        let mut bytes = Vec::new();
        for (i, v) in values.iter().enumerate() {
            bytes.extend_from_slice(v.to_string().as_bytes());
            // ovsdb-server sends none; other peers may send newlines or spaces.
            if i % 2 == 1 {
                bytes.extend_from_slice(b"\n  ");
            }
        }
        // A raw escape the serializer would not write: \u escapes and an escaped slash.
        bytes.extend_from_slice(br#"{"s":"\u007b\"\\\/}"}"#);
        let mut values = values;
        values.push(json!({"s": "{\"\\/}"}));
        (bytes, values)
    }

    fn drain(f: &mut Framer, out: &mut Vec<Value>) {
        loop {
            match f.next_value() {
                Ok(Some(v)) => out.push(v),
                Ok(None) => return,
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn framer_whole_stream_in_one_read() {
        let (bytes, want) = stream();
        let mut f = Framer::default();
        f.push(&bytes);
        let mut got = Vec::new();
        drain(&mut f, &mut got);
        assert_eq!(got, want);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn framer_split_at_every_byte_boundary() {
        let (bytes, want) = stream();
        for cut in 0..=bytes.len() {
            let mut f = Framer::default();
            let mut got = Vec::new();
            f.push(&bytes[..cut]);
            drain(&mut f, &mut got);
            f.push(&bytes[cut..]);
            drain(&mut f, &mut got);
            assert_eq!(got, want, "split at {cut}");
        }
        // And one byte per read.
        let mut f = Framer::default();
        let mut got = Vec::new();
        for b in &bytes {
            f.push(std::slice::from_ref(b));
            drain(&mut f, &mut got);
        }
        assert_eq!(got, want);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn framer_partial_value_waits() {
        let mut f = Framer::default();
        f.push(br#"{"id":1,"result":{"a":1},"error":null}{"id":null,"me"#);
        let first = f.next_value();
        assert!(matches!(first, Ok(Some(_))), "{first:?}");
        assert_eq!(f.next_value(), Ok(None));
        assert!(f.buffered() > 0);
        f.push(br#"thod":"update","params":["x",{}]}  "#);
        let second = f.next_value().ok().flatten();
        assert!(matches!(
            second.map(classify),
            Some(Ok(Incoming::Notification { .. }))
        ));
        assert_eq!(f.next_value(), Ok(None));
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn framer_rejects_bad_input() {
        let mut f = Framer::default();
        f.push(b"{]");
        assert!(matches!(f.next_value(), Err(ProtoError::Json { .. })));
        let mut f = Framer::default();
        f.push(b"42 ");
        assert!(matches!(f.next_value(), Err(ProtoError::Json { .. })));
        let mut f = Framer::default();
        f.push(b"}{}");
        assert!(matches!(f.next_value(), Err(ProtoError::Json { .. })));
    }

    #[test]
    fn framer_bounds_message_size() {
        let before = crate::limits::count("ovsdb_message_bytes");
        // A complete value over the bound.
        let mut f = Framer::new(64);
        let big = json!({"id": 1, "result": "x".repeat(100), "error": null}).to_string();
        f.push(big.as_bytes());
        assert_eq!(f.next_value(), Err(ProtoError::TooLarge { limit: 64 }));
        // A value that never ends: refused once past the bound, not buffered for ever.
        let mut f = Framer::new(64);
        f.push(b"{\"id\":1,\"result\":\"");
        assert_eq!(f.next_value(), Ok(None));
        f.push(&[b'y'; 30]);
        assert_eq!(f.next_value(), Ok(None));
        f.push(&[b'y'; 30]);
        assert_eq!(f.next_value(), Err(ProtoError::TooLarge { limit: 64 }));
        assert!(crate::limits::count("ovsdb_message_bytes") >= before + 2);
        // At the bound exactly is fine.
        let ok = json!({"a": "b"}).to_string();
        let mut f = Framer::new(ok.len());
        f.push(ok.as_bytes());
        assert!(matches!(f.next_value(), Ok(Some(_))));
        let e = ProtoError::TooLarge { limit: 64 }.to_string();
        assert!(e.contains("64 bytes"), "{e}");
    }

    #[test]
    fn framer_bounds_depth() {
        let before = crate::limits::count("ovsdb_message_depth");
        let mut f = Framer::default();
        f.push(&[b'['; MAX_MESSAGE_DEPTH + 1]);
        assert_eq!(
            f.next_value(),
            Err(ProtoError::TooDeep {
                limit: MAX_MESSAGE_DEPTH
            })
        );
        assert!(crate::limits::count("ovsdb_message_depth") > before);
        // Brackets inside strings do not count.
        let mut f = Framer::default();
        let deep_string = format!("{{\"a\":\"{}\"}}", "[".repeat(1000));
        f.push(deep_string.as_bytes());
        assert!(matches!(f.next_value(), Ok(Some(_))));
        let mut nested = "[".repeat(MAX_MESSAGE_DEPTH);
        nested.push_str(&"]".repeat(MAX_MESSAGE_DEPTH));
        f.push(nested.as_bytes());
        assert!(matches!(f.next_value(), Ok(Some(_))));
    }

    /// Linear: a multi-MB message in 64 KiB reads is scanned once (a re-parse from the start on
    /// every read would do ~160 passes). Counted, not timed.
    #[test]
    fn framer_large_message_in_small_reads() {
        let mut rows = serde_json::Map::new();
        for i in 0..20_000 {
            rows.insert(
                format!("uuid-{i}"),
                json!({"new": {"name": format!("p{i}"), "statistics": ["map", [["rx_bytes", i], ["tx_bytes", i]]],
                    "external_ids": ["map", [["iface-id", format!("ns_pod-{i}")]]]}}),
            );
        }
        let msg = json!({"id": 1, "result": {"Interface": rows}, "error": null}).to_string();
        let mut f = Framer::default();
        let mut got = Vec::new();
        for chunk in msg.as_bytes().chunks(64 * 1024) {
            f.push(chunk);
            drain(&mut f, &mut got);
        }
        assert_eq!(got.len(), 1);
        assert_eq!(
            f.scanned(),
            msg.len() as u64,
            "bytes scanned more than once"
        );
        assert_eq!(
            got[0]["result"]["Interface"].as_object().map(|m| m.len()),
            Some(20_000)
        );
    }

    #[test]
    fn classifies_messages() {
        let echo = classify(json!({"id":"echo","method":"echo","params":[]}));
        assert!(matches!(echo, Ok(Incoming::Request { ref method, .. }) if method == "echo"));
        let resp = classify(json!({"id":3,"result":[],"error":null}));
        assert!(matches!(resp, Ok(Incoming::Response { .. })));
        assert!(classify(json!([1, 2])).is_err());
    }

    #[test]
    fn data_types() {
        assert_eq!(datum_string(&json!("up")), Some("up".into()));
        assert_eq!(datum_string(&json!(["set", []])), None);
        assert_eq!(datum_i64(&json!(7)), Some(7));
        assert_eq!(datum_i64(&json!(["set", []])), None);
        assert_eq!(
            datum_uuids(&json!(["set", [["uuid", "a"], ["uuid", "b"]]])),
            vec!["a".to_owned(), "b".to_owned()]
        );
        assert_eq!(datum_uuids(&json!(["uuid", "c"])), vec!["c".to_owned()]);
        let stats = int_map(&json!([
            "map",
            [["rx_bytes", 10], ["tx_bytes", 20], ["bad", "x"]]
        ]));
        assert_eq!(stats.len(), 2);
        assert_eq!(stats["tx_bytes"], 20);
        let ids = string_map(&json!(["map", [["iface-id", "ns_pod"]]]));
        assert_eq!(ids["iface-id"], "ns_pod");
        assert!(string_map(&json!("nope")).is_empty());
    }

    #[test]
    fn table_updates_flatten() {
        let u = table_updates(&json!({
            "Interface": {
                "u1": {"new": {"name": "p1"}},
                "u2": {"old": {"name": "p2"}},
            }
        }));
        let Ok(u) = u else { panic!("{u:?}") };
        assert_eq!(u.len(), 2);
        assert!(u.iter().any(|r| r.uuid == "u2" && r.new.is_none()));
        assert!(table_updates(&json!([])).is_err());
        assert!(table_updates(&json!({"T": {"u": {"new": 3}}})).is_err());
    }
}
