//! The three SR-IOV sources' flags and descriptors. Each flag belongs to the one source that
//! reads it: `--collector.vfstats.*`, `--collector.kubepoddevice.*`,
//! `--collector.kubepodcpu.*`, with the SR-IOV exporter's spellings (`--path.*`,
//! `--collector.netlink`) as aliases.

use super::{Config, KubePodCpuSource, KubePodDeviceSource, VfStatsSource};
use crate::sources::build::{self, BuildError, Context, Descriptor};
use clap::{ArgAction, Args};
use std::path::PathBuf;
use std::sync::Arc;

const SYSCLASSNET: &str = "/sys/class/net/";
const SYSBUSPCI: &str = "/sys/bus/pci/devices";
const KUBELET_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";
const CPU_CHECKPOINT: &str = "/var/lib/kubelet/cpu_manager_state";
const KUBE_CGROUP: &str = "/sys/fs/cgroup/cpuset/kubepods/";
const NODE_CPU_INFO: &str = "/sys/devices/system/node/";

/// The SR-IOV exporter's defaults; each source sets the fields its flags give.
impl Default for Config {
    fn default() -> Self {
        Config {
            sysclassnet: SYSCLASSNET.into(),
            sysbuspci: SYSBUSPCI.into(),
            netlink: true,
            kubelet_socket: KUBELET_SOCKET.into(),
            cpu_checkpoint: CPU_CHECKPOINT.into(),
            kube_cgroup: KUBE_CGROUP.into(),
            node_cpu_info: NODE_CPU_INFO.into(),
        }
    }
}

/// `--collector.vfstats.*`.
#[derive(Debug, Clone, Args)]
pub struct VfStatsArgs {
    /// Read VF counters over netlink; `--collector.netlink=false` reads the i40e sysfs
    /// counters instead (the SR-IOV exporter's flag).
    #[arg(id = "collector.vfstats.netlink", long = "collector.vfstats.netlink",
          visible_alias = "collector.netlink", value_name = "BOOL", default_value_t = true,
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          action = ArgAction::Set, value_parser = clap::value_parser!(bool))]
    pub netlink: bool,

    /// PCI devices on the host.
    #[arg(
        id = "collector.vfstats.sysbuspci",
        long = "collector.vfstats.sysbuspci",
        visible_alias = "path.sysbuspci",
        value_name = "DIR",
        default_value = SYSBUSPCI
    )]
    pub sysbuspci: PathBuf,

    /// Network interfaces on the host.
    #[arg(
        id = "collector.vfstats.sysclassnet",
        long = "collector.vfstats.sysclassnet",
        visible_alias = "path.sysclassnet",
        value_name = "DIR",
        default_value = SYSCLASSNET
    )]
    pub sysclassnet: PathBuf,
}

/// `--collector.kubepoddevice.*`.
#[derive(Debug, Clone, Args)]
pub struct KubePodDeviceArgs {
    /// Kubelet pod-resources socket.
    #[arg(
        id = "collector.kubepoddevice.kubelet-socket",
        long = "collector.kubepoddevice.kubelet-socket",
        visible_alias = "path.kubeletSocket",
        value_name = "FILE",
        default_value = KUBELET_SOCKET
    )]
    pub kubelet_socket: PathBuf,
}

/// `--collector.kubepodcpu.*`.
#[derive(Debug, Clone, Args)]
pub struct KubePodCpuArgs {
    /// Kubelet CPU manager checkpoint.
    #[arg(
        id = "collector.kubepodcpu.cpucheckpoint",
        long = "collector.kubepodcpu.cpucheckpoint",
        visible_alias = "path.cpucheckpoint",
        value_name = "FILE",
        default_value = CPU_CHECKPOINT
    )]
    pub cpu_checkpoint: PathBuf,

    /// Kubernetes cgroups on the host (cgroup v1 cpuset hierarchy, or the v2 root's kubepods).
    #[arg(
        id = "collector.kubepodcpu.kubecgroup",
        long = "collector.kubepodcpu.kubecgroup",
        visible_alias = "path.kubecgroup",
        value_name = "DIR",
        default_value = KUBE_CGROUP
    )]
    pub kube_cgroup: PathBuf,

    /// System CPU and NUMA information.
    #[arg(
        id = "collector.kubepodcpu.nodecpuinfo",
        long = "collector.kubepodcpu.nodecpuinfo",
        visible_alias = "path.nodecpuinfo",
        value_name = "DIR",
        default_value = NODE_CPU_INFO
    )]
    pub node_cpu_info: PathBuf,
}

fn build_vfstats(m: &clap::ArgMatches, ctx: &mut Context<'_>) -> Result<(), BuildError> {
    let a: VfStatsArgs = build::args("vfstats", m)?;
    ctx.add(Arc::new(VfStatsSource::new(Config {
        sysclassnet: a.sysclassnet,
        sysbuspci: a.sysbuspci,
        netlink: a.netlink,
        ..Config::default()
    })));
    Ok(())
}

fn build_kubepoddevice(m: &clap::ArgMatches, ctx: &mut Context<'_>) -> Result<(), BuildError> {
    let a: KubePodDeviceArgs = build::args("kubepoddevice", m)?;
    ctx.add(Arc::new(KubePodDeviceSource::new(Config {
        kubelet_socket: a.kubelet_socket,
        ..Config::default()
    })));
    Ok(())
}

fn build_kubepodcpu(m: &clap::ArgMatches, ctx: &mut Context<'_>) -> Result<(), BuildError> {
    let a: KubePodCpuArgs = build::args("kubepodcpu", m)?;
    ctx.add(Arc::new(KubePodCpuSource::new(Config {
        cpu_checkpoint: a.cpu_checkpoint,
        kube_cgroup: a.kube_cgroup,
        node_cpu_info: a.node_cpu_info,
        ..Config::default()
    })));
    Ok(())
}

pub const VFSTATS: Descriptor = Descriptor {
    name: "vfstats",
    help: "SR-IOV virtual function counters (netlink, or i40e sysfs)",
    default_enabled: true,
    routes: crate::registry::Routes::NONE,
    flags: <VfStatsArgs as Args>::augment_args,
    build: build_vfstats,
};

pub const KUBEPODDEVICE: Descriptor = Descriptor {
    name: "kubepoddevice",
    help: "which pod holds which VF (kubelet pod-resources API)",
    default_enabled: false,
    routes: crate::registry::Routes::NONE,
    flags: <KubePodDeviceArgs as Args>::augment_args,
    build: build_kubepoddevice,
};

pub const KUBEPODCPU: Descriptor = Descriptor {
    name: "kubepodcpu",
    help: "which CPUs a Guaranteed pod owns (CPU manager checkpoint and cpusets)",
    default_enabled: false,
    routes: crate::registry::Routes::NONE,
    flags: <KubePodCpuArgs as Args>::augment_args,
    build: build_kubepodcpu,
};
