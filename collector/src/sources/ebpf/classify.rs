//! The OpenFlow rule that decides a flow: the flow key is run through the bridge's tables the
//! way `ovs-appctl ofproto/trace` runs a packet, following `goto_table` and `resubmit(,N)` where
//! they are unconditional, and the cookie of the last rule reached is the flow's `cookie`.
//!
//! Understood match fields: `in_port`, `dl_type` (`ip`, `ipv6`), `nw_proto`, `nw_src`/`nw_dst`
//! and `ipv6_src`/`ipv6_dst` (with masks), `tp_src`/`tp_dst` (with masks; ICMP type and code),
//! `vlan_tci` (`dl_vlan`), `nw_frag` (not a fragment). A rule matching on anything else
//! (registers, metadata, conntrack state, MAC addresses, tunnel fields…) depends on state the
//! flow key does not carry, so it is treated as not matching; tables are walked as they were
//! at the last refresh (every 30 s).

use super::{FlowRow, Snapshot};
use crate::openflow::message::{FlowRule, MultipartType, decode_flow_rules};
use crate::openflow::oxm::Field;
use crate::openflow::{Client, Endpoint};
use collector_common::{FAMILY_IPV4, FAMILY_IPV6, FlowKey};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A packet as classification sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Packet {
    pub in_port: u16,
    pub dl_type: u16,
    pub nw_proto: u8,
    pub nw_src: u128,
    pub nw_dst: u128,
    pub tp_src: u16,
    pub tp_dst: u16,
    /// 0 when untagged, else VID | CFI (0x1000), as OVS's `vlan_tci`.
    pub vlan_tci: u16,
}

impl Packet {
    /// The packet a flow key describes, entering the switch at `in_port`.
    pub fn from_key(key: &FlowKey, in_port: u16) -> Packet {
        let addr = |b: &[u8; 16], family: u8| -> u128 {
            if family == FAMILY_IPV4 {
                u128::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            } else {
                u128::from_be_bytes(*b)
            }
        };
        Packet {
            in_port,
            dl_type: match key.family {
                FAMILY_IPV4 => 0x0800,
                FAMILY_IPV6 => 0x86dd,
                _ => 0,
            },
            nw_proto: key.protocol,
            nw_src: addr(&key.src, key.family),
            nw_dst: addr(&key.dst, key.family),
            tp_src: key.src_port,
            tp_dst: key.dst_port,
            vlan_tci: if key.vlan == 0 { 0 } else { key.vlan | 0x1000 },
        }
    }

    fn value(&self, f: Field) -> Option<u128> {
        let v4 = self.dl_type == 0x0800;
        let v6 = self.dl_type == 0x86dd;
        Some(match f {
            Field::InPort => u128::from(self.in_port),
            Field::DlType => u128::from(self.dl_type),
            Field::NwProto if v4 || v6 => u128::from(self.nw_proto),
            Field::NwSrc if v4 => self.nw_src,
            Field::NwDst if v4 => self.nw_dst,
            Field::Ipv6Src if v6 => self.nw_src,
            Field::Ipv6Dst if v6 => self.nw_dst,
            Field::TpSrc => u128::from(self.tp_src),
            Field::TpDst => u128::from(self.tp_dst),
            Field::VlanTci => u128::from(self.vlan_tci),
            Field::NwFrag => 0,
            _ => return None,
        })
    }
}

/// A bridge's tables, each sorted by priority (highest first).
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    tables: BTreeMap<u8, Vec<FlowRule>>,
}

impl Pipeline {
    pub fn new(mut rules: Vec<FlowRule>) -> Pipeline {
        rules.sort_by_key(|r| std::cmp::Reverse(r.priority));
        let mut tables: BTreeMap<u8, Vec<FlowRule>> = BTreeMap::new();
        for r in rules {
            tables.entry(r.table_id).or_default().push(r);
        }
        Pipeline { tables }
    }

    fn matches(rule: &FlowRule, pkt: &Packet) -> bool {
        !rule.unknown_fields
            && rule
                .fields
                .iter()
                .all(|&(f, value, mask)| pkt.value(f).is_some_and(|v| v & mask == value & mask))
    }

    /// The rules a packet hits, in the order `ofproto/trace` shows them.
    pub fn trace(&self, pkt: &Packet) -> Vec<&FlowRule> {
        let mut path = Vec::new();
        self.visit(0, pkt, &mut path, 0);
        path
    }

    fn visit<'a>(&'a self, table: u8, pkt: &Packet, path: &mut Vec<&'a FlowRule>, depth: u32) {
        if depth > 64 || path.len() > 256 {
            return;
        }
        let Some(rules) = self.tables.get(&table) else {
            return;
        };
        let Some(rule) = rules.iter().find(|r| Self::matches(r, pkt)) else {
            return;
        };
        path.push(rule);
        for &next in &rule.next_tables {
            self.visit(next, pkt, path, depth + 1);
        }
    }

    /// The cookie of the last rule the packet reaches.
    pub fn cookie(&self, pkt: &Packet) -> Option<u64> {
        self.trace(pkt).last().map(|r| r.cookie)
    }
}

