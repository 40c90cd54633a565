//! Metrics of the `vswitchd` source. docs/metrics.md lists them with the names OVN-Kubernetes
//! (`ovs_vswitchd_*`) and greenpau/ovs_exporter give the same figures.
//!
//! A datapath is `datapath` (its name: `ovs-system`, `ovs-netdev`) and `type` (`system`: the
//! kernel's, `netdev`: userspace), as in the `datapath` source, which serves the datapaths'
//! own figures (lookups, flows, masks, ports, zone limits).

use super::Snapshot;
use crate::exposition::{MetricType, Writer};

/// `netdev@ovs-netdev` → (`ovs-netdev`, `netdev`).
fn split_dp(full: &str) -> (&str, &str) {
    match full.split_once('@') {
        Some((kind, name)) => (name, kind),
        None => (full, ""),
    }
}

pub fn encode(s: &Snapshot, w: &mut Writer) {
    w.family(
        "ovs_vswitchd_info",
        "The ovs-vswitchd the daemon reads over its control socket, by version; always 1.",
        MetricType::Gauge,
    );
    if let Some((ovs, dpdk)) = &s.version {
        w.sample("ovs_vswitchd_info")
            .label("version", ovs)
            .label("dpdk_version", dpdk.as_deref().unwrap_or(""))
            .value_u64(1);
    }

    // ---- coverage ----
    w.family(
        "ovs_coverage_total",
        "ovs-vswitchd's coverage counter of an event since it started (coverage/show's total; events never hit have no series). docs/metrics.md names the ones OVN-Kubernetes alerts on.",
        MetricType::Counter,
    );
    if let Some(c) = &s.coverage {
        for (event, total) in &c.events {
            w.sample("ovs_coverage_total")
                .label("event", event)
                .value_u64(*total);
        }
    }

    // ---- upcalls ----
    type UpcallGauge = (
        &'static str,
        &'static str,
        fn(&super::Upcall) -> Option<u64>,
    );
    const UPCALL: &[UpcallGauge] = &[
        (
            "ovs_upcall_flows",
            "Datapath flows ovs-vswitchd's revalidators know of now.",
            |u| Some(u.flows),
        ),
        (
            "ovs_upcall_flows_average",
            "Datapath flows, averaged by ovs-vswitchd over its recent dumps.",
            |u| Some(u.flows_avg),
        ),
        (
            "ovs_upcall_flows_max",
            "Most datapath flows since ovs-vswitchd started.",
            |u| Some(u.flows_max),
        ),
        (
            "ovs_upcall_flow_limit",
            "Datapath flows ovs-vswitchd allows now (other_config:flow-limit, lowered while dumps are slow); new flows past it are not installed.",
            |u| Some(u.flow_limit),
        ),
        (
            "ovs_upcall_offloaded_flows",
            "Datapath flows offloaded to hardware.",
            |u| u.offloaded_flows,
        ),
    ];
    for (name, help, get) in UPCALL {
        w.family(name, help, MetricType::Gauge);
        for u in &s.upcalls {
            if let Some(v) = get(u) {
                let (dp, kind) = split_dp(&u.datapath);
                w.sample(name)
                    .label("datapath", dp)
                    .label("type", kind)
                    .value_u64(v);
            }
        }
    }
    w.family(
        "ovs_upcall_dump_duration_seconds",
        "How long the revalidators' last dump of the datapath's flows took (over 2 s, ovs-vswitchd lowers the flow limit).",
        MetricType::Gauge,
    );
    for u in &s.upcalls {
        let (dp, kind) = split_dp(&u.datapath);
        w.sample("ovs_upcall_dump_duration_seconds")
            .label("datapath", dp)
            .label("type", kind)
            .value_f64(u.dump_duration_ms as f64 / 1000.0);
    }
    w.family(
        "ovs_upcall_ufid_enabled",
        "1 if the datapath identifies flows by UFID (cheaper dumps), 0 if not.",
        MetricType::Gauge,
    );
    for u in &s.upcalls {
        let (dp, kind) = split_dp(&u.datapath);
        w.sample("ovs_upcall_ufid_enabled")
            .label("datapath", dp)
            .label("type", kind)
            .value_u64(u64::from(u.ufid_enabled));
    }
    w.family(
        "ovs_upcall_revalidator_keys",
        "Datapath flows (ukeys) a revalidator thread keeps.",
        MetricType::Gauge,
    );
    for u in &s.upcalls {
        let (dp, kind) = split_dp(&u.datapath);
        for (id, keys) in &u.revalidators {
            w.sample("ovs_upcall_revalidator_keys")
                .label("datapath", dp)
                .label("type", kind)
                .label_u64("revalidator", u64::from(*id))
                .value_u64(*keys);
        }
    }

    // ---- memory/show ----
    w.family(
        "ovs_vswitchd_objects",
        "Objects ovs-vswitchd holds, by kind, as memory/show reports them (handlers and revalidators are threads; rules, ports, udpif keys, ofconns, idl-cells…).",
        MetricType::Gauge,
    );
    for (kind, n) in &s.memory {
        w.sample("ovs_vswitchd_objects")
            .label("kind", kind)
            .value_u64(*n);
    }

    // ---- PMD threads ----
    encode_pmd(s, w);

    // ---- conntrack ----
    w.family(
        "ovs_conntrack_connections",
        "Connections in the datapath's connection tracker (userspace datapath).",
        MetricType::Gauge,
    );
    for c in &s.conntrack {
        if let Some(v) = c.connections {
            let (dp, kind) = split_dp(&c.datapath);
            w.sample("ovs_conntrack_connections")
                .label("datapath", dp)
                .label("type", kind)
                .value_u64(v);
        }
    }
    w.family(
        "ovs_conntrack_max_connections",
        "Connections the datapath's connection tracker holds at most (userspace datapath).",
        MetricType::Gauge,
    );
    for c in &s.conntrack {
        if let Some(v) = c.max_connections {
            let (dp, kind) = split_dp(&c.datapath);
            w.sample("ovs_conntrack_max_connections")
                .label("datapath", dp)
                .label("type", kind)
                .value_u64(v);
        }
    }
    // ---- bonds ----
    w.family(
        "ovs_bond_member_enabled",
        "1 if the bond member carries traffic (enabled), 0 if not.",
        MetricType::Gauge,
    );
    for b in &s.bonds {
        for m in &b.members {
            w.sample("ovs_bond_member_enabled")
                .label("bond", &b.name)
                .label("mode", &b.mode)
                .label("member", &m.name)
                .value_u64(u64::from(m.enabled));
        }
    }
    w.family(
        "ovs_bond_member_active",
        "1 for the member an active-backup bond sends on now, 0 for the others.",
        MetricType::Gauge,
    );
    for b in &s.bonds {
        for m in &b.members {
            w.sample("ovs_bond_member_active")
                .label("bond", &b.name)
                .label("member", &m.name)
                .value_u64(u64::from(m.active));
        }
    }
    w.family(
        "ovs_bond_lacp_negotiated",
        "1 if the bond's LACP negotiation succeeded, 0 if it runs LACP and did not.",
        MetricType::Gauge,
    );
    for b in s
        .bonds
        .iter()
        .filter(|b| b.lacp_status != "off" && !b.lacp_status.is_empty())
    {
        w.sample("ovs_bond_lacp_negotiated")
            .label("bond", &b.name)
            .value_u64(u64::from(b.lacp_status == "negotiated"));
    }
    w.family(
        "ovs_bond_member_lacp_attached",
        "1 if LACP attached the member to its bond's aggregator, 0 if not.",
        MetricType::Gauge,
    );
    for b in &s.bonds {
        for m in &b.members {
            if let Some((_, attached)) = &m.lacp_state {
                w.sample("ovs_bond_member_lacp_attached")
                    .label("bond", &b.name)
                    .label("member", &m.name)
                    .value_u64(u64::from(*attached));
            }
        }
    }
    w.family(
        "ovs_bond_member_lacp_state",
        "The member's LACP receive state: 1 for the one it is in (current: its partner's PDUs arrive; expired: they stopped a while ago; defaulted: none for longer, partner unknown), 0 for the others.",
        MetricType::Gauge,
    );
    for b in &s.bonds {
        for m in &b.members {
            if let Some((now, _)) = &m.lacp_state {
                for state in ["current", "expired", "defaulted"] {
                    w.sample("ovs_bond_member_lacp_state")
                        .label("bond", &b.name)
                        .label("member", &m.name)
                        .label("state", state)
                        .value_u64(u64::from(now == state));
                }
            }
        }
    }
}

