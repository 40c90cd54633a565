//! An eBPF map snapshot for the golden `/metrics` (programs cannot be loaded unprivileged):
//! the TC programs on the three pod ports of the OpenFlow demo capture, with their port
//! counters (equal to the capture's OpenFlow port statistics), a few flows the demo pipeline
//! decides, retired flows, ring-buffer events, the kprobes' vport and IPVS counters and a full
//! map.

use collector_common::{
    Counters, DIR_EGRESS, DIR_INGRESS, DropKey, FAMILY_IPV4, FlowCounters, FlowKey, IpvsConnKey,
    MAP_FULL_NAMES, VportCounters,
};
use dataplane_collector::sources::ebpf::drops::Reason;
use dataplane_collector::sources::ebpf::engine::AttachMode;
use dataplane_collector::sources::ebpf::{MapSnapshot, PortTraffic};
use std::net::Ipv4Addr;

fn v4(a: Ipv4Addr) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&a.octets());
    out
}

fn flow(
    ifindex: u32,
    direction: u8,
    protocol: u8,
    (src, src_port): (Ipv4Addr, u16),
    (dst, dst_port): (Ipv4Addr, u16),
    (packets, bytes): (u64, u64),
) -> (FlowKey, FlowCounters) {
    let key = FlowKey {
        src: v4(src),
        dst: v4(dst),
        src_port,
        dst_port,
        ifindex,
        protocol,
        family: FAMILY_IPV4,
        direction,
        ..FlowKey::default()
    };
    let counters = FlowCounters {
        packets,
        bytes,
        first_ns: 1_000_000_000,
        last_ns: 2_000_000_000,
    };
    (key, counters)
}

/// The snapshot; `ports` are the demo's pod ports by OpenFlow port number (1, 2, 3).
pub fn snapshot(ports: &[String]) -> MapSnapshot {
    let ifindex = |i: usize| 11 + i as u32;
    let traffic = [
        ((143, 18_346), (24, 2_112)),
        ((20, 1_776), (86, 10_674)),
        ((17, 1_482), (73, 8_944)),
    ];
    let pod = |i: u8| Ipv4Addr::new(10, 244, 0, 2 + i);
    let vip = Ipv4Addr::new(10, 96, 0, 10);
    MapSnapshot {
        mode: Some(AttachMode::Tcx),
        attached: ports
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), ifindex(i)))
            .collect(),
        traffic: traffic
            .iter()
            .enumerate()
            .map(|(i, ((rp, rb), (tp, tb)))| {
                let t = PortTraffic {
                    rx: Counters {
                        packets: *rp,
                        bytes: *rb,
                    },
                    tx: Counters {
                        packets: *tp,
                        bytes: *tb,
                    },
                };
                (ifindex(i), t)
            })
            .collect(),
        flows: vec![
            // pod0 → the service VIP (group 1), pod0 → pod1 (ICMP), pod2 → pod0 (UDP), and
            // the reply to the first as pod1 sends it.
            flow(11, DIR_INGRESS, 6, (pod(0), 40_000), (vip, 80), (60, 9_000)),
            flow(11, DIR_INGRESS, 1, (pod(0), 8), (pod(1), 0), (3, 294)),
            flow(
                13,
                DIR_INGRESS,
                17,
                (pod(2), 5_353),
                (pod(0), 53),
                (10, 800),
            ),
            flow(12, DIR_EGRESS, 6, (vip, 80), (pod(0), 40_000), (50, 7_500)),
        ],
        retired: [(
            (11, DIR_INGRESS),
            Counters {
                packets: 5,
                bytes: 420,
            },
        )]
        .into_iter()
        .collect(),
        events: [(11, (4, 1)), (13, (1, 0))].into_iter().collect(),
        map_full: MAP_FULL_NAMES
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, if i == 0 { 2 } else { 0 }))
            .collect(),
        kprobes: ["ovs_vport_receive", "ovs_dp_upcall", "ip_vs_conn_new"]
            .map(str::to_owned)
            .to_vec(),
        vports: (0..3)
            .map(|i| {
                let v = VportCounters {
                    received: traffic[i].0.0,
                    upcalls: 1 + i as u64,
                };
                (ifindex(i), v)
            })
            .collect(),
        ipvs: vec![(
            IpvsConnKey {
                vaddr: v4(vip),
                daddr: v4(Ipv4Addr::new(10, 10, 1, 2)),
                vport: 80,
                dport: 8080,
                protocol: 6,
                af: 2,
                dest_af: 2,
            },
            25,
        )],
        drop_hook: Some("tp_btf".to_owned()),
        // Namespace 0 is the daemon's own here (the fixture cannot know its inode): UDP to a
        // closed port on pod 1's port, an OpenFlow drop rule on pod 0's (the openvswitch
        // module's reason), and a drop in a namespace that no longer exists, which is not
        // served (and is deleted from the map).
        drops: vec![
            (drop_key(3, 0, 12, 0x0800, 17, DIR_INGRESS), 7),
            (drop_key(0x3_0001, 0, 11, 0x0800, 6, DIR_INGRESS), 4),
            (drop_key(3, 4_026_599_999, 2, 0x0800, 17, DIR_INGRESS), 9),
        ],
        drop_reasons: [
            (3, ("core", "NO_SOCKET")),
            (0x3_0001, ("openvswitch", "OVS_DROP_LAST_ACTION")),
        ]
        .into_iter()
        .map(|(v, (subsystem, name))| {
            let r = Reason {
                subsystem: subsystem.into(),
                name: name.into(),
            };
            (v, r)
        })
        .collect(),
    }
}

fn drop_key(
    reason: u32,
    netns: u32,
    ifindex: u32,
    protocol: u16,
    ip_proto: u8,
    direction: u8,
) -> DropKey {
    DropKey {
        reason,
        netns,
        ifindex,
        protocol,
        ip_proto,
        direction,
    }
}
