//! Metrics of the `ebpf` source.

use super::{PortInfo, Snapshot};
use crate::exposition::{MetricType, Writer};
use collector_common::{DIR_EGRESS, DIR_INGRESS, FAMILY_IPV4, FlowKey};
use std::net::{Ipv4Addr, Ipv6Addr};

const RESTART_NOTE: &str =
    " Resets when the daemon restarts, unless --ebpf.pin-path keeps the maps.";

fn port_labels<'a>(
    smp: crate::exposition::Sample<'a>,
    info: &PortInfo,
) -> crate::exposition::Sample<'a> {
    let mut smp = smp.label("bridge", &info.bridge).label("port", &info.port);
    if let Some(p) = &info.pod {
        smp = smp.label("pod", &p.pod).label("namespace", &p.namespace);
    }
    smp
}

pub fn protocol(p: u8) -> String {
    match p {
        1 => "icmp".to_owned(),
        6 => "tcp".to_owned(),
        17 => "udp".to_owned(),
        58 => "icmpv6".to_owned(),
        132 => "sctp".to_owned(),
        other => other.to_string(),
    }
}

fn addr(b: &[u8; 16], family: u8) -> String {
    if family == FAMILY_IPV4 {
        Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()
    } else {
        Ipv6Addr::from(*b).to_string()
    }
}

fn direction(d: u8) -> &'static str {
    if d == DIR_INGRESS { "rx" } else { "tx" }
}

