//! `dataplane-collector probe`: what this kernel supports for the eBPF source, and what the
//! daemon will attach, with the reason for each answer. Every answer is found out (loading a
//! program, attaching to `lo` and detaching), not guessed from the kernel version.

use crate::sources::ebpf::engine::{self, AttachMode, Engine};
use aya::programs::ProgramType;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub what: &'static str,
    pub ok: bool,
    pub detail: String,
}

fn check(what: &'static str, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        what,
        ok,
        detail: detail.into(),
    }
}

fn program_type(t: ProgramType) -> (bool, String) {
    match aya::sys::is_program_supported(t) {
        Ok(true) => (true, "the kernel loads this program type".to_owned()),
        Ok(false) => (false, "the kernel refuses this program type".to_owned()),
        Err(e) => (
            false,
            format!("probe failed: {}", crate::registry::error_chain(&e)),
        ),
    }
}

/// Probes the kernel. Needs the same privileges as the daemon to give the daemon's answers.
pub fn probe(ovs_interfaces: Option<Vec<String>>) -> Vec<Check> {
    let mut out = Vec::new();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    out.push(check("kernel", true, release.trim().to_owned()));
    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    out.push(check(
        "BTF",
        btf,
        if btf {
            "/sys/kernel/btf/vmlinux: kprobe offsets can be read"
        } else {
            "no /sys/kernel/btf/vmlinux: the kprobes cannot find struct offsets"
        },
    ));
    let (ok, detail) = program_type(ProgramType::SchedClassifier);
    out.push(check("tc programs (sched_cls)", ok, detail));
    let (ok, detail) = program_type(ProgramType::KProbe);
    let pmu = Path::new("/sys/bus/event_source/devices/kprobe").exists();
    out.push(check(
        "kprobe",
        ok && pmu,
        if !ok {
            detail
        } else if pmu {
            "program type loads and the kprobe PMU is there".to_owned()
        } else {
            "program type loads, but the kernel has no kprobe PMU (CONFIG_KPROBE_EVENTS)".to_owned()
        },
    ));
    let (ok, detail) = program_type(ProgramType::Tracing);
    out.push(check("fentry (tracing)", ok, detail));
    let (ok, detail) = program_type(ProgramType::RawTracePoint);
    out.push(check("raw_tp / tp_btf", ok, detail));
    for (what, module) in [
        ("openvswitch module", "openvswitch"),
        ("ip_vs module", "ip_vs"),
    ] {
        let loaded = Path::new("/sys/module").join(module).exists();
        out.push(check(
            what,
            loaded,
            if loaded { "loaded" } else { "not loaded" },
        ));
    }

    // Load the real programs and try them on `lo`.
    let cfg = crate::sources::ebpf::Config {
        flows: true,
        noop: false,
        max_flows: 1024,
        max_ports: crate::sources::ebpf::DEFAULT_MAX_PORTS,
        max_ipvs_conns: crate::sources::ebpf::DEFAULT_MAX_IPVS_CONNS,
        max_flow_series: 0,
        drops: true,
        max_drop_entries: 1024,
        max_drop_series: 0,
        pin_path: None,
        idle_timeout: std::time::Duration::from_secs(30),
        rundir: "/nonexistent".into(),
    };
    let engine: Arc<Engine> = Engine::load(cfg);
    match engine.unavailable() {
        Some(reason) => out.push(check("load the daemon's programs", false, reason)),
        None => {
            out.push(check(
                "load the daemon's programs",
                true,
                "verifier accepted them",
            ));
            let mut want = std::collections::BTreeMap::new();
            if let Some(i) = engine::ifindex("lo") {
                want.insert("lo".to_owned(), i);
            }
            let errors = engine.reconcile(&want);
            let mode = engine.mode();
            out.push(check(
                "TCX",
                mode == Some(AttachMode::Tcx),
                match mode {
                    Some(AttachMode::Tcx) => {
                        "attached to lo with a TCX link (Linux 6.6+)".to_owned()
                    }
                    _ => "TCX links refused: clsact is used instead".to_owned(),
                },
            ));
            out.push(check(
                "clsact",
                mode.is_some() || errors.is_empty(),
                match mode {
                    Some(AttachMode::Clsact) => "attached to lo on a clsact qdisc".to_owned(),
                    Some(AttachMode::Tcx) => "not needed (TCX works)".to_owned(),
                    None => format!(
                        "attach failed: {}",
                        errors
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                },
            ));
            let drops = engine.drop_hook();
            out.push(check(
                "drops (kfree_skb)",
                drops.is_ok(),
                match &drops {
                    Ok(hook) => format!("counted from the {hook} tracepoint"),
                    Err(e) => e.clone(),
                },
            ));
            let kprobes = engine.kprobes();
            for hook in ["ovs_vport_receive", "ovs_dp_upcall", "ip_vs_conn_new"] {
                let on = kprobes.iter().any(|k| k == hook);
                out.push(check(
                    match hook {
                        "ovs_vport_receive" => "will attach kprobe ovs_vport_receive",
                        "ovs_dp_upcall" => "will attach kprobe ovs_dp_upcall",
                        _ => "will attach kprobe ip_vs_conn_new",
                    },
                    on,
                    if on {
                        "attached in this probe".to_owned()
                    } else {
                        "unavailable (module not loaded, no kprobes, or no BTF for it; see above)"
                            .to_owned()
                    },
                ));
            }
            engine.shutdown();
        }
    }
    match ovs_interfaces {
        Some(names) => out.push(check(
            "will attach TC programs to",
            !names.is_empty(),
            if names.is_empty() {
                "no OVS interfaces that are netdevs here".to_owned()
            } else {
                format!("{} OVS interfaces: {}", names.len(), names.join(", "))
            },
        )),
        None => out.push(check(
            "will attach TC programs to",
            false,
            "ovsdb-server not reachable: the list of OVS vports comes from it",
        )),
    }
    out
}

/// The report as text.
pub fn render(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.what.len()).max().unwrap_or(0);
    let mut s = String::new();
    for c in checks {
        let mark = if c.ok { "yes" } else { "no " };
        let _ = writeln!(s, "{:<width$}  {mark}  {}", c.what, c.detail);
    }
    s
}
