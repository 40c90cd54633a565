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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ovsdb::Replica;

    const CAPTURE: &str = include_str!("../../../tests/fixtures/ovsdb/health-updates.jsonl");

    /// The replica after the monitor reply and the first `updates` notifications of the
    /// capture (all of them for `None`).
    fn replica(updates: Option<usize>) -> Replica {
        let mut r = Replica::default();
        let mut lines = CAPTURE.lines().filter(|l| !l.trim().is_empty());
        let reply: serde_json::Value = serde_json::from_str(lines.next().unwrap_or("{}"))
            .unwrap_or_else(|e| panic!("monitor reply: {e}"));
        assert_eq!(r.apply_json(reply["result"].to_string().as_bytes()), Ok(()));
        for l in lines.take(updates.unwrap_or(usize::MAX)) {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            assert_eq!(v["method"], "update");
            assert_eq!(r.apply_json(v["params"][1].to_string().as_bytes()), Ok(()));
        }
        r
    }

    fn iface<'a>(r: &'a Replica, name: &str) -> &'a crate::ovsdb::Interface {
        r.interfaces
            .values()
            .find(|i| i.name == name)
            .unwrap_or_else(|| panic!("no interface {name}"))
    }

    #[test]
    fn bfd_from_the_capture() {
        let before = replica(Some(0));
        assert_eq!(
            bfd(&iface(&before, "va").bfd_status),
            Some(Bfd {
                state: Some("up"),
                remote_state: Some("up"),
                forwarding: Some(true),
                flaps: Some(5),
                diagnostic: Some("Control Detection Time Expired".to_owned()),
            })
        );
        // BFD off: no state at all.
        assert_eq!(bfd(&iface(&before, "gnv0").bfd_status), None);
        let after = replica(None);
        let va = bfd(&iface(&after, "va").bfd_status);
        assert_eq!(
            va.as_ref()
                .map(|b| (b.state, b.remote_state, b.forwarding, b.flaps)),
            Some((Some("down"), Some("down"), Some(false), Some(6)))
        );
        // vb had BFD turned off.
        assert_eq!(bfd(&iface(&after, "vb").bfd_status), None);
    }

    #[test]
    fn cfm_from_the_capture() {
        let before = replica(Some(0));
        let va = cfm(iface(&before, "va"));
        assert_eq!(
            va,
            Some(Cfm {
                fault: false,
                reasons: vec![],
                health_ratio: Some(0.95),
                flaps: Some(2),
                remote_up: Some(true),
            })
        );
        assert_eq!(cfm(iface(&before, "gnv0")), None);
        let after = replica(None);
        let va = cfm(iface(&after, "va"));
        assert_eq!(
            va,
            Some(Cfm {
                fault: true,
                reasons: vec!["recv"],
                health_ratio: Some(0.0),
                flaps: Some(3),
                remote_up: Some(true),
            })
        );
        // vb had CFM turned off.
        assert_eq!(cfm(iface(&after, "vb")), None);
    }

    #[test]
    fn tunnels_from_the_capture() {
        let before = replica(Some(0));
        assert_eq!(
            tunnel_egress(&iface(&before, "gnv0").status),
            Some((true, Some("lo")))
        );
        assert_eq!(
            tunnel_egress(&iface(&before, "gnv1").status),
            Some((true, Some("ea")))
        );
        // No route: no egress, no series. A system interface: only tunnel keys are kept.
        assert_eq!(tunnel_egress(&iface(&before, "vx0").status), None);
        assert!(iface(&before, "va").status.is_empty());
        let after = replica(None);
        assert_eq!(
            tunnel_egress(&iface(&after, "gnv1").status),
            Some((false, Some("ea")))
        );
    }

    #[test]
    fn config_from_the_capture() {
        let r = replica(None);
        let row = r.open_vswitch().expect("the Open_vSwitch row");
        assert_eq!(
            config(row),
            Config {
                hw_offload: Some(true),
                tc_policy: Some("skip_sw"),
                handler_threads: Some(2),
                revalidator_threads: None,
                flow_limit: Some(12345),
                // "bogus": not served.
                max_idle_ms: None,
            }
        );
        // Nothing set: OVS's defaults, no thread counts.
        assert_eq!(
            config(&OpenVswitch::default()),
            Config {
                hw_offload: Some(false),
                tc_policy: Some("none"),
                handler_threads: None,
                revalidator_threads: None,
                flow_limit: Some(200_000),
                max_idle_ms: Some(10_000),
            }
        );
    }

    #[test]
    fn malformed_settings_are_no_series() {
        let row = |pairs: &[(&str, &str)]| OpenVswitch {
            other_config: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        for bad in [
            "",
            " 1",
            "1 ",
            "+1",
            "-1",
            "0x10",
            "1e3",
            "1.5",
            "4294967296",
            "99999999999",
            "١٢",
            "12345678901234567890123",
        ] {
            let c = config(&row(&[
                ("flow-limit", bad),
                ("max-idle", bad),
                ("n-handler-threads", bad),
                ("n-revalidator-threads", bad),
                ("hw-offload", bad),
                ("tc-policy", bad),
            ]));
            assert_eq!(c, Config::default(), "{bad:?}");
        }
        let c = config(&row(&[
            ("flow-limit", "4294967295"),
            ("max-idle", "0"),
            ("n-handler-threads", "0"),
            ("n-revalidator-threads", "3"),
            ("hw-offload", "TRUE"),
            ("tc-policy", "skip_hw"),
        ]));
        assert_eq!(
            c,
            Config {
                hw_offload: Some(true),
                tc_policy: Some("skip_hw"),
                handler_threads: None,
                revalidator_threads: Some(3),
                flow_limit: Some(4_294_967_295),
                max_idle_ms: Some(0),
            }
        );
        // A tc-policy OVS does not know, in another case: not served.
        assert_eq!(config(&row(&[("tc-policy", "SKIP_SW")])).tc_policy, None);
    }

    #[test]
    fn malformed_interface_values_are_no_series() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let b = bfd(&map(&[
            ("state", "UP"),
            ("remote_state", "sideways"),
            ("forwarding", "yes"),
            ("flap_count", "-1"),
        ]));
        assert_eq!(b, Some(Bfd::default()));
        let b = bfd(&map(&[("flap_count", "99999999999999999999999")]));
        assert_eq!(b.and_then(|b| b.flaps), None);
        let b = bfd(&map(&[("flap_count", "18446744073709551615")]));
        assert_eq!(b.and_then(|b| b.flaps), Some(u64::MAX));
        let i = crate::ovsdb::Interface {
            name: "x".into(),
            cfm_fault: Some(true),
            cfm_fault_status: vec!["recv".into(), "cosmic-rays".into()],
            cfm_health: Some(101),
            cfm_flap_count: Some(-4),
            cfm_remote_opstate: Some("maybe".into()),
            ..Default::default()
        };
        assert_eq!(
            cfm(&i),
            Some(Cfm {
                fault: true,
                reasons: vec!["recv"],
                ..Default::default()
            })
        );
        assert_eq!(
            tunnel_egress(&map(&[
                ("tunnel_egress_iface", "eth0"),
                ("tunnel_egress_iface_carrier", "sort of")
            ])),
            None
        );
        assert_eq!(
            tunnel_egress(&map(&[("tunnel_egress_iface_carrier", "down")])),
            Some((false, None))
        );
    }

    /// The series a scrape serves from the capture, before and after.
    #[test]
    fn encodes_the_capture() {
        let render = |r: &Replica| -> String {
            let views = r.interfaces();
            let ifaces: Vec<(InterfaceView<'_>, Attribution)> = views
                .into_iter()
                .map(|v| (v, Attribution::default()))
                .collect();
            let arena = super::super::encode::labels(&ifaces);
            let mut w = Writer::new();
            encode_config(&mut w, r.open_vswitch());
            encode_interfaces(&mut w, &ifaces, &arena);
            w.into_string()
        };
        let before = render(&replica(Some(0)));
        let after = render(&replica(None));
        let has = |text: &str, line: &str| text.lines().any(|l| l == line);
        for line in [
            "ovs_config_hw_offload 1",
            "ovs_config_flow_limit 12345",
            "ovs_config_handler_threads 2",
            "ovs_config_tc_policy_info{policy=\"skip_sw\"} 1",
            "ovs_interface_bfd_state{bridge=\"bra\",port=\"va\",interface=\"va\",state=\"up\"} 1",
            "ovs_interface_bfd_state{bridge=\"bra\",port=\"va\",interface=\"va\",state=\"down\"} 0",
            "ovs_interface_bfd_forwarding{bridge=\"bra\",port=\"va\",interface=\"va\"} 1",
            "ovs_interface_bfd_flaps_total{bridge=\"bra\",port=\"va\",interface=\"va\"} 5",
            "ovs_interface_cfm_health_ratio{bridge=\"bra\",port=\"va\",interface=\"va\"} 0.95",
            "ovs_interface_cfm_fault{bridge=\"bra\",port=\"va\",interface=\"va\"} 0",
            "ovs_interface_tunnel_egress_carrier{bridge=\"bra\",port=\"gnv1\",interface=\"gnv1\",egress_interface=\"ea\"} 1",
            "ovs_interface_tunnel_egress_carrier{bridge=\"bra\",port=\"gnv0\",interface=\"gnv0\",egress_interface=\"lo\"} 1",
        ] {
            assert!(has(&before, line), "{line} not in\n{before}");
        }
        for line in [
            "ovs_interface_bfd_state{bridge=\"bra\",port=\"va\",interface=\"va\",state=\"down\"} 1",
            "ovs_interface_bfd_state{bridge=\"bra\",port=\"va\",interface=\"va\",state=\"up\"} 0",
            "ovs_interface_bfd_flaps_total{bridge=\"bra\",port=\"va\",interface=\"va\"} 6",
            "ovs_interface_cfm_fault{bridge=\"bra\",port=\"va\",interface=\"va\"} 1",
            "ovs_interface_cfm_fault_status{bridge=\"bra\",port=\"va\",interface=\"va\",reason=\"recv\"} 1",
            "ovs_interface_cfm_fault_status{bridge=\"bra\",port=\"va\",interface=\"va\",reason=\"rdi\"} 0",
            "ovs_interface_cfm_health_ratio{bridge=\"bra\",port=\"va\",interface=\"va\"} 0",
            "ovs_interface_cfm_flaps_total{bridge=\"bra\",port=\"va\",interface=\"va\"} 3",
            "ovs_interface_tunnel_egress_carrier{bridge=\"bra\",port=\"gnv1\",interface=\"gnv1\",egress_interface=\"ea\"} 0",
        ] {
            assert!(has(&after, line), "{line} not in\n{after}");
        }
        // Malformed max-idle: no series; features off: no series for those interfaces.
        for text in [&before, &after] {
            assert!(!text.contains("ovs_config_max_idle_seconds"), "{text}");
            assert!(!text.contains("ovs_config_revalidator_threads"), "{text}");
            assert!(!text.contains("interface=\"vx0\""), "{text}");
            assert!(!text.contains("interface=\"bra\""), "{text}");
        }
        assert!(!after.contains("interface=\"vb\""), "{after}");
        // No Open_vSwitch row: no config series.
        assert!(!render(&Replica::default()).contains("ovs_config_"));
    }

    /// A malformed value is logged at debug level (key and value, the value cut short).
    #[test]
    fn malformed_values_are_logged() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                if let Ok(mut v) = self.0.lock() {
                    v.extend_from_slice(b);
                }
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let long = format!("bogus{}", "x".repeat(500));
        let row = OpenVswitch {
            other_config: [("max-idle".to_owned(), long)].into_iter().collect(),
        };
        let c = tracing::subscriber::with_default(subscriber, || config(&row));
        assert_eq!(c.max_idle_ms, None);
        let text = buf
            .0
            .lock()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default();
        assert!(text.contains("DEBUG"), "{text}");
        assert!(text.contains("max-idle"), "{text}");
        assert!(text.contains("bogus"), "{text}");
        assert!(!text.contains(&"x".repeat(LOG_VALUE_CHARS)), "{text}");
    }
}
