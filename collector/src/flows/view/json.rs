//! `--format json`: an array of `{"orig", "info", "match", "actions"}`, the shape of OVS's
//! Python `ovs.flow` (`Flow.dict()` serialized with its `FlowEncoder`), so scripts written
//! against `ovs-flowviz` or `ofparse` JSON keep working.

use crate::flows::parse::{DP_EXTRA_INFO, Flow, FlowKind, Kv, Value};
use std::io::{self, Write};

/// Writes `s` as a JSON string.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                let _ = write!(out, "\\u{c:04x}");
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn write_int(out: &mut Vec<u8>, v: u128) {
    if let Ok(small) = u64::try_from(v) {
        let mut b = itoa::Buffer::new();
        out.extend_from_slice(b.format(small).as_bytes());
    } else {
        let _ = write!(out, "{v}");
    }
}

fn write_float(out: &mut Vec<u8>, v: f64) {
    // Python's repr: the shortest text that reads back, always with a point or an exponent.
    let _ = write!(out, "{v:?}");
}

pub fn write_value(out: &mut Vec<u8>, v: &Value<'_>) {
    match v {
        Value::Flag => out.extend_from_slice(b"true"),
        Value::Int(i) => write_int(out, *i),
        Value::Float(f) => write_float(out, *f),
        Value::Str(s) => write_str(out, s),
        Value::Masked { value, mask, .. } => {
            out.extend_from_slice(b"{\"value\": ");
            write_int(out, *value);
            out.extend_from_slice(b", \"mask\": ");
            write_int(out, *mask);
            out.push(b'}');
        }
        Value::Ip(ip) => write_str(out, &ip.to_string()),
        Value::Eth(e) => write_str(out, &e.to_string()),
        Value::Field(f) => {
            out.extend_from_slice(b"{\"field\": ");
            write_str(out, f.field);
            if let Some(s) = f.start {
                out.extend_from_slice(b", \"start\": ");
                write_int(out, u128::from(s));
            }
            if let Some(e) = f.end {
                out.extend_from_slice(b", \"end\": ");
                write_int(out, u128::from(e));
            }
            out.push(b'}');
        }
        Value::Map(items) => write_map(out, items),
        Value::List(items) => write_list(out, items),
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_value(out, v);
            }
            out.push(b']');
        }
    }
}

