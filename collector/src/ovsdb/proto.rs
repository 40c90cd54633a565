//! RFC 7047 on the wire: JSON-RPC 1.0 messages concatenated on a stream, OVSDB data
//! (atoms, sets, maps), and `monitor` table updates. Pure functions, no I/O.

use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Why bytes or JSON from the server could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("invalid JSON from the server at byte {offset}: {detail}")]
    Json { offset: usize, detail: String },
    #[error("message too large: over {limit} bytes without a complete JSON value")]
    TooLarge { limit: usize },
    #[error("unexpected {what}: {detail}")]
    Unexpected { what: &'static str, detail: String },
}

/// Splits a byte stream into JSON values. Feed it what arrives; take complete values out.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
}

/// The largest single message we accept (a full dump of 10k interfaces is a few MB).
pub const MAX_MESSAGE: usize = 256 * 1024 * 1024;

impl Framer {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete JSON value, if one has fully arrived.
    pub fn next_value(&mut self) -> Result<Option<Value>, ProtoError> {
        // Skip whitespace between messages.
        let start = self
            .buf
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(self.buf.len());
        if start == self.buf.len() {
            self.buf.clear();
            return Ok(None);
        }
        let mut it = serde_json::Deserializer::from_slice(&self.buf[start..]).into_iter::<Value>();
        match it.next() {
            Some(Ok(v)) => {
                let used = start + it.byte_offset();
                self.buf.drain(..used);
                Ok(Some(v))
            }
            Some(Err(e)) if e.is_eof() => {
                if self.buf.len() > MAX_MESSAGE {
                    return Err(ProtoError::TooLarge { limit: MAX_MESSAGE });
                }
                Ok(None)
            }
            Some(Err(e)) => Err(ProtoError::Json {
                offset: start + e.column(),
                detail: e.to_string(),
            }),
            None => Ok(None),
        }
    }

    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
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

    #[test]
    fn framer_splits_concatenated_and_partial_messages() {
        let mut f = Framer::default();
        f.push(br#"{"id":1,"result":{"a":1},"error":null}{"id":null,"me"#);
        let first = f.next_value();
        assert!(matches!(first, Ok(Some(_))), "{first:?}");
        assert_eq!(f.next_value(), Ok(None));
        f.push(br#"thod":"update","params":["x",{}]}  "#);
        let second = f.next_value().ok().flatten();
        assert!(matches!(
            second.map(classify),
            Some(Ok(Incoming::Notification { .. }))
        ));
        assert_eq!(f.next_value(), Ok(None));
        assert_eq!(f.buffered(), 0);
        f.push(b"{]");
        assert!(matches!(f.next_value(), Err(ProtoError::Json { .. })));
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
