//! Open vSwitch's health settings and state, from the replica: per Interface, BFD
//! (`bfd_status`), CFM (`cfm_*`) and a tunnel's egress carrier (`status`); and ovs-vswitchd's
//! datapath settings (the Open_vSwitch row's `other_config`).
//!
//! Every value here is a string (or a column) a peer controls: each is parsed strictly, and a
//! malformed one is no series (and a debug log), never a panic and never a guess.

use super::attribution::Attribution;
use crate::exposition::{LabelArena, MetricType, Writer};
use crate::ovsdb::InterfaceView;
use crate::ovsdb::replica::OpenVswitch;
use std::collections::BTreeMap;

/// BFD session states, as OVS writes them in `bfd_status:state` and `remote_state`.
pub const BFD_STATES: &[&str] = &["admin_down", "down", "init", "up"];

/// CFM fault reasons, as OVS writes them in `cfm_fault_status`.
pub const CFM_FAULTS: &[&str] = &["recv", "rdi", "maid", "loopback", "overflow", "override"];

/// ovs-vswitchd's defaults for the `other_config` settings served with a default.
pub const DEFAULT_FLOW_LIMIT: u64 = 200_000;
pub const DEFAULT_MAX_IDLE_MS: u64 = 10_000;
pub const DEFAULT_TC_POLICY: &str = "none";
pub const TC_POLICIES: &[&str] = &["none", "skip_sw", "skip_hw"];

/// The longest peer-written value quoted in a debug log.
const LOG_VALUE_CHARS: usize = 64;

fn malformed(what: &str, key: &str, value: &str) {
    let value: String = value.chars().take(LOG_VALUE_CHARS).collect();
    tracing::debug!(what, key, value, "malformed value in OVSDB: not served");
}

/// A decimal unsigned integer as OVS's `other_config` parsers take them, strictly: digits
/// only, no sign, no blanks, within `u32` (OVS stores these in an `unsigned int`).
pub fn parse_uint(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u32>().ok().map(u64::from)
}

/// `true`/`false` (OVS compares them case-insensitively).
pub fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// One interface's BFD state (`bfd_status`); `None` when BFD is off (the map is empty).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bfd {
    pub state: Option<&'static str>,
    pub remote_state: Option<&'static str>,
    pub forwarding: Option<bool>,
    pub flaps: Option<u64>,
    pub diagnostic: Option<String>,
}

fn bfd_state(key: &str, v: Option<&String>) -> Option<&'static str> {
    let v = v?;
    let s = BFD_STATES.iter().copied().find(|s| *s == v.as_str());
    if s.is_none() {
        malformed("bfd_status", key, v);
    }
    s
}

pub fn bfd(status: &BTreeMap<String, String>) -> Option<Bfd> {
    if status.is_empty() {
        return None;
    }
    let forwarding = status.get("forwarding").and_then(|v| {
        let b = parse_bool(v);
        if b.is_none() {
            malformed("bfd_status", "forwarding", v);
        }
        b
    });
    let flaps = status.get("flap_count").and_then(|v| {
        // A 64-bit counter in OVS.
        let n = (!v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()))
            .then(|| v.parse::<u64>().ok())
            .flatten();
        if n.is_none() {
            malformed("bfd_status", "flap_count", v);
        }
        n
    });
    Some(Bfd {
        state: bfd_state("state", status.get("state")),
        remote_state: bfd_state("remote_state", status.get("remote_state")),
        forwarding,
        flaps,
        diagnostic: status
            .get("diagnostic")
            .filter(|d| !d.is_empty())
            .map(|d| d.chars().take(LOG_VALUE_CHARS).collect()),
    })
}

/// One interface's CFM state; `None` when CFM is off (`cfm_fault` is empty).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cfm {
    pub fault: bool,
    /// Which of [`CFM_FAULTS`] are raised.
    pub reasons: Vec<&'static str>,
    /// `cfm_health` / 100, when OVS computes it (`cfm_extended`) and it is in 0–100.
    pub health_ratio: Option<f64>,
    pub flaps: Option<i64>,
    /// `cfm_remote_opstate`: `Some(true)` for up.
    pub remote_up: Option<bool>,
}