pub fn encode(s: &Snapshot, w: &mut Writer) {
    w.family(
        "ebpf_hook_available",
        "1 if the hook is attached on this kernel: tc (TCX or clsact on vport netdevs), the kfree_skb tracepoint (drops), and the kprobes ovs_vport_receive, ovs_dp_upcall and ip_vs_conn_new.",
        MetricType::Gauge,
    );
    for (hook, on) in &s.hooks {
        w.sample("ebpf_hook_available")
            .label("hook", hook)
            .value_u64(u64::from(*on));
    }
    if !s.map_full.is_empty() {
        w.family(
            "dataplane_collector_ebpf_map_full_total",
            "Inserts into the collector's eBPF map that failed because it was full (or out of memory): by the programs in the kernel, and by the daemon (PORTS entries made when a port is attached). The map's size is a flag: --ebpf.max-ports (PORTS, VPORTS), --ebpf.max-flows (FLOWS), --ebpf.max-ipvs-conns (IPVS_CONNS); EVENTS is the flow event ring buffer.",
            MetricType::Counter,
        );
        for (map, n) in &s.map_full {
            w.sample("dataplane_collector_ebpf_map_full_total")
                .label("map", map)
                .value_u64(*n);
        }
    }
    w.family(
        "ebpf_attached_ports",
        "OVS vport netdevs with the TC programs attached.",
        MetricType::Gauge,
    );
    let mode = match s.mode {
        Some(super::engine::AttachMode::Tcx) => "tcx",
        Some(super::engine::AttachMode::Clsact) => "clsact",
        None => "none",
    };
    w.sample("ebpf_attached_ports")
        .label("mode", mode)
        .value_u64(s.ports.len() as u64);

    for (name, dir, bytes, help) in [
        (
            "ebpf_port_rx_packets_total",
            DIR_INGRESS,
            false,
            "Packets the OVS port received (the pod sent), counted by TC ingress.",
        ),
        (
            "ebpf_port_rx_bytes_total",
            DIR_INGRESS,
            true,
            "Bytes the OVS port received (the pod sent), counted by TC ingress.",
        ),
        (
            "ebpf_port_tx_packets_total",
            DIR_EGRESS,
            false,
            "Packets the OVS port transmitted (the pod received), counted by TC egress.",
        ),
        (
            "ebpf_port_tx_bytes_total",
            DIR_EGRESS,
            true,
            "Bytes the OVS port transmitted (the pod received), counted by TC egress.",
        ),
    ] {
        w.family(name, &format!("{help}{RESTART_NOTE}"), MetricType::Counter);
        for (info, t) in s.ports.values() {
            let c = if dir == DIR_INGRESS { t.rx } else { t.tx };
            port_labels(w.sample(name), info).value_u64(if bytes { c.bytes } else { c.packets });
        }
    }

    for (name, bytes, help) in [
        (
            "ebpf_flow_packets_total",
            false,
            "Packets of the flow (5-tuple) on the OVS port; only the flows with the most bytes (--ebpf.max-flow-series) have series.",
        ),
        (
            "ebpf_flow_bytes_total",
            true,
            "Bytes of the flow (5-tuple) on the OVS port; only the flows with the most bytes (--ebpf.max-flow-series) have series.",
        ),
    ] {
        if s.flows.is_empty() {
            break;
        }
        w.family(name, &format!("{help}{RESTART_NOTE}"), MetricType::Counter);
        for f in &s.flows {
            let Some((info, _)) = s.ports.get(&f.key.ifindex) else {
                continue;
            };
            let k: &FlowKey = &f.key;
            let mut smp = port_labels(w.sample(name), info)
                .label("direction", direction(k.direction))
                .label("protocol", &protocol(k.protocol))
                .label("src", &addr(&k.src, k.family))
                .label("dst", &addr(&k.dst, k.family))
                .label_u64("src_port", u64::from(k.src_port))
                .label_u64("dst_port", u64::from(k.dst_port));
            if k.vlan != 0 {
                smp = smp.label_u64("vlan", u64::from(k.vlan));
            }
            if let Some(c) = f.cookie {
                smp = smp.label_hex("cookie", c);
            }
            smp.value_u64(if bytes {
                f.counters.bytes
            } else {
                f.counters.packets
            });
        }
    }
    for (name, bytes, help) in [
        (
            "ebpf_flow_folded_packets_total",
            false,
            "Packets of the port's flows without series of their own: past --ebpf.max-flow-series, or idle and retired from the flow map.",
        ),
        (
            "ebpf_flow_folded_bytes_total",
            true,
            "Bytes of the port's flows without series of their own: past --ebpf.max-flow-series, or idle and retired from the flow map.",
        ),
    ] {
        w.family(name, &format!("{help}{RESTART_NOTE}"), MetricType::Counter);
        for ((ifindex, dir), c) in &s.folded {
            let Some((info, _)) = s.ports.get(ifindex) else {
                continue;
            };
            port_labels(w.sample(name), info)
                .label("direction", direction(*dir))
                .value_u64(if bytes { c.bytes } else { c.packets });
        }
    }
    w.family(
        "ebpf_flow_series_folded",
        "Live flows in the map without series of their own (past --ebpf.max-flow-series).",
        MetricType::Gauge,
    );
    w.sample("ebpf_flow_series_folded").value_u64(s.folded_live);
    w.family(
        "ebpf_flows_active",
        "Flows of the port in the flow map (both directions).",
        MetricType::Gauge,
    );
    for (ifindex, n) in &s.active {
        if let Some((info, _)) = s.ports.get(ifindex) {
            port_labels(w.sample("ebpf_flows_active"), info).value_u64(*n);
        }
    }
    for (name, ended, help) in [
        (
            "ebpf_flows_started_total",
            false,
            "Flows first seen on the port (a new 5-tuple in either direction), from the kernel's events.",
        ),
        (
            "ebpf_flows_ended_total",
            true,
            "TCP segments with FIN or RST seen on the port, from the kernel's events.",
        ),
    ] {
        w.family(name, &format!("{help}{RESTART_NOTE}"), MetricType::Counter);
        for (ifindex, (started, end)) in &s.events {
            if let Some((info, _)) = s.ports.get(ifindex) {
                port_labels(w.sample(name), info).value_u64(if ended { *end } else { *started });
            }
        }
    }

    if !s.vports.is_empty() {
        for (name, upcalls, help) in [
            (
                "ebpf_ovs_vport_received_packets_total",
                false,
                "Packets the vport handed to the OVS kernel datapath (kprobe on ovs_vport_receive).",
            ),
            (
                "ebpf_ovs_upcalls_total",
                true,
                "Packets the OVS kernel datapath sent up to ovs-vswitchd, the slow path (kprobe on ovs_dp_upcall), by input vport.",
            ),
        ] {
            w.family(name, &format!("{help}{RESTART_NOTE}"), MetricType::Counter);
            for (ifindex, c) in &s.vports {
                let (bridge, port) = s
                    .ports
                    .get(ifindex)
                    .map(|(i, _)| (i.bridge.clone(), i.port.clone()))
                    .unwrap_or_else(|| (String::new(), super::engine::ifname(*ifindex)));
                w.sample(name)
                    .label("bridge", &bridge)
                    .label("port", &port)
                    .value_u64(if upcalls { c.upcalls } else { c.received });
            }
        }
    }
    if !s.ipvs.is_empty() {
        w.family(
            "ebpf_ipvs_new_connections_total",
            &format!("New IPVS connections per service and real server (kprobe on ip_vs_conn_new).{RESTART_NOTE}"),
            MetricType::Counter,
        );
        for (k, n) in &s.ipvs {
            let fam = |af: u8| if af == 10 { 6 } else { FAMILY_IPV4 };
            w.sample("ebpf_ipvs_new_connections_total")
                .label("protocol", &protocol(k.protocol as u8))
                .label("address", &addr(&k.vaddr, fam(k.af)))
                .label_u64("port", u64::from(k.vport))
                .label("destination_address", &addr(&k.daddr, fam(k.dest_af)))
                .label_u64("destination_port", u64::from(k.dport))
                .value_u64(*n);
        }
    }
    let drops_hooked = s.hooks.iter().any(|(h, on)| *h == "kfree_skb" && *on);
    if drops_hooked || !s.drops.is_empty() {
        w.family(
            "ebpf_drops_total",
            &format!("Packets the kernel dropped (the kfree_skb tracepoint; consumed packets are not counted), by reason as the running kernel's BTF names it (subsystem core: enum skb_drop_reason without its SKB_DROP_REASON_ prefix; openvswitch: the module's OVS_DROP_* reasons), by device in its network namespace, the OVS port it is or is the veth peer of, that port's pod, protocol and direction (rx: the device received the packet; tx: it was on its way out). Past --ebpf.drops-max-series the series with the fewest drops are folded per reason into device=\"other\". Series of namespaces and devices that are gone are deleted.{RESTART_NOTE}"),
            MetricType::Counter,
        );
        for r in &s.drops {
            let mut smp = w
                .sample("ebpf_drops_total")
                .label("reason", &r.reason.name)
                .label("subsystem", &r.reason.subsystem)
                .label("device", &r.device);
            smp = port_labels(smp, &r.info)
                .label("protocol", &r.protocol)
                .label("direction", r.direction.map_or("", direction));
            smp.value_u64(r.count);
        }
        w.family(
            "ebpf_drop_series_folded",
            "Drop series folded into device=\"other\" because of --ebpf.drops-max-series.",
            MetricType::Gauge,
        );
        w.sample("ebpf_drop_series_folded")
            .value_u64(s.drops_folded);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_full_is_a_counter_per_map() {
        let s = Snapshot {
            map_full: vec![("PORTS", 3), ("FLOWS", 0)],
            ..Snapshot::default()
        };
        let mut w = Writer::new();
        encode(&s, &mut w);
        let text = w.into_string();
        assert!(text.contains("# TYPE dataplane_collector_ebpf_map_full_total counter\n"));
        assert!(text.contains("dataplane_collector_ebpf_map_full_total{map=\"PORTS\"} 3\n"));
        assert!(text.contains("dataplane_collector_ebpf_map_full_total{map=\"FLOWS\"} 0\n"));
        let none = Snapshot::default();
        let mut w = Writer::new();
        encode(&none, &mut w);
        assert!(!w.into_string().contains("map_full"));
    }
}
