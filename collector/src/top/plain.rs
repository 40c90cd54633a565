//! The plain-text snapshot (no terminal, or `--once`), and the cells both views show.

use super::model::{DropRow, FlowRow, HealthRow, PortRow, View};
use super::{TopArgs, human, rate};
use std::fmt::Write as _;

pub const PORT_HEADER: [&str; 9] = [
    "BRIDGE", "PORT", "POD", "RX/s", "TX/s", "PKTS/s", "DROPS/s", "TOTAL", "FROM",
];
pub const FLOW_HEADER: [&str; 10] = [
    "BRIDGE", "TABLE", "PRIO", "COOKIE", "BYTES/s", "PKTS/s", "PACKETS", "BYTES", "MATCH",
    "ACTIONS",
];
pub const DROP_HEADER: [&str; 3] = ["DROPPED AT", "DROPS/s", "TOTAL"];
pub const HEALTH_HEADER: [&str; 7] = [
    "DATAPATH", "HIT/s", "MISSED/s", "LOST/s", "HIT%", "LOST", "FLOWS",
];

pub fn port_cells(r: &PortRow) -> Vec<String> {
    vec![
        r.key.bridge.clone(),
        r.key.port.clone(),
        if r.pod.is_empty() {
            "-".to_owned()
        } else {
            r.pod.clone()
        },
        rate(r.rx_bps, "B"),
        rate(r.tx_bps, "B"),
        rate(r.pps, ""),
        rate(r.drops_ps, ""),
        human(r.total_bytes, "B"),
        r.source.to_owned(),
    ]
}

pub fn flow_cells(r: &FlowRow) -> Vec<String> {
    vec![
        r.key.bridge.clone(),
        r.key.table.clone(),
        r.key.priority.clone(),
        r.key.cookie.clone(),
        rate(r.bps, "B"),
        rate(r.pps, ""),
        human(r.packets, ""),
        human(r.bytes, "B"),
        if r.key.matches.is_empty() {
            "*".to_owned()
        } else {
            r.key.matches.clone()
        },
        if r.key.actions.is_empty() {
            "-".to_owned()
        } else {
            r.key.actions.clone()
        },
    ]
}

pub fn drop_cells(r: &DropRow) -> Vec<String> {
    vec![r.what.clone(), rate(r.rate, ""), human(r.total, "")]
}

pub fn health_cells(r: &HealthRow) -> Vec<String> {
    vec![
        r.datapath.clone(),
        rate(r.hit_ps, ""),
        rate(r.missed_ps, ""),
        rate(r.lost_ps, ""),
        r.hit_ratio
            .map_or_else(|| "-".to_owned(), |h| format!("{:.1}", h * 100.0)),
        human(r.lost, ""),
        human(r.flows, ""),
    ]
}

/// Writes `rows` under `header`, columns padded to their widest cell (the last one not).
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, c) in cells.enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            l.push_str(c);
            if i + 1 < widths.len() {
                for _ in c.chars().count()..widths[i] {
                    l.push(' ');
                }
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for r in rows {
        line(&mut r.iter().map(String::as_str));
    }
}

/// The whole snapshot as text: a header, then ports, flows (the `--flows` busiest), drops and
/// the datapaths.
pub fn render(view: &View, args: &TopArgs, secs: f64, out: &mut String) {
    let _ = writeln!(
        out,
        "dataplane-collector top  {}  rates over {secs:.2}s",
        args.url
    );
    let _ = writeln!(out, "\nPORTS ({}, by bytes/s)", view.ports.len());
    table(
        out,
        &PORT_HEADER,
        &view.ports.iter().map(port_cells).collect::<Vec<_>>(),
    );
    let shown = view.flows.len().min(args.flows);
    let _ = writeln!(out, "\nFLOWS ({shown} of {}, by bytes/s)", view.flows.len());
    table(
        out,
        &FLOW_HEADER,
        &view.flows[..shown]
            .iter()
            .map(flow_cells)
            .collect::<Vec<_>>(),
    );
    let _ = writeln!(out, "\nDROPS ({})", view.drops.len());
    table(
        out,
        &DROP_HEADER,
        &view.drops.iter().map(drop_cells).collect::<Vec<_>>(),
    );
    let _ = writeln!(out, "\nDATAPATHS ({})", view.health.len());
    table(
        out,
        &HEALTH_HEADER,
        &view.health.iter().map(health_cells).collect::<Vec<_>>(),
    );
}

#[cfg(test)]
mod tests {
    use super::super::model::{Snapshot, SortKey, wanted};
    use super::super::prom;
    use super::*;

    #[test]
    fn plain_snapshot_names_ports_pods_flows_drops_and_datapaths() {
        let snap =
            |t: &str| Snapshot::from_samples(&prom::parse(t, wanted, 100_000).expect("parses"));
        let a = snap(include_str!("../../tests/fixtures/top/before.txt"));
        let b = snap(include_str!("../../tests/fixtures/top/after.txt"));
        let view = View::new(Some(&a), &b, 2.0, SortKey::Bytes);
        let args = super::super::test_args(&["--flows", "3"]);
        let mut out = String::new();
        render(&view, &args, 2.0, &mut out);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("dataplane-collector top  http://127.0.0.1:9477/metrics"));
        let row = |prefix: &str| {
            lines
                .iter()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix:?} in\n{out}"))
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            row("br5efa2  v5efa2p0"),
            [
                "br5efa2",
                "v5efa2p0",
                "shop/web-0",
                "1.00kB",
                "500B",
                "10",
                "1.50",
                "23.5kB",
                "ebpf"
            ]
        );
        assert!(out.contains("FLOWS (3 of 8, by bytes/s)"), "{out}");
        assert_eq!(
            row("br5efa2  1      150"),
            [
                "br5efa2",
                "1",
                "150",
                "0x2100",
                "5.00kB",
                "50",
                "220",
                "26.3kB",
                "ip,nw_dst=10.96.0.10",
                "group:1"
            ]
        );
        assert_eq!(
            row("drop_action_of_pipeline"),
            ["drop_action_of_pipeline", "3", "14"]
        );
        assert_eq!(
            row("ovs-system  "),
            ["ovs-system", "10", "1", "0", "90.4", "0", "9"]
        );
    }
}