/// Bridges' pipelines, refreshed every 30 s, and as soon as the flows' bridges are others than
/// those last fetched (the first scrape may come before OVSDB has named any).
pub struct Cache {
    rundir: PathBuf,
    state: tokio::sync::Mutex<Option<Fetched>>,
}

struct Fetched {
    at: Instant,
    /// The bridges asked for, sorted (a bridge that did not answer has no pipeline).
    bridges: Vec<String>,
    pipelines: HashMap<String, Pipeline>,
}

const REFRESH: Duration = Duration::from_secs(30);

impl Cache {
    pub fn new(rundir: PathBuf) -> Cache {
        Cache {
            rundir,
            state: tokio::sync::Mutex::new(None),
        }
    }

    async fn fetch(&self, bridge: &str, deadline: tokio::time::Instant) -> Option<Pipeline> {
        let endpoint = Endpoint::Unix(self.rundir.join(format!("{bridge}.mgmt")));
        let mut client = Client::connect(&endpoint, deadline).await.ok()?;
        let mut rules = Vec::new();
        client
            .multipart(MultipartType::Flow, &mut |b| {
                decode_flow_rules(b, &mut rules)
            })
            .await
            .ok()?;
        Some(Pipeline::new(rules))
    }

    /// Sets each flow's cookie.
    pub async fn assign(&self, snap: &mut Snapshot, deadline: tokio::time::Instant) {
        let mut bridges: Vec<String> = snap
            .ports
            .values()
            .map(|(info, _)| info.bridge.clone())
            .filter(|b| !b.is_empty())
            .collect();
        bridges.sort();
        bridges.dedup();
        let mut state = self.state.lock().await;
        let stale = state
            .as_ref()
            .is_none_or(|f| f.at.elapsed() > REFRESH || f.bridges != bridges);
        if stale {
            let mut pipelines = HashMap::new();
            for b in &bridges {
                if let Some(p) = self.fetch(b, deadline).await {
                    pipelines.insert(b.clone(), p);
                }
            }
            *state = Some(Fetched {
                at: Instant::now(),
                bridges,
                pipelines,
            });
        }
        let Some(Fetched { pipelines, .. }) = state.as_ref() else {
            return;
        };
        for FlowRow { key, cookie, .. } in &mut snap.flows {
            // Only what enters the switch at this port is classified: the port's ingress.
            if key.direction != collector_common::DIR_INGRESS {
                continue;
            }
            let Some((info, _)) = snap.ports.get(&key.ifindex) else {
                continue;
            };
            let (Some(p), Some(ofport)) = (pipelines.get(&info.bridge), info.ofport) else {
                continue;
            };
            *cookie = p.cookie(&Packet::from_key(key, ofport));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        table: u8,
        priority: u16,
        cookie: u64,
        fields: &[(Field, u128, u128)],
        next: &[u8],
    ) -> FlowRule {
        FlowRule {
            table_id: table,
            priority,
            cookie,
            fields: fields.to_vec(),
            unknown_fields: false,
            next_tables: next.to_vec(),
        }
    }

    #[test]
    fn walks_goto_and_resubmit_depth_first() {
        let p = Pipeline::new(vec![
            rule(0, 100, 0x10, &[(Field::DlType, 0x800, 0xffff)], &[1]),
            rule(0, 0, 0x1, &[], &[]),
            rule(
                1,
                200,
                0x20,
                &[(Field::NwDst, 0x0a00_0001, 0xffff_ffff)],
                &[2, 3],
            ),
            rule(
                1,
                100,
                0x21,
                &[(Field::NwDst, 0x0a00_0000, 0xffff_ff00)],
                &[],
            ),
            rule(2, 50, 0x30, &[(Field::TpDst, 80, 0xffff)], &[]),
            rule(3, 50, 0x40, &[(Field::InPort, 2, 0xffff)], &[]),
            rule(3, 10, 0x41, &[(Field::Reg0, 1, 0xffff_ffff)], &[]),
        ]);
        let mut key = FlowKey {
            family: FAMILY_IPV4,
            protocol: 6,
            dst_port: 80,
            ..FlowKey::default()
        };
        key.dst[..4].copy_from_slice(&[10, 0, 0, 1]);
        let pkt = Packet::from_key(&key, 2);
        let path: Vec<u64> = p.trace(&pkt).iter().map(|r| r.cookie).collect();
        assert_eq!(path, vec![0x10, 0x20, 0x30, 0x40]);
        assert_eq!(p.cookie(&pkt), Some(0x40));
        // From another port: table 3's register rule cannot be evaluated, so it ends at 2.
        assert_eq!(p.cookie(&Packet::from_key(&key, 7)), Some(0x30));
        key.dst[3] = 9;
        assert_eq!(p.cookie(&Packet::from_key(&key, 2)), Some(0x21));
        // Not IP: the catch-all.
        key.family = 0;
        assert_eq!(p.cookie(&Packet::from_key(&key, 2)), Some(0x1));
    }
}
