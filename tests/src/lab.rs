//! What the kernel lab's host side (`cargo xtask lab`, which builds and boots the guest) and
//! its guest side (`lab-guest`, the guest's `/init` and the scenarios' checks) share: the
//! scenarios, where the guest finds things, and the module plan the host resolves and the
//! guest loads. One table, so the two cannot disagree on a scenario's name.

use anyhow::{Result, bail};

/// A scenario: the modules it loads (the host resolves their dependencies with
/// `modprobe --show-depends`) and what it is for. What it runs is the guest's
/// (`lab-guest/init.rs`, `steps`).
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    pub modules: &'static [&'static str],
    /// Part of a plain `cargo xtask lab` (and `cargo xtask test`); benchmarks are not.
    pub default: bool,
}

/// In the order they run: `datapath-absent` needs a kernel where `openvswitch` is not loaded
/// (and leaves it loaded); `ebpf-kernel` and `ipvs-absent` need a kernel where `ip_vs` is not
/// loaded (`ebpf-kernel` loads it and unloads it again; `ipvs-absent` leaves it loaded).
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "datapath-absent",
        about: "no openvswitch module: the datapath source is unavailable, quietly, and loads nothing",
        // First: every later scenario has openvswitch loaded. The module's files are in the
        // image for them; the scenario's lookup by name makes the kernel load it.
        modules: &["veth"],
        default: true,
    },
    Scenario {
        name: "ebpf-kernel",
        about: "the eBPF kprobes (OVS kernel datapath, IPVS loaded after the daemon) count what the kernel counts",
        // Not ip_vs: the guest loads it (modprobe) once the daemon runs, to prove the late
        // attach, and unloads it at the end; its files are in the image for `ipvs`.
        // clsact lives in sch_ingress; TC programs need cls_bpf.
        modules: &["openvswitch", "veth", "dummy", "sch_ingress", "cls_bpf"],
        default: true,
    },
    Scenario {
        name: "ipvs-absent",
        about: "no ip_vs module: the IPVS source is unavailable, quietly, and loads nothing",
        modules: &["veth"],
        default: true,
    },
    Scenario {
        name: "ipvs",
        about: "IPVS services in two namespaces with real connections: every counter equals ipvsadm's",
        modules: &[
            "ip_vs",
            "ip_vs_rr",
            "ip_vs_wrr",
            "ip_vs_sh",
            "veth",
            "dummy",
        ],
        default: true,
    },
    Scenario {
        name: "ovs-kernel",
        about: "the foundation's OpenFlow tests on the OVS kernel datapath, and its kernel flows",
        modules: &["openvswitch", "veth", "nf_conntrack_netlink"],
        default: true,
    },
    Scenario {
        name: "datapath",
        about: "the OVS kernel datapath over generic netlink: every figure equals ovs-dpctl show -s, a conntrack zone limit with its live count",
        modules: &["openvswitch", "veth", "nf_conntrack_netlink"],
        default: true,
    },
    Scenario {
        name: "sriov",
        about: "the SR-IOV source's RTM_GETLINK dump with the VF mask on every link, a real PCI NIC (e1000) included",
        modules: &["e1000", "veth", "dummy", "bridge"],
        default: true,
    },
    Scenario {
        name: "bench-ipvs",
        about: "1,000 IPVS services x 4 destinations: scrape versus /proc/net/ip_vs (cargo xtask bench --only lab)",
        modules: &["ip_vs", "ip_vs_rr", "dummy"],
        default: false,
    },
];

/// Where the lab puts the project's binaries in the guest.
pub const LIBEXEC: &str = "/usr/libexec/dpc";

/// The module plan in the guest.
pub const PLAN_PATH: &str = "/etc/dpc-lab/modules.tsv";

/// The kernel command line's parameter that lists the scenarios to run, comma-separated.
pub const CMDLINE_SCENARIOS: &str = "dpc.scenarios=";

/// Lines of the guest's console the host reads: `DPC-LAB: PASS|FAIL <scenario> <seconds>`,
/// `DPC-LAB: BOOTED ...`, `DPC-LAB: END ...`.
pub const CONSOLE_PREFIX: &str = "DPC-LAB: ";

/// One module a scenario loads, in order, with the file (relative to the kernel's module
/// directory) and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleLoad {
    pub scenario: String,
    pub name: String,
    pub file: String,
    pub params: String,
}

/// The plan as the guest reads it: one tab-separated line per module.
pub fn write_plan(loads: &[ModuleLoad]) -> String {
    loads
        .iter()
        .map(|m| format!("{}\t{}\t{}\t{}\n", m.scenario, m.name, m.file, m.params))
        .collect()
}

/// Reads [`write_plan`]'s text.
pub fn read_plan(text: &str) -> Result<Vec<ModuleLoad>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
        let f: Vec<&str> = line.splitn(4, '\t').collect();
        let [scenario, name, file, params] = f.as_slice() else {
            bail!("{PLAN_PATH} line {}: {line:?}", i + 1);
        };
        out.push(ModuleLoad {
            scenario: (*scenario).to_owned(),
            name: (*name).to_owned(),
            file: (*file).to_owned(),
            params: (*params).to_owned(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_round_trips_and_refuses_short_lines() {
        let loads = vec![
            ModuleLoad {
                scenario: "ipvs".into(),
                name: "ip_vs".into(),
                file: "kernel/net/netfilter/ipvs/ip_vs.ko".into(),
                params: String::new(),
            },
            ModuleLoad {
                scenario: "ovs-kernel".into(),
                name: "nf_conntrack".into(),
                file: "kernel/net/netfilter/nf_conntrack.ko.xz".into(),
                params: "hashsize=4096 expect_hashsize=64".into(),
            },
        ];
        assert_eq!(read_plan(&write_plan(&loads)).ok(), Some(loads));
        assert!(read_plan("ipvs\tip_vs\n").is_err());
    }

    #[test]
    fn scenario_names_are_unique() {
        let mut names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SCENARIOS.len());
    }
}
