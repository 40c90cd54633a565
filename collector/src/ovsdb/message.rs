//! One JSON-RPC message from ovsdb-server, decoded by serde straight from its bytes: the
//! envelope borrows `result`/`params` as raw JSON, and only a table update is decoded further,
//! into typed rows (no `serde_json::Value` tree for the rows). Pure: no I/O.

use super::proto::{self, ProtoError};
use super::replica::{Change, Changes};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// What a message means to the monitor connection.
#[derive(Debug, PartialEq)]
pub enum Message {
    /// The reply to our `monitor`: every row.
    Monitor(Vec<Change>),
    /// The server's error reply to our `monitor`, as it wrote it.
    MonitorRefused(String),
    /// An `update` notification: the rows that changed.
    Update(Vec<Change>),
    /// The reply to another request of ours (an `echo` barrier), by id.
    Reply(Value),
    /// The server's own `echo`, to be answered with its params.
    Echo { id: Value, params: Value },
    /// Anything else (logged, ignored).
    Other { method: Option<String> },
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    id: Value,
    #[serde(default, borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    params: Option<&'a RawValue>,
    #[serde(default, borrow)]
    result: Option<&'a RawValue>,
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
}

/// Decodes one message (the bytes [`proto::Framer`] framed); `monitor_id` is the id our
/// `monitor` request was sent with.
pub fn decode(bytes: &[u8], monitor_id: u64) -> Result<Message, ProtoError> {
    let env: Envelope = proto::from_slice(bytes)?;
    let Some(method) = env.method else {
        // A response.
        if env.id != monitor_id {
            return Ok(Message::Reply(env.id));
        }
        if let Some(error) = env.error {
            return Ok(Message::MonitorRefused(error.get().to_owned()));
        }
        let result = env.result.ok_or(ProtoError::Unexpected {
            what: "monitor reply",
            detail: "no result".to_owned(),
        })?;
        return Ok(Message::Monitor(
            proto::from_slice::<Changes>(result.get().as_bytes())?.0,
        ));
    };
    let params = || -> Result<&str, ProtoError> {
        env.params.map(RawValue::get).ok_or(ProtoError::Unexpected {
            what: "request",
            detail: format!("{method:?} without params"),
        })
    };
    Ok(match (&*method, env.id.is_null()) {
        ("update", true) => {
            // ["<monitor id>", <table-updates>]
            let (_, changes): (IgnoredAny, Changes) = proto::from_slice(params()?.as_bytes())?;
            Message::Update(changes.0)
        }
        ("echo", false) => Message::Echo {
            params: proto::from_slice(params()?.as_bytes())?,
            id: env.id,
        },
        _ => Message::Other {
            method: Some(method.into_owned()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode_json(v: Value) -> Result<Message, ProtoError> {
        decode(v.to_string().as_bytes(), 1)
    }

    #[test]
    fn classifies_messages() {
        let echo = decode_json(json!({"id": "echo", "method": "echo", "params": ["x"]}));
        assert_eq!(
            echo,
            Ok(Message::Echo {
                id: json!("echo"),
                params: json!(["x"])
            })
        );
        assert_eq!(
            decode_json(json!({"id": "b7", "result": [], "error": null})),
            Ok(Message::Reply(json!("b7")))
        );
        assert_eq!(
            decode_json(json!({"id": 1, "result": null, "error": {"error": "unknown database"}})),
            Ok(Message::MonitorRefused(
                r#"{"error":"unknown database"}"#.to_owned()
            ))
        );
        assert_eq!(
            decode_json(json!({"id": null, "method": "locked", "params": []})),
            Ok(Message::Other {
                method: Some("locked".to_owned())
            })
        );
        assert!(decode_json(json!([1, 2])).is_err());
        assert!(decode_json(json!({"id": 1, "method": 3})).is_err());
        assert!(decode_json(json!({"id": null, "method": "update"})).is_err());
        assert!(decode_json(json!({"id": null, "method": "update", "params": ["x"]})).is_err());
        assert!(decode_json(json!({"id": 1, "result": null, "error": null})).is_err());
    }

    #[test]
    fn monitor_reply_and_update_rows() {
        let reply = decode_json(json!({"id": 1, "error": null, "result": {
            "Open_vSwitch": {"o": {"new": {"bridges": ["uuid", "b1"],
                "other_config": ["map", [["flow-limit", "12345"]]]}}},
            "SSL": {"s": {"new": {"private_key": "x"}}},
            "Interface": {"i1": {"new": {"name": "p}{1", "ofport": 3,
                "statistics": ["map", [["rx_bytes", 10], ["collisions", 0]]],
                "unmonitored": ["map", [["x", ["set", [1.5]]]]]}}}
        }}));
        let Ok(Message::Monitor(changes)) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(
            changes
                .iter()
                .any(|c| matches!(c, Change::OpenVswitch(_, Some(o))
                if o.other_config.get("flow-limit").map(String::as_str) == Some("12345"))),
            "{changes:?}"
        );
        let Some(Change::Interface(uuid, Some(row))) =
            changes.iter().find(|c| matches!(c, Change::Interface(..)))
        else {
            panic!("{changes:?}")
        };
        assert_eq!(&**uuid, "i1");
        assert_eq!(row.name, "p}{1");
        assert_eq!(row.ofport, Some(3));
        assert_eq!(row.statistics.get("rx_bytes"), Some(&10));
        let update = decode_json(
            json!({"id": null, "method": "update", "params": ["dataplane-collector",
            {"Port": {"p1": {"old": {"name": "a"}}}, "Bridge": {"b1": {"new": {"name": "br-int"}}}}]}),
        );
        let Ok(Message::Update(changes)) = update else {
            panic!("{update:?}")
        };
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(
            changes
                .iter()
                .any(|c| matches!(c, Change::Port(u, None) if &**u == "p1"))
        );
        assert!(
            changes
                .iter()
                .any(|c| matches!(c, Change::Bridge(_, Some(b)) if b.name == "br-int"))
        );
    }
}
