//! I/O for the `openflow` source: find the bridges, ask each one concurrently, join and fold.

use super::request::{OpenFlowRequest, OpenFlowSlice};
use super::{BridgeData, BridgeResult, Config, FoldedFlows, Group, OpenFlowError, Port, Snapshot};
use crate::openflow::client::ReplyLimits;
use crate::openflow::message::{self, FlowDecoder, MultipartType};
use crate::openflow::{Client, ClientError, DecodeError, Endpoint, FlowTable, port};
use crate::sources::ovsdb::attribution::PodRef;
use std::collections::HashMap;
use std::path::Path;
use tokio::time::Instant;

/// Local bridges: `<rundir>/<bridge>.mgmt`, sorted by name.
pub async fn local_bridges(rundir: &Path) -> Result<Vec<(String, Endpoint)>, OpenFlowError> {
    let mut dir = match tokio::fs::read_dir(rundir).await {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(OpenFlowError::NoRundir {
                rundir: rundir.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(OpenFlowError::Rundir {
                rundir: rundir.to_path_buf(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    loop {
        let entry = match dir.next_entry().await {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(source) => {
                return Err(OpenFlowError::Rundir {
                    rundir: rundir.to_path_buf(),
                    source,
                });
            }
        };
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(bridge) = name.strip_suffix(".mgmt")
            && !bridge.is_empty()
        {
            out.push((bridge.to_owned(), Endpoint::Unix(entry.path())));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Pods behind each bridge's ports, by (bridge, interface name).
type Pods = HashMap<(String, String), PodRef>;

pub async fn fetch(
    cfg: &Config,
    req: &OpenFlowRequest,
    deadline: Instant,
) -> Result<Snapshot, OpenFlowError> {
    // OVSDB, when it answers, names the bridges and the pods behind their ports.
    let db = match (&req.target, &cfg.ovsdb) {
        (None, Some(handle)) => handle.synced(deadline).await.ok(),
        _ => None,
    };
    let mut pods: Pods = HashMap::new();
    if let Some(state) = &db {
        for v in state.replica.interfaces() {
            if let Some(pod) = cfg
                .attributor
                .attribute(&v.iface.external_ids, v.port_external_ids)
                .pod
            {
                pods.insert((v.bridge.to_owned(), v.iface.name.clone()), pod);
            }
        }
    }
    let targets = match (&req.target, &db) {
        (Some(t), _) => vec![(t.raw.clone(), t.endpoint.clone())],
        (None, Some(state)) if !state.replica.bridges.is_empty() => state
            .replica
            .bridge_names()
            .into_iter()
            .map(|b| {
                let sock = cfg.rundir.join(format!("{b}.mgmt"));
                (b, Endpoint::Unix(sock))
            })
            .collect(),
        (None, _) => {
            let bridges = local_bridges(&cfg.rundir).await?;
            if bridges.is_empty() {
                return Err(OpenFlowError::NoBridges {
                    rundir: cfg.rundir.clone(),
                });
            }
            bridges
        }
    };
    let remote = req.target.is_some();
    let pods = &pods;
    let futures = targets.into_iter().map(|(bridge, endpoint)| async move {
        let outcome = fetch_bridge(&endpoint, req.slice, remote, cfg, deadline)
            .await
            .map(|mut data| {
                data.pods = data
                    .ports
                    .iter()
                    .filter_map(|p| {
                        pods.get(&(bridge.clone(), p.name.clone()))
                            .map(|pod| (p.name.clone(), pod.clone()))
                    })
                    .collect();
                data
            });
        // A local socket is named after its bridge; a remote switch tells us its name.
        let bridge = match &outcome {
            Ok(data) if remote => data.local_name.clone().unwrap_or(bridge),
            _ => bridge,
        };
        BridgeResult {
            bridge,
            endpoint,
            outcome,
        }
    });
    let bridges = futures_util::future::join_all(futures).await;
    Ok(Snapshot { bridges })
}

/// Reads one bridge: every request of the slice sent at once, replies decoded as they arrive.
/// For a remote target the port description is always read, to learn the bridge's name from its
/// LOCAL port.
pub async fn fetch_bridge(
    endpoint: &Endpoint,
    slice: OpenFlowSlice,
    remote: bool,
    cfg: &Config,
    deadline: Instant,
) -> Result<BridgeData, ClientError> {
    let mut client = Client::connect(endpoint, deadline).await?;
    client.set_limits(ReplyLimits {
        max_bytes: cfg.max_reply_bytes,
        ..ReplyLimits::default()
    });
    let mut kinds = Vec::with_capacity(6);
    if slice.ports || remote {
        kinds.push(MultipartType::PortDesc);
    }
    if slice.ports {
        kinds.push(MultipartType::PortStats);
    }
    // Table stats before flows: their flow counts size the flow table.
    if slice.tables || slice.flows {
        kinds.push(MultipartType::Table);
    }
    if slice.groups {
        kinds.push(MultipartType::GroupDesc);
        kinds.push(MultipartType::Group);
    }
    if slice.flows {
        kinds.push(MultipartType::Flow);
    }

    let mut port_descs = Vec::new();
    let mut port_stats = Vec::new();
    let mut tables = Vec::new();
    let mut group_descs = Vec::new();
    let mut group_stats = Vec::new();
    let mut flows = FlowTable::default();
    let mut decoder = FlowDecoder::new(cfg.flow_actions);
    client
        .multipart_pipelined(&kinds, &mut |kind, body| match kind {
            MultipartType::PortDesc => message::decode_port_descs(body, &mut port_descs),
            MultipartType::PortStats => message::decode_port_stats(body, &mut port_stats),
            MultipartType::Table => message::decode_table_stats(body, &mut tables),
            MultipartType::GroupDesc => message::decode_group_descs(body, &mut group_descs),
            MultipartType::Group => message::decode_group_stats(body, &mut group_stats),
            MultipartType::Flow => {
                if flows.is_empty() {
                    // The switch's own count sizes the table, but only as far as the bounds
                    // and what a first reservation should be: a switch claiming 2^32-1 flows
                    // must not make us reserve for them.
                    let expected: usize = tables.iter().map(|t| t.active_count as usize).sum();
                    flows = FlowTable::with_capacity(flow_reservation(expected, cfg.max_flows));
                }
                decoder.decode(body, &mut flows)?;
                check_flow_count(flows.len(), cfg.max_flows)
            }
        })
        .await?;

    let mut data = BridgeData {
        local_name: port_descs
            .iter()
            .find(|d| d.port_no == port::LOCAL)
            .map(|d| d.name.clone()),
        ..BridgeData::default()
    };
    if slice.ports {
        let names: HashMap<u16, &str> = port_descs
            .iter()
            .map(|d| (d.port_no, d.name.as_str()))
            .collect();
        let mut ports: Vec<Port> = port_stats
            .into_iter()
            .map(|s| Port {
                name: names
                    .get(&s.port_no)
                    .map_or_else(|| s.port_no.to_string(), |n| (*n).to_owned()),
                stats: s,
            })
            .collect();
        ports.sort_by_key(|p| p.stats.port_no);
        data.ports = ports;
        data.read_ports = true;
    }
    data.port_descs = port_descs;
    if slice.tables {
        data.tables = tables;
        data.read_tables = true;
    }
    if slice.groups {
        let mut by_id: HashMap<u32, _> = group_descs.into_iter().map(|d| (d.group_id, d)).collect();
        let mut groups: Vec<Group> = group_stats
            .into_iter()
            .map(|s| Group {
                desc: by_id.remove(&s.group_id),
                stats: s,
            })
            .collect();
        groups.sort_by_key(|g| g.stats.group_id);
        data.groups = groups;
        data.read_groups = true;
    }
    if slice.flows {
        let (kept, folded, folded_count) = fold(flows, cfg.max_flow_series);
        data.flows = kept;
        data.folded = folded;
        data.folded_count = folded_count;
        data.read_flows = true;
    }
    Ok(data)
}

/// Flows reserved for up front: what the table stats announce, but no more than
/// [`MAX_FLOW_RESERVATION`] or `--ovs.max-flows`; past that the table grows as replies arrive.
pub fn flow_reservation(announced: usize, max_flows: usize) -> usize {
    announced.min(max_flows).min(MAX_FLOW_RESERVATION)
}

/// The largest up-front reservation, in flows (about 10 MB).
pub const MAX_FLOW_RESERVATION: usize = 65_536;

/// Refuses a table past `--ovs.max-flows`.
pub fn check_flow_count(have: usize, max_flows: usize) -> Result<(), DecodeError> {
    if have > max_flows {
        crate::limits::exceeded("openflow_flows");
        return Err(DecodeError::Invalid {
            what: "flow table",
            offset: 0,
            detail: format!("more than {max_flows} flows (--ovs.max-flows); the rest was not read"),
        });
    }
    Ok(())
}

/// Keeps the `max` flows with the most bytes (then packets; ties by table, priority, match)
/// and sums the rest per (table, cookie). `max == 0` keeps everything.
///
/// The kept flows stay in the switch's order. Which flows are folded can change between
/// scrapes as traffic moves; a folded series can then go down, which `rate()` reads as a reset.
pub fn fold(flows: FlowTable, max: usize) -> (FlowTable, Vec<FoldedFlows>, u64) {
    if max == 0 || flows.len() <= max {
        return (flows, Vec::new(), 0);
    }
    let all: Vec<_> = flows.iter().collect();
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        let (fa, fb) = (&all[a], &all[b]);
        fb.bytes
            .cmp(&fa.bytes)
            .then(fb.packets.cmp(&fa.packets))
            .then(fa.table_id.cmp(&fb.table_id))
            .then(fb.priority.cmp(&fa.priority))
            .then(fa.match_text.cmp(fb.match_text))
    });
    let mut keep = vec![false; all.len()];
    for &i in &order[..max] {
        keep[i] = true;
    }
    let mut folded: HashMap<(u8, u64), FoldedFlows> = HashMap::new();
    let mut folded_count = 0u64;
    for (f, _) in all.iter().zip(&keep).filter(|(_, k)| !**k) {
        folded_count += 1;
        let e = folded
            .entry((f.table_id, f.cookie))
            .or_insert_with(|| FoldedFlows {
                table_id: f.table_id,
                cookie: f.cookie,
                ..FoldedFlows::default()
            });
        e.flows += 1;
        e.packets = e.packets.wrapping_add(f.packets);
        e.bytes = e.bytes.wrapping_add(f.bytes);
    }
    let kept = flows.filtered(&keep);
    let mut folded: Vec<FoldedFlows> = folded.into_values().collect();
    folded.sort_by_key(|f| (f.table_id, f.cookie));
    (kept, folded, folded_count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(list: &[(u8, u64, u64, &str)]) -> FlowTable {
        let mut t = FlowTable::default();
        for &(table, cookie, bytes, m) in list {
            t.push(flow(table, cookie, bytes), m, None);
        }
        t
    }

    fn flow(table: u8, cookie: u64, bytes: u64) -> crate::openflow::FlowStats {
        crate::openflow::FlowStats {
            table_id: table,
            priority: 100,
            idle_timeout: 0,
            hard_timeout: 0,
            flags: 0,
            cookie,
            packets: bytes / 100,
            bytes,
            duration_sec: 1,
            duration_nsec: 0,
            match_span: Default::default(),
            actions_span: None,
        }
    }

    #[test]
    fn folds_the_quietest_flows_per_table_and_cookie() {
        let flows = table(&[
            (0, 1, 500, "a"),
            (0, 1, 100, "b"),
            (0, 1, 0, "c"),
            (1, 2, 900, "d"),
            (1, 2, 50, "e"),
            (1, 3, 0, "f"),
        ]);
        let (kept, folded, n) = fold(flows.clone(), 2);
        let names: Vec<&str> = kept.iter().map(|f| f.match_text).collect();
        assert_eq!(names, ["a", "d"]);
        assert_eq!(n, 4);
        assert_eq!(
            folded,
            vec![
                FoldedFlows {
                    table_id: 0,
                    cookie: 1,
                    flows: 2,
                    packets: 1,
                    bytes: 100
                },
                FoldedFlows {
                    table_id: 1,
                    cookie: 2,
                    flows: 1,
                    packets: 0,
                    bytes: 50
                },
                FoldedFlows {
                    table_id: 1,
                    cookie: 3,
                    flows: 1,
                    packets: 0,
                    bytes: 0
                },
            ]
        );
        // Totals are preserved.
        let total: u64 =
            kept.iter().map(|f| f.bytes).sum::<u64>() + folded.iter().map(|f| f.bytes).sum::<u64>();
        assert_eq!(total, flows.iter().map(|f| f.bytes).sum::<u64>());
        let (all, none, zero) = fold(flows, 0);
        assert_eq!((all.len(), none.len(), zero), (6, 0, 0));
    }

    #[tokio::test]
    async fn discovers_mgmt_sockets() {
        let dir = tempfile::tempdir().map_err(|e| e.to_string());
        let Ok(dir) = dir else { return };
        for f in [
            "br-int.mgmt",
            "br-ex.mgmt",
            "br-int.snoop",
            "db.sock",
            ".mgmt",
        ] {
            let _ = std::fs::write(dir.path().join(f), b"");
        }
        let found = local_bridges(dir.path())
            .await
            .map(|v| v.into_iter().map(|(b, _)| b).collect::<Vec<_>>());
        assert_eq!(
            found.ok(),
            Some(vec!["br-ex".to_owned(), "br-int".to_owned()])
        );
        let missing = local_bridges(&dir.path().join("nope")).await;
        assert!(matches!(missing, Err(OpenFlowError::NoRundir { .. })));
    }
}