pub fn cfm(iface: &crate::ovsdb::Interface) -> Option<Cfm> {
    let fault = iface.cfm_fault?;
    let mut reasons = Vec::new();
    for r in &iface.cfm_fault_status {
        match CFM_FAULTS.iter().copied().find(|k| *k == r.as_str()) {
            Some(k) => reasons.push(k),
            None => malformed("cfm_fault_status", &iface.name, r),
        }
    }
    let health_ratio = iface.cfm_health.and_then(|h| {
        if (0..=100).contains(&h) {
            Some(h as f64 / 100.0)
        } else {
            malformed("cfm_health", &iface.name, &h.to_string());
            None
        }
    });
    let flaps = iface.cfm_flap_count.and_then(|f| {
        if f >= 0 {
            Some(f)
        } else {
            malformed("cfm_flap_count", &iface.name, &f.to_string());
            None
        }
    });
    let remote_up = iface.cfm_remote_opstate.as_deref().and_then(|s| match s {
        "up" => Some(true),
        "down" => Some(false),
        _ => {
            malformed("cfm_remote_opstate", &iface.name, s);
            None
        }
    });
    Some(Cfm {
        fault,
        reasons,
        health_ratio,
        flaps,
        remote_up,
    })
}

/// A tunnel's egress: the interface its packets leave by, and whether that one has carrier.
/// `None` for an interface that is no tunnel, or one OVS found no route for.
pub fn tunnel_egress(status: &BTreeMap<String, String>) -> Option<(bool, Option<&str>)> {
    let carrier = status.get("tunnel_egress_iface_carrier")?;
    let up = match carrier.as_str() {
        "up" => true,
        "down" => false,
        other => {
            malformed("status", "tunnel_egress_iface_carrier", other);
            return None;
        }
    };
    Some((
        up,
        status
            .get("tunnel_egress_iface")
            .map(String::as_str)
            .filter(|s| !s.is_empty()),
    ))
}

/// ovs-vswitchd's datapath settings, as in effect: a setting left unset is OVS's default
/// where OVS has a fixed one; the thread counts OVS picks itself (from the CPUs) are `None`
/// when unset (or 0, which OVS reads the same). A malformed value is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    pub hw_offload: Option<bool>,
    pub tc_policy: Option<&'static str>,
    pub handler_threads: Option<u64>,
    pub revalidator_threads: Option<u64>,
    pub flow_limit: Option<u64>,
    pub max_idle_ms: Option<u64>,
}

pub fn config(row: &OpenVswitch) -> Config {
    let oc = &row.other_config;
    let get = |key: &str| oc.get(key).map(String::as_str);
    let checked = |key: &str, v: &str, parsed: Option<u64>| {
        if parsed.is_none() {
            malformed("other_config", key, v);
        }
        parsed
    };
    let uint = |key: &str, default: u64| match get(key) {
        None => Some(default),
        Some(v) => checked(key, v, parse_uint(v)),
    };
    let threads = |key: &str| match get(key) {
        None => None,
        Some(v) => checked(key, v, parse_uint(v)).filter(|&n| n > 0),
    };
    Config {
        hw_offload: match get("hw-offload") {
            None => Some(false),
            Some(v) => {
                let b = parse_bool(v);
                if b.is_none() {
                    malformed("other_config", "hw-offload", v);
                }
                b
            }
        },
        tc_policy: match get("tc-policy") {
            None => Some(DEFAULT_TC_POLICY),
            Some(v) => {
                let p = TC_POLICIES.iter().copied().find(|p| *p == v);
                if p.is_none() {
                    malformed("other_config", "tc-policy", v);
                }
                p
            }
        },
        handler_threads: threads("n-handler-threads"),
        revalidator_threads: threads("n-revalidator-threads"),
        flow_limit: uint("flow-limit", DEFAULT_FLOW_LIMIT),
        max_idle_ms: uint("max-idle", DEFAULT_MAX_IDLE_MS),
    }
}

