//! RFC 7047 on the wire: JSON-RPC 1.0 messages concatenated on a stream, OVSDB data
//! (atoms, sets, maps), and `monitor` table updates. Pure functions, no I/O.

use serde_json::{Value, json};

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

/// Decodes one message's bytes (or a part of one) into a typed value.
pub fn from_slice<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ProtoError> {
    serde_json::from_slice(bytes).map_err(|e| ProtoError::Json {
        offset: e.column(),
        detail: e.to_string(),
    })
}

/// The offset of the first `"` or `\` in a string's remaining bytes.
fn find_string_special(s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == b'"' || b == b'\\')
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
    // Health: BFD, CFM, and `status` (kept only for a tunnel's egress carrier).
    "bfd_status",
    "cfm_fault",
    "cfm_fault_status",
    "cfm_health",
    "cfm_flap_count",
    "cfm_remote_opstate",
    "status",
];
/// The Open_vSwitch table (one row): only the settings in `other_config`.
pub const OPEN_VSWITCH_COLUMNS: &[&str] = &["other_config"];

/// `monitor` for the Open_vSwitch, Bridge, Port and Interface tables of Open_vSwitch.
pub fn monitor_request(id: u64) -> Value {
    json!({
        "id": id,
        "method": "monitor",
        "params": [
            "Open_vSwitch",
            "dataplane-collector",
            {
                "Open_vSwitch": {"columns": OPEN_VSWITCH_COLUMNS},
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

/// OVSDB data (RFC 7047 section 5.1) decoded by serde straight from the message bytes, with
/// no `serde_json::Value` tree in between: an atom (string, integer, real, boolean, or
/// `["uuid", …]`), a set (`["set", [atom, …]]`, or one atom alone) or a map
/// (`["map", [[key, value], …]]`). Row structs name these per column with
/// `#[serde(deserialize_with = …)]`.
pub mod datum {
    use serde::Deserialize;
    use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
    use std::collections::BTreeMap;
    use std::fmt;

    /// One atom. Reals and anything unexpected are `Other` (no column we read holds them).
    #[derive(Debug, Clone, PartialEq)]
    pub enum Atom {
        Str(String),
        Int(i64),
        Bool(bool),
        Uuid(String),
        Other,
    }

    impl Atom {
        /// The atom as a label value: strings, UUIDs, integers and booleans as written.
        pub fn into_string(self) -> Option<String> {
            match self {
                Atom::Str(s) | Atom::Uuid(s) => Some(s),
                Atom::Int(i) => Some(i.to_string()),
                Atom::Bool(b) => Some(b.to_string()),
                Atom::Other => None,
            }
        }

        pub fn as_i64(&self) -> Option<i64> {
            match self {
                Atom::Int(i) => Some(*i),
                _ => None,
            }
        }
    }

    struct AtomVisitor;

    impl<'de> Visitor<'de> for AtomVisitor {
        type Value = Atom;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an OVSDB atom")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Atom, E> {
            Ok(Atom::Str(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Atom, E> {
            Ok(Atom::Str(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Atom, E> {
            Ok(Atom::Int(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Atom, E> {
            Ok(i64::try_from(v).map_or(Atom::Other, Atom::Int))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Atom, E> {
            Ok(Atom::Other)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Atom, E> {
            Ok(Atom::Bool(v))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Atom, E> {
            Ok(Atom::Other)
        }
        fn visit_map<A: de::MapAccess<'de>>(self, mut m: A) -> Result<Atom, A::Error> {
            while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Atom::Other)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Atom, A::Error> {
            // ["uuid", "…"] or ["named-uuid", "…"]; any other array is not an atom.
            let tag: Option<Tag> = seq.next_element()?;
            let atom = match tag {
                Some(Tag::Uuid) => match seq.next_element::<Atom>()? {
                    Some(Atom::Str(s)) => Atom::Uuid(s),
                    _ => Atom::Other,
                },
                _ => Atom::Other,
            };
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(atom)
        }
    }

    impl<'de> Deserialize<'de> for Atom {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Atom, D::Error> {
            d.deserialize_any(AtomVisitor)
        }
    }

    /// The first element of an OVSDB array: what the array is.
    enum Tag {
        Set,
        Map,
        Uuid,
        Other,
    }

    impl<'de> Deserialize<'de> for Tag {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Tag, D::Error> {
            Ok(match Atom::deserialize(d)? {
                Atom::Str(s) => match s.as_str() {
                    "set" => Tag::Set,
                    "map" => Tag::Map,
                    "uuid" | "named-uuid" => Tag::Uuid,
                    _ => Tag::Other,
                },
                _ => Tag::Other,
            })
        }
    }

    /// A datum: the atoms of a set (one atom alone is a set of one), or a map's pairs.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Datum {
        Set(Vec<Atom>),
        Map(Vec<(Atom, Atom)>),
    }

    struct DatumVisitor;

    impl<'de> Visitor<'de> for DatumVisitor {
        type Value = Datum;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an OVSDB datum")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Datum, E> {
            Ok(Datum::Set(vec![Atom::Str(v.to_owned())]))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Datum, E> {
            Ok(Datum::Set(vec![Atom::Str(v)]))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Datum, E> {
            AtomVisitor.visit_i64(v).map(|a| Datum::Set(vec![a]))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Datum, E> {
            AtomVisitor.visit_u64(v).map(|a| Datum::Set(vec![a]))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Datum, E> {
            AtomVisitor.visit_f64(v).map(|a| Datum::Set(vec![a]))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Datum, E> {
            Ok(Datum::Set(vec![Atom::Bool(v)]))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Datum, E> {
            Ok(Datum::Set(Vec::new()))
        }
        fn visit_map<A: de::MapAccess<'de>>(self, m: A) -> Result<Datum, A::Error> {
            AtomVisitor.visit_map(m).map(|_| Datum::Set(Vec::new()))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Datum, A::Error> {
            let tag: Option<Tag> = seq.next_element()?;
            let datum = match tag {
                Some(Tag::Set) => Datum::Set(seq.next_element::<Vec<Atom>>()?.unwrap_or_default()),
                Some(Tag::Map) => Datum::Map(
                    seq.next_element::<Vec<Pair>>()?
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|p| p.0)
                        .collect(),
                ),
                Some(Tag::Uuid) => match seq.next_element::<Atom>()? {
                    Some(Atom::Str(s)) => Datum::Set(vec![Atom::Uuid(s)]),
                    _ => Datum::Set(Vec::new()),
                },
                Some(Tag::Other) | None => Datum::Set(Vec::new()),
            };
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(datum)
        }
    }

    impl<'de> Deserialize<'de> for Datum {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Datum, D::Error> {
            d.deserialize_any(DatumVisitor)
        }
    }

    /// One `[key, value]` of a map; anything else in the list is skipped.
    struct Pair(Option<(Atom, Atom)>);

    impl<'de> Deserialize<'de> for Pair {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Pair, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Pair;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a [key, value] pair")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Pair, A::Error> {
                    let k = seq.next_element::<Atom>()?;
                    let v = seq.next_element::<Atom>()?;
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    Ok(Pair(k.zip(v)))
                }
                fn visit_map<A: de::MapAccess<'de>>(self, m: A) -> Result<Pair, A::Error> {
                    AtomVisitor.visit_map(m).map(|_| Pair(None))
                }
                fn visit_str<E: de::Error>(self, _: &str) -> Result<Pair, E> {
                    Ok(Pair(None))
                }
                fn visit_i64<E: de::Error>(self, _: i64) -> Result<Pair, E> {
                    Ok(Pair(None))
                }
                fn visit_u64<E: de::Error>(self, _: u64) -> Result<Pair, E> {
                    Ok(Pair(None))
                }
                fn visit_f64<E: de::Error>(self, _: f64) -> Result<Pair, E> {
                    Ok(Pair(None))
                }
                fn visit_bool<E: de::Error>(self, _: bool) -> Result<Pair, E> {
                    Ok(Pair(None))
                }
                fn visit_unit<E: de::Error>(self) -> Result<Pair, E> {
                    Ok(Pair(None))
                }
            }
            d.deserialize_any(V)
        }
    }

    impl Datum {
        fn into_first(self) -> Option<Atom> {
            match self {
                Datum::Set(v) => v.into_iter().next(),
                Datum::Map(_) => None,
            }
        }
    }

    /// A string column (an empty set is `None`).
    pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(Datum::deserialize(d)?
            .into_first()
            .and_then(Atom::into_string))
    }

    /// A string column, empty when unset.
    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(opt_string(d)?.unwrap_or_default())
    }

    /// A string column where the empty string means unset too.
    pub fn nonempty_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(opt_string(d)?.filter(|s| !s.is_empty()))
    }

    /// An integer column (an empty set is `None`).
    pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Ok(Datum::deserialize(d)?.into_first().and_then(|a| a.as_i64()))
    }

    /// A boolean column that is an optional set (`cfm_fault`): `None` when empty or not a
    /// boolean.
    pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        Ok(match Datum::deserialize(d)?.into_first() {
            Some(Atom::Bool(b)) => Some(b),
            _ => None,
        })
    }

    /// A set of strings (`cfm_fault_status`); atoms that are not strings skipped.
    pub fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match Datum::deserialize(d)? {
            Datum::Set(atoms) => atoms
                .into_iter()
                .filter_map(|a| match a {
                    Atom::Str(s) => Some(s),
                    _ => None,
                })
                .collect(),
            Datum::Map(_) => Vec::new(),
        })
    }

    /// A set of references: the UUIDs.
    pub fn uuids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match Datum::deserialize(d)? {
            Datum::Set(atoms) => atoms.into_iter().filter_map(Atom::into_string).collect(),
            Datum::Map(_) => Vec::new(),
        })
    }

    /// A map column of integers (`statistics`); other values skipped.
    pub fn int_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, i64>, D::Error> {
        Ok(match Datum::deserialize(d)? {
            Datum::Map(pairs) => pairs
                .into_iter()
                .filter_map(|(k, v)| Some((k.into_string()?, v.as_i64()?)))
                .collect(),
            Datum::Set(_) => BTreeMap::new(),
        })
    }

    /// A map column of strings (`external_ids`); values that are not atoms skipped.
    pub fn string_map<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, String>, D::Error> {
        Ok(match Datum::deserialize(d)? {
            Datum::Map(pairs) => pairs
                .into_iter()
                .filter_map(|(k, v)| Some((k.into_string()?, v.into_string()?)))
                .collect(),
            Datum::Set(_) => BTreeMap::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

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
        assert_eq!(
            second.as_ref().and_then(|v| v.get("method")),
            Some(&json!("update"))
        );
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

    /// Each column type, from every shape RFC 7047 allows for it.
    #[test]
    fn data_types() {
        #[derive(serde::Deserialize, Debug, Default)]
        #[serde(default)]
        struct Row {
            #[serde(deserialize_with = "datum::opt_string")]
            s: Option<String>,
            #[serde(deserialize_with = "datum::nonempty_string")]
            ne: Option<String>,
            #[serde(deserialize_with = "datum::opt_i64")]
            i: Option<i64>,
            #[serde(deserialize_with = "datum::uuids")]
            u: Vec<String>,
            #[serde(deserialize_with = "datum::int_map")]
            im: BTreeMap<String, i64>,
            #[serde(deserialize_with = "datum::string_map")]
            sm: BTreeMap<String, String>,
        }
        let row = |v: Value| -> Row {
            match from_slice(v.to_string().as_bytes()) {
                Ok(r) => r,
                Err(e) => panic!("{v}: {e}"),
            }
        };
        let r = row(json!({"s": "up", "ne": "", "i": 7, "u": ["uuid", "c"],
            "im": ["map", [["rx_bytes", 10], ["tx_bytes", 20], ["bad", "x"], ["big", 18446744073709551615u64], ["odd"]]],
            "sm": ["map", [["iface-id", "ns_pod"], ["n", 3], ["b", true], ["r", 1.5]]]}));
        assert_eq!(r.s.as_deref(), Some("up"));
        assert_eq!(r.ne, None);
        assert_eq!(r.i, Some(7));
        assert_eq!(r.u, vec!["c".to_owned()]);
        assert_eq!(r.im.len(), 2, "{:?}", r.im);
        assert_eq!(r.im["tx_bytes"], 20);
        assert_eq!(r.sm["iface-id"], "ns_pod");
        assert_eq!(r.sm["n"], "3");
        assert_eq!(r.sm["b"], "true");
        assert!(!r.sm.contains_key("r"));
        let r = row(
            json!({"s": ["set", []], "ne": ["set", ["x"]], "i": ["set", []],
            "u": ["set", [["uuid", "a"], ["named-uuid", "b"]]], "im": "nope", "sm": ["set", []]}),
        );
        assert_eq!(r.s, None);
        assert_eq!(r.ne.as_deref(), Some("x"));
        assert_eq!(r.i, None);
        assert_eq!(r.u, vec!["a".to_owned(), "b".to_owned()]);
        assert!(r.im.is_empty() && r.sm.is_empty());
        // Shapes no column has: not an error, nothing read; and missing columns are defaults.
        let r = row(
            json!({"s": {"x": 1}, "i": [["set"], 2, 3], "u": ["map", [["a", "b"]]], "extra": [1]}),
        );
        assert_eq!((r.s, r.i), (None, None));
        assert!(r.u.is_empty());
        let r = row(json!({"i": ["set", [5]], "s": 12}));
        assert_eq!((r.i, r.s.as_deref()), (Some(5), Some("12")));
    }

    /// The health columns' types: an optional boolean and a set of strings.
    #[test]
    fn bool_and_string_set_types() {
        #[derive(serde::Deserialize, Debug, Default)]
        #[serde(default)]
        struct Row {
            #[serde(deserialize_with = "datum::opt_bool")]
            b: Option<bool>,
            #[serde(deserialize_with = "datum::strings")]
            ss: Vec<String>,
        }
        let row = |v: Value| -> Row {
            match from_slice(v.to_string().as_bytes()) {
                Ok(r) => r,
                Err(e) => panic!("{v}: {e}"),
            }
        };
        let r = row(json!({"b": true, "ss": ["set", ["recv", "rdi"]]}));
        assert_eq!((r.b, r.ss), (Some(true), vec!["recv".into(), "rdi".into()]));
        let r = row(json!({"b": ["set", [false]], "ss": "maid"}));
        assert_eq!((r.b, r.ss), (Some(false), vec!["maid".to_owned()]));
        let r = row(json!({"b": ["set", []], "ss": ["set", []]}));
        assert_eq!((r.b, r.ss.is_empty()), (None, true));
        // Not a boolean, not strings: nothing, no error.
        let r = row(json!({"b": "true", "ss": ["set", [1, "x", true]]}));
        assert_eq!((r.b, r.ss), (None, vec!["x".to_owned()]));
        let r = row(json!({"b": ["map", []], "ss": ["map", [["a", "b"]]]}));
        assert_eq!((r.b, r.ss.is_empty()), (None, true));
    }
}