/// `dpif-netdev/pmd-stats-show`'s counters, by thread: `thread` is `main` (the non-PMD thread
/// that polls the userspace datapath's ports without DPDK) or `pmd`, with `numa` and `core`
/// where the thread is pinned.
fn encode_pmd(s: &Snapshot, w: &mut Writer) {
    fn labels<'a>(
        w: crate::exposition::Sample<'a>,
        t: &super::PmdThread,
    ) -> crate::exposition::Sample<'a> {
        let w = w.label("thread", &t.thread);
        let w = match t.numa {
            Some(n) => w.label("numa", &n.to_string()),
            None => w.label("numa", ""),
        };
        match t.core {
            Some(c) => w.label_u64("core", u64::from(c)),
            None => w.label("core", ""),
        }
    }
    let simple: &[(&str, &str, &str)] = &[
        (
            "ovs_pmd_packets_received_total",
            "Packets the userspace datapath thread received.",
            "packets received",
        ),
        (
            "ovs_pmd_recirculations_total",
            "Packets the userspace datapath thread recirculated (another pass through the datapath).",
            "packet recirculations",
        ),
    ];
    for (name, help, key) in simple {
        w.family(name, help, MetricType::Counter);
        for t in &s.pmd {
            if let Some(v) = t.get(key) {
                labels(w.sample(name), t).value_u64(v);
            }
        }
    }
    w.family(
        "ovs_pmd_hits_total",
        "Packets the userspace datapath thread found a flow for, by the cache tier that had it: phwol (hardware offload), mfex_opt, simple_match, emc (exact match), smc (signature match), megaflow.",
        MetricType::Counter,
    );
    for t in &s.pmd {
        for (key, v) in &t.counters {
            let Some(tier) = key.strip_suffix(" hits") else {
                continue;
            };
            let tier = tier.replace(' ', "_");
            labels(w.sample("ovs_pmd_hits_total"), t)
                .label("tier", &tier)
                .value_u64(*v);
        }
    }
    w.family(
        "ovs_pmd_upcalls_total",
        "Packets the userspace datapath thread missed in every cache, by whether the upcall to ovs-vswitchd succeeded (failed: the packet was lost).",
        MetricType::Counter,
    );
    for t in &s.pmd {
        for (key, result) in [
            ("miss with success upcall", "success"),
            ("miss with failed upcall", "failed"),
        ] {
            if let Some(v) = t.get(key) {
                labels(w.sample("ovs_pmd_upcalls_total"), t)
                    .label("result", result)
                    .value_u64(v);
            }
        }
    }
    w.family(
        "ovs_pmd_cycles_total",
        "CPU cycles of the PMD thread's polling loop, by state: idle (polled, nothing came) or processing.",
        MetricType::Counter,
    );
    for t in &s.pmd {
        for (key, state) in [("idle cycles", "idle"), ("processing cycles", "processing")] {
            if let Some(v) = t.get(key) {
                labels(w.sample("ovs_pmd_cycles_total"), t)
                    .label("state", state)
                    .value_u64(v);
            }
        }
    }
}