/// The `ovs_config_*` series (none without an Open_vSwitch row).
pub fn encode_config(w: &mut Writer, row: Option<&OpenVswitch>) {
    let Some(row) = row else { return };
    let c = config(row);
    let mut gauge = |name: &str, help: &str, v: Option<f64>| {
        if let Some(v) = v {
            w.family(name, help, MetricType::Gauge);
            w.sample(name).value_f64(v);
        }
    };
    gauge(
        "ovs_config_hw_offload",
        "1 if other_config:hw-offload is true (flows offloaded to the NIC), 0 if not; unset is OVS's default, 0.",
        c.hw_offload.map(|b| f64::from(u8::from(b))),
    );
    gauge(
        "ovs_config_handler_threads",
        "other_config:n-handler-threads; absent when unset (OVS picks from the CPUs).",
        c.handler_threads.map(|n| n as f64),
    );
    gauge(
        "ovs_config_revalidator_threads",
        "other_config:n-revalidator-threads; absent when unset (OVS picks from the CPUs).",
        c.revalidator_threads.map(|n| n as f64),
    );
    gauge(
        "ovs_config_flow_limit",
        "other_config:flow-limit, the most datapath flows ovs-vswitchd keeps; unset is OVS's default, 200000.",
        c.flow_limit.map(|n| n as f64),
    );
    gauge(
        "ovs_config_max_idle_seconds",
        "other_config:max-idle, how long an idle datapath flow is kept; unset is OVS's default, 10 s.",
        c.max_idle_ms.map(|ms| ms as f64 / 1000.0),
    );
    if let Some(p) = c.tc_policy {
        w.family(
            "ovs_config_tc_policy_info",
            "Always 1: other_config:tc-policy, the TC offload policy (none, skip_sw, skip_hw); unset is OVS's default, none.",
            MetricType::Gauge,
        );
        w.sample("ovs_config_tc_policy_info")
            .label("policy", p)
            .value_u64(1);
    }
}