/// An object; a repeated key stays where it came first with the value it had last, as in a
/// Python dict.
pub fn write_map(out: &mut Vec<u8>, items: &[Kv<'_>]) {
    out.push(b'{');
    for (i, kv) in items.iter().enumerate() {
        if items[..i].iter().any(|earlier| earlier.key == kv.key) {
            continue;
        }
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        let last = items[i + 1..]
            .iter()
            .rev()
            .find(|later| later.key == kv.key)
            .unwrap_or(kv);
        write_str(out, kv.key);
        out.extend_from_slice(b": ");
        write_value(out, &last.value);
    }
    out.push(b'}');
}

/// A list of one-key objects.
pub fn write_list(out: &mut Vec<u8>, items: &[Kv<'_>]) {
    out.push(b'[');
    for (i, kv) in items.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.push(b'{');
        write_str(out, kv.key);
        out.extend_from_slice(b": ");
        write_value(out, &kv.value);
        out.push(b'}');
    }
    out.push(b']');
}

/// One flow as a JSON object.
///
/// A datapath flow's `ufid` and `dp-extra-info` are sections of their own, before `info` and
/// after `actions`, as in `ODPFlow.dict()`.
pub fn write_flow(out: &mut Vec<u8>, f: &Flow<'_>) {
    out.extend_from_slice(b"{\"orig\": ");
    write_str(out, f.orig);
    let own_section =
        |kv: &Kv<'_>| f.kind == FlowKind::Datapath && matches!(kv.key, "ufid" | DP_EXTRA_INFO);
    if let Some(u) = f.info.iter().find(|kv| own_section(kv) && kv.key == "ufid") {
        out.extend_from_slice(b", \"ufid\": ");
        write_map(out, std::slice::from_ref(u));
    }
    out.extend_from_slice(b", \"info\": ");
    if f.info.iter().any(own_section) {
        let info: Vec<Kv<'_>> = f
            .info
            .iter()
            .filter(|kv| !own_section(kv))
            .cloned()
            .collect();
        write_map(out, &info);
    } else {
        write_map(out, &f.info);
    }
    out.extend_from_slice(b", \"match\": ");
    write_map(out, &f.matches);
    out.extend_from_slice(b", \"actions\": ");
    write_list(out, &f.actions);
    if let Some(e) = f
        .info
        .iter()
        .find(|kv| own_section(kv) && kv.key == DP_EXTRA_INFO)
    {
        out.extend_from_slice(b", \"dp_extra_info\": ");
        write_value(out, &e.value);
    }
    out.push(b'}');
}

/// The whole array, one flow per line.
pub fn render<'a, W: Write>(
    w: &mut W,
    flows: impl Iterator<Item = &'a Flow<'a>>,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(64 * 1024);
    buf.push(b'[');
    let mut first = true;
    for f in flows {
        buf.extend_from_slice(if first { b"\n" } else { b",\n" });
        first = false;
        write_flow(&mut buf, f);
        if buf.len() > 60 * 1024 {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    buf.extend_from_slice(b"\n]\n");
    w.write_all(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::parse::parse_line;

    #[test]
    fn shape_of_ovs_flow() {
        let f = parse_line(
            " cookie=0x0, duration=0.491s, table=2, n_packets=0, n_bytes=0, idle_age=5, priority=29,ip,nw_src=10.0.0.0/255.0.255.0,dl_src=02:00:00:00:00:0a actions=ct(commit,nat(src=10.0.0.1-10.0.0.5:1000-2000)),CONTROLLER:65535,note:41.42.43.00.00.00,LOCAL,learn(table=10,idle_timeout=60,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15],output:NXM_OF_IN_PORT[])",
            1,
        )
        .expect("parses");
        let mut out = Vec::new();
        write_flow(&mut out, &f);
        // What `json.dumps(OFPFlow(line).dict(), cls=FlowEncoder)` prints for the same line
        // (ovs 3.x Python library).
        let want = r#"{"orig": " cookie=0x0, duration=0.491s, table=2, n_packets=0, n_bytes=0, idle_age=5, priority=29,ip,nw_src=10.0.0.0/255.0.255.0,dl_src=02:00:00:00:00:0a actions=ct(commit,nat(src=10.0.0.1-10.0.0.5:1000-2000)),CONTROLLER:65535,note:41.42.43.00.00.00,LOCAL,learn(table=10,idle_timeout=60,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15],output:NXM_OF_IN_PORT[])", "info": {"cookie": 0, "duration": 0.491, "table": 2, "n_packets": 0, "n_bytes": 0, "idle_age": 5.0}, "match": {"priority": 29, "ip": true, "nw_src": "10.0.0.0/255.0.255.0", "dl_src": "2:0:0:0:0:a"}, "actions": [{"ct": {"commit": true, "nat": {"type": "src", "addrs": {"start": "10.0.0.1", "end": "10.0.0.5"}, "ports": {"start": 1000, "end": 2000}}}}, {"CONTROLLER": {"max_len": 65535}}, {"note": "41.42.43.00.00.00"}, {"output": {"port": "LOCAL"}}, {"learn": [{"table": 10}, {"idle_timeout": 60.0}, {"NXM_OF_VLAN_TCI[0..11]": {"field": "NXM_OF_VLAN_TCI", "start": 0, "end": 11}}, {"NXM_OF_ETH_DST[]": {"field": "NXM_OF_ETH_SRC"}}, {"load": {"src": {"field": "NXM_OF_IN_PORT"}, "dst": {"field": "NXM_NX_REG0", "start": 0, "end": 15}}}, {"output": {"port": "NXM_OF_IN_PORT[]"}}]}]}"#;
        assert_eq!(String::from_utf8_lossy(&out), want);
    }

    #[test]
    fn escapes_and_big_integers() {
        let mut out = Vec::new();
        write_str(&mut out, "a\"b\\c\u{1}");
        assert_eq!(out, br#""a\"b\\c\u0001""#);
        let mut out = Vec::new();
        write_value(
            &mut out,
            &Value::Masked {
                value: u128::MAX,
                mask: 1,
                bits: 128,
            },
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            format!("{{\"value\": {}, \"mask\": 1}}", u128::MAX)
        );
    }
}
