//! `--format table`: one flow per line, the numbers aligned in columns, then the match and the
//! actions as ovs-ofctl wrote them. Colored when writing to a terminal (`--color`).

use crate::flows::parse::{DEFAULT_PRIORITY, Flow};
use std::io::{self, Write};

const RESET: &str = "\x1b[0m";
const DIM: &str = "\x1b[2m";
const KEY: &str = "\x1b[36m";
const ACTION: &str = "\x1b[33m";
const DROP: &str = "\x1b[31m";
const HOT: &str = "\x1b[1;32m";

/// Writes `text` with the keys of its items colored.
fn paint(out: &mut Vec<u8>, text: &str, key_color: &str) {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut item_start = true;
    let mut i = 0;
    while i < b.len() {
        if item_start && depth == 0 {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b'=' | b':' | b'(' | b',') {
                j += 1;
            }
            let key = &text[i..j];
            let color = if key == "drop" { DROP } else { key_color };
            out.extend_from_slice(color.as_bytes());
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(RESET.as_bytes());
            i = j;
            item_start = false;
            continue;
        }
        match b[i] {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => item_start = true,
            _ => {}
        }
        out.push(b[i]);
        i += 1;
    }
}

/// Writes the flows; `color` adds ANSI colors.
pub fn render<W: Write>(w: &mut W, flows: &[&Flow<'_>], color: bool) -> io::Result<()> {
    let width = |f: &dyn Fn(&Flow<'_>) -> String, title: &str| {
        flows
            .iter()
            .map(|fl| f(fl).len())
            .max()
            .unwrap_or(0)
            .max(title.len())
    };
    let prio = |f: &Flow<'_>| {
        let p = f.priority();
        if p == DEFAULT_PRIORITY && !f.matches.iter().any(|k| k.key == "priority") {
            String::new()
        } else {
            p.to_string()
        }
    };
    let cookie = |f: &Flow<'_>| format!("{:#x}", f.cookie());
    let wt = width(&|f| f.table().to_string(), "table");
    let wp = width(&prio, "prio");
    let wc = width(&cookie, "cookie");
    let wn = width(&|f| f.packets().to_string(), "packets");
    let wb = width(&|f| f.bytes().to_string(), "bytes");
    let wm = flows
        .iter()
        .map(|f| f.match_text.len())
        .max()
        .unwrap_or(0)
        .clamp(5, 72);
    let mut buf = Vec::with_capacity(64 * 1024);
    let head = format!(
        "{:>wt$} {:>wp$} {:>wc$} {:>wn$} {:>wb$}  {:<wm$}  actions\n",
        "table", "prio", "cookie", "packets", "bytes", "match"
    );
    if color {
        buf.extend_from_slice(DIM.as_bytes());
        buf.extend_from_slice(head.as_bytes());
        buf.extend_from_slice(RESET.as_bytes());
    } else {
        buf.extend_from_slice(head.as_bytes());
    }
    for f in flows {
        let packets = f.packets();
        if color {
            let _ = write!(
                buf,
                "{DIM}{:>wt$} {:>wp$} {:>wc$}{RESET} ",
                f.table(),
                prio(f),
                cookie(f)
            );
            let hot = if packets > 0 { HOT } else { DIM };
            let _ = write!(
                buf,
                "{hot}{:>wn$}{RESET} {DIM}{:>wb$}{RESET}  ",
                packets,
                f.bytes()
            );
            paint(&mut buf, f.match_text, KEY);
            let pad = wm.saturating_sub(f.match_text.len());
            buf.extend(std::iter::repeat_n(b' ', pad + 2));
            paint(&mut buf, f.actions_text, ACTION);
            buf.push(b'\n');
        } else {
            let _ = writeln!(
                buf,
                "{:>wt$} {:>wp$} {:>wc$} {:>wn$} {:>wb$}  {:<wm$}  {}",
                f.table(),
                prio(f),
                cookie(f),
                packets,
                f.bytes(),
                f.match_text,
                f.actions_text
            );
        }
        if buf.len() > 60 * 1024 {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    w.write_all(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::parse::parse_text;

    #[test]
    fn aligned_plain_and_colored() {
        let text = " cookie=0x1, duration=1s, table=0, n_packets=10, n_bytes=1000, priority=100,ip,nw_src=10.0.0.1 actions=output:2\n cookie=0x22, duration=1s, table=12, n_packets=0, n_bytes=0, arp actions=drop\n";
        let p = parse_text(text);
        let flows: Vec<_> = p.flows.iter().collect();
        let mut out = Vec::new();
        render(&mut out, &flows, false).expect("write");
        let s = String::from_utf8(out).expect("utf-8");
        // The match column is as wide as the widest match.
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[1].ends_with("priority=100,ip,nw_src=10.0.0.1  output:2"),
            "{s}"
        );
        assert!(
            lines[2].starts_with("   12        0x22       0     0  arp "),
            "{s}"
        );
        assert!(!s.contains('\x1b'));
        let mut out = Vec::new();
        render(&mut out, &flows, true).expect("write");
        let s = String::from_utf8(out).expect("utf-8");
        assert!(s.contains("\x1b[31mdrop"), "{s}");
        assert!(s.contains("\x1b[36mnw_src\x1b[0m=10.0.0.1"), "{s}");
    }
}