/// The per-interface health series: BFD, CFM and tunnel egress carrier, each only for the
/// interfaces with that feature on (or data for it).
pub fn encode_interfaces(
    w: &mut Writer,
    ifaces: &[(InterfaceView<'_>, Attribution)],
    arena: &LabelArena,
) {
    let bfds: Vec<(usize, Bfd)> = ifaces
        .iter()
        .enumerate()
        .filter_map(|(i, (v, _))| bfd(&v.iface.bfd_status).map(|b| (i, b)))
        .collect();
    stateset(
        w,
        arena,
        "ovs_interface_bfd_state",
        "BFD session state: 1 for the current state, 0 for the others.",
        BFD_STATES,
        bfds.iter().map(|(i, b)| (*i, b.state)),
    );
    stateset(
        w,
        arena,
        "ovs_interface_bfd_remote_state",
        "The BFD session state the remote end reports: 1 for its state, 0 for the others.",
        BFD_STATES,
        bfds.iter().map(|(i, b)| (*i, b.remote_state)),
    );
    per_iface(
        w,
        arena,
        "ovs_interface_bfd_forwarding",
        "1 if BFD considers the interface fit to forward, 0 if not.",
        MetricType::Gauge,
        bfds.iter()
            .map(|(i, b)| (*i, b.forwarding.map(|f| f64::from(u8::from(f))))),
    );
    per_iface(
        w,
        arena,
        "ovs_interface_bfd_flaps_total",
        "Times the BFD session's forwarding state changed (bfd_status:flap_count).",
        MetricType::Counter,
        bfds.iter().map(|(i, b)| (*i, b.flaps.map(|f| f as f64))),
    );
    let diags: Vec<(usize, &str)> = bfds
        .iter()
        .filter_map(|(i, b)| b.diagnostic.as_deref().map(|d| (*i, d)))
        .collect();
    if !diags.is_empty() {
        w.family(
            "ovs_interface_bfd_diagnostic_info",
            "Always 1: the local BFD diagnostic, the reason the session last left up (\"No Diagnostic\" if none).",
            MetricType::Gauge,
        );
        for (i, d) in diags {
            w.sample("ovs_interface_bfd_diagnostic_info")
                .labels_raw(arena.get(i))
                .label("diagnostic", d)
                .value_u64(1);
        }
    }

    let cfms: Vec<(usize, Cfm)> = ifaces
        .iter()
        .enumerate()
        .filter_map(|(i, (v, _))| cfm(v.iface).map(|c| (i, c)))
        .collect();
    per_iface(
        w,
        arena,
        "ovs_interface_cfm_fault",
        "1 if CFM reports a connectivity fault on the interface, 0 if not.",
        MetricType::Gauge,
        cfms.iter()
            .map(|(i, c)| (*i, Some(f64::from(u8::from(c.fault))))),
    );
    if !cfms.is_empty() {
        w.family(
            "ovs_interface_cfm_fault_status",
            "1 for each CFM fault reason raised (cfm_fault_status), 0 for the others.",
            MetricType::Gauge,
        );
        for (i, c) in &cfms {
            for r in CFM_FAULTS {
                w.sample("ovs_interface_cfm_fault_status")
                    .labels_raw(arena.get(*i))
                    .label("reason", r)
                    .value_u64(u64::from(c.reasons.contains(r)));
            }
        }
    }
    per_iface(
        w,
        arena,
        "ovs_interface_cfm_health_ratio",
        "CFM's health of the link, 0 to 1 (cfm_health / 100; only with other_config:cfm_extended).",
        MetricType::Gauge,
        cfms.iter().map(|(i, c)| (*i, c.health_ratio)),
    );
    per_iface(
        w,
        arena,
        "ovs_interface_cfm_flaps_total",
        "Times CFM's fault status changed (cfm_flap_count).",
        MetricType::Counter,
        cfms.iter().map(|(i, c)| (*i, c.flaps.map(|f| f as f64))),
    );
    per_iface(
        w,
        arena,
        "ovs_interface_cfm_remote_opstate",
        "1 if the remote CFM end reports its operational state up, 0 if down (only with cfm_extended).",
        MetricType::Gauge,
        cfms.iter()
            .map(|(i, c)| (*i, c.remote_up.map(|u| f64::from(u8::from(u))))),
    );

    let tunnels: Vec<(usize, bool, Option<&str>)> = ifaces
        .iter()
        .enumerate()
        .filter_map(|(i, (v, _))| tunnel_egress(&v.iface.status).map(|(up, e)| (i, up, e)))
        .collect();
    if !tunnels.is_empty() {
        w.family(
            "ovs_interface_tunnel_egress_carrier",
            "For a tunnel interface, 1 if the interface its packets leave by (egress_interface) has carrier, 0 if not.",
            MetricType::Gauge,
        );
        for (i, up, egress) in tunnels {
            let mut s = w
                .sample("ovs_interface_tunnel_egress_carrier")
                .labels_raw(arena.get(i));
            if let Some(e) = egress {
                s = s.label("egress_interface", e);
            }
            s.value_u64(u64::from(up));
        }
    }
}

/// A stateset: for each interface with a known state, one series per state.
fn stateset(
    w: &mut Writer,
    arena: &LabelArena,
    name: &str,
    help: &str,
    states: &[&str],
    values: impl Iterator<Item = (usize, Option<&'static str>)>,
) {
    let values: Vec<(usize, &str)> = values.filter_map(|(i, s)| s.map(|s| (i, s))).collect();
    if values.is_empty() {
        return;
    }
    w.family(name, help, MetricType::Gauge);
    for (i, current) in values {
        for s in states {
            w.sample(name)
                .labels_raw(arena.get(i))
                .label("state", s)
                .value_u64(u64::from(*s == current));
        }
    }
}

fn per_iface(
    w: &mut Writer,
    arena: &LabelArena,
    name: &str,
    help: &str,
    kind: MetricType,
    values: impl Iterator<Item = (usize, Option<f64>)>,
) {
    let values: Vec<(usize, f64)> = values.filter_map(|(i, v)| v.map(|v| (i, v))).collect();
    if values.is_empty() {
        return;
    }
    w.family(name, help, kind);
    for (i, v) in values {
        w.sample(name).labels_raw(arena.get(i)).value_f64(v);
    }
}
