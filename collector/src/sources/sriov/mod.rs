//! SR-IOV: virtual-function counters (`vfstats`), which pod holds which VF (`kubepoddevice`),
//! and which CPUs a Guaranteed pod owns (`kubepodcpu`). The SR-IOV Network Metrics Exporter's
//! three collectors, with its flags and defaults; `docs/sriov.md` has the names and the files.
//!
//! - `vfstats`: PFs and VFs from sysfs ([`sysfs`]), counters from one rtnetlink link dump with
//!   the VF mask ([`netlink`]); a PF whose driver gives no `IFLA_VF_STATS`, or every PF with
//!   `--collector.netlink=false`, is read from the i40e sysfs layout.
//! - `kubepoddevice`: the kubelet pod-resources API v1 over its unix socket ([`podresources`]).
//! - `kubepodcpu`: the CPU manager checkpoint and the pods' cpusets, cgroup v1 or v2 ([`cpu`]).
//!
//! Everything is read at scrape time and nothing is kept: a VF that is gone, or a pod that
//! ended, has no series. A node without SR-IOV devices, without a kubelet socket, or without
//! the kubepods cgroup is "unavailable" (`dataplane_collector_source_available 0`), not an
//! error.

pub mod cpu;
pub mod encode;
pub mod flags;
pub mod netlink;
pub mod podresources;
pub mod sysfs;
pub mod tree;

use crate::exposition::Writer;
use crate::registry::{ScrapeRequest, Source, SourceError, Status};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use sysfs::{Pf, Vf, VfCounters};

/// Settings of the three sources, from the command line (the SR-IOV exporter's flags).
#[derive(Debug, Clone)]
pub struct Config {
    pub sysclassnet: PathBuf,
    pub sysbuspci: PathBuf,
    /// Read VF counters over netlink (else the i40e sysfs layout).
    pub netlink: bool,
    pub kubelet_socket: PathBuf,
    pub cpu_checkpoint: PathBuf,
    pub kube_cgroup: PathBuf,
    pub node_cpu_info: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum SriovError {
    #[error("not available: {reason}")]
    Unavailable { reason: String },
    #[error("cannot read the PCI devices")]
    Sysfs {
        #[source]
        source: sysfs::SysfsError,
    },
    #[error("cannot read the kubelet pod-resources API at {socket}")]
    PodResources {
        socket: PathBuf,
        #[source]
        source: podresources::PodResourcesError,
    },
    #[error("cannot read the pods' CPUs")]
    Cpu {
        #[source]
        source: cpu::CpuError,
    },
    #[error("the {what} reader task failed: {reason}")]
    Task { what: &'static str, reason: String },
}

impl SourceError for SriovError {
    fn is_unavailable(&self) -> bool {
        match self {
            SriovError::Unavailable { .. } => true,
            SriovError::Sysfs { source } => matches!(source, sysfs::SysfsError::NoPciBus { .. }),
            SriovError::PodResources { source, .. } => source.is_unavailable(),
            SriovError::Cpu { source } => source.is_unavailable(),
            SriovError::Task { .. } => false,
        }
    }
}

/// Where a PF's VF counters came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsOrigin {
    Netlink,
    Sysfs,
    /// Neither gave any: the PF has no VFs, or its driver reports no per-VF counters.
    None,
}

/// A PF and its VFs' counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PfStats {
    pub pf: Pf,
    pub origin: StatsOrigin,
    /// VFs with counters, by VF number.
    pub vfs: Vec<(Vf, VfCounters)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VfStatsSnapshot {
    pub pfs: Vec<PfStats>,
    /// What went wrong without stopping the read (a malformed link message, netlink down).
    pub problems: Vec<String>,
}

/// Joins the PFs found in sysfs with the netlink dump (`None`: netlink off), falling back to
/// the i40e sysfs counters per PF.
pub fn assemble(
    pfs: Vec<Pf>,
    links: Option<&[netlink::LinkResult]>,
    sysclassnet: &Path,
) -> VfStatsSnapshot {
    let mut problems = Vec::new();
    let mut by_name: HashMap<&str, &netlink::Link> = HashMap::new();
    let mut bad_index: HashMap<i32, &netlink::VfParseError> = HashMap::new();
    for l in links.unwrap_or_default() {
        match l {
            Ok(link) => {
                by_name.insert(link.name.as_str(), link);
            }
            Err((index, e)) => {
                bad_index.insert(*index, e);
            }
        }
    }
    let mut out = Vec::with_capacity(pfs.len());
    for pf in pfs {
        let mut vfs = Vec::new();
        let mut origin = StatsOrigin::None;
        if links.is_some() && !pf.name.is_empty() {
            if let Some(link) = by_name.get(pf.name.as_str()) {
                let counters: HashMap<u32, VfCounters> = link
                    .vfs
                    .iter()
                    .filter_map(|v| v.stats.map(|s| (v.id, s)))
                    .collect();
                if !counters.is_empty() {
                    origin = StatsOrigin::Netlink;
                    vfs = pf
                        .vfs
                        .iter()
                        .filter_map(|vf| counters.get(&vf.id).map(|c| (vf.clone(), *c)))
                        .collect();
                }
            } else if let Some(e) =
                read_ifindex(sysclassnet, &pf.name).and_then(|i| bad_index.get(&i).map(|e| (i, e)))
            {
                problems.push(format!(
                    "{} (ifindex {}): {}",
                    pf.name,
                    e.0,
                    crate::registry::error_chain(e.1)
                ));
            }
        }
        if origin == StatsOrigin::None {
            vfs = pf
                .vfs
                .iter()
                .filter_map(|vf| {
                    sysfs::read_sysfs_stats(sysclassnet, &pf.name, vf.id)
                        .filter(|c| !c.is_empty())
                        .map(|c| (vf.clone(), c))
                })
                .collect();
            if !vfs.is_empty() {
                origin = StatsOrigin::Sysfs;
            }
        }
        out.push(PfStats { pf, origin, vfs });
    }
    VfStatsSnapshot { pfs: out, problems }
}

fn read_ifindex(sysclassnet: &Path, name: &str) -> Option<i32> {
    std::fs::read_to_string(sysclassnet.join(name).join("ifindex"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Reads everything `vfstats` shows (blocking: sysfs and a netlink socket).
pub fn read_vfstats(cfg: &Config, timeout: Duration) -> Result<VfStatsSnapshot, SriovError> {
    let pfs = sysfs::discover(&cfg.sysbuspci).map_err(|source| SriovError::Sysfs { source })?;
    if pfs.is_empty() {
        return Err(SriovError::Unavailable {
            reason: format!(
                "no SR-IOV capable network device under {}",
                cfg.sysbuspci.display()
            ),
        });
    }
    let mut netlink_problem = None;
    let links = if cfg.netlink {
        match netlink::dump_links(timeout) {
            Ok(l) => Some(l),
            Err(e) => {
                netlink_problem = Some(format!(
                    "netlink: {} (falling back to sysfs)",
                    crate::registry::error_chain(&e)
                ));
                None
            }
        }
    } else {
        None
    };
    let mut snap = assemble(pfs, links.as_deref(), &cfg.sysclassnet);
    snap.problems.extend(netlink_problem);
    Ok(snap)
}

fn budget(req: &ScrapeRequest) -> Duration {
    req.deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .max(Duration::from_millis(100))
}

fn problems_status(problems: &[String]) -> Status {
    if problems.is_empty() {
        Status::Ok
    } else {
        Status::Failed(problems.join("; "))
    }
}

/// `vfstats`: per-VF counters.
pub struct VfStatsSource {
    cfg: Config,
}

impl VfStatsSource {
    pub fn new(cfg: Config) -> Self {
        VfStatsSource { cfg }
    }
}

impl Source for VfStatsSource {
    type Snapshot = VfStatsSnapshot;
    type Error = SriovError;

    fn name(&self) -> &'static str {
        "vfstats"
    }

    async fn fetch(&self, req: &ScrapeRequest) -> Result<VfStatsSnapshot, SriovError> {
        let cfg = self.cfg.clone();
        let timeout = budget(req);
        tokio::task::spawn_blocking(move || read_vfstats(&cfg, timeout))
            .await
            .unwrap_or_else(|e| {
                Err(SriovError::Task {
                    what: "vfstats",
                    reason: e.to_string(),
                })
            })
    }

    fn encode(&self, snapshot: &VfStatsSnapshot, w: &mut Writer) {
        encode::encode_vfstats(snapshot, w);
    }

    fn status(&self, snapshot: &VfStatsSnapshot) -> Status {
        problems_status(&snapshot.problems)
    }
}

/// `kubepoddevice`: which pod's container holds which PCI device.
pub struct KubePodDeviceSource {
    cfg: Config,
}

impl KubePodDeviceSource {
    pub fn new(cfg: Config) -> Self {
        KubePodDeviceSource { cfg }
    }
}

impl Source for KubePodDeviceSource {
    type Snapshot = podresources::DeviceSnapshot;
    type Error = SriovError;

    fn name(&self) -> &'static str {
        "kubepoddevice"
    }

    async fn fetch(&self, req: &ScrapeRequest) -> Result<podresources::DeviceSnapshot, SriovError> {
        podresources::read(&self.cfg.kubelet_socket, budget(req))
            .await
            .map_err(|source| SriovError::PodResources {
                socket: self.cfg.kubelet_socket.clone(),
                source,
            })
    }

    fn encode(&self, snapshot: &podresources::DeviceSnapshot, w: &mut Writer) {
        encode::encode_devices(snapshot, w);
    }
}

/// `kubepodcpu`: the CPUs of Guaranteed pods.
pub struct KubePodCpuSource {
    cfg: Config,
}

impl KubePodCpuSource {
    pub fn new(cfg: Config) -> Self {
        KubePodCpuSource { cfg }
    }
}

impl Source for KubePodCpuSource {
    type Snapshot = cpu::CpuSnapshot;
    type Error = SriovError;

    fn name(&self) -> &'static str {
        "kubepodcpu"
    }

    async fn fetch(&self, _req: &ScrapeRequest) -> Result<cpu::CpuSnapshot, SriovError> {
        let cfg = self.cfg.clone();
        tokio::task::spawn_blocking(move || {
            cpu::read(&cfg.node_cpu_info, &cfg.kube_cgroup, &cfg.cpu_checkpoint)
        })
        .await
        .unwrap_or_else(|e| {
            Err(cpu::CpuError::Task {
                reason: e.to_string(),
            })
        })
        .map_err(|source| SriovError::Cpu { source })
    }

    fn encode(&self, snapshot: &cpu::CpuSnapshot, w: &mut Writer) {
        encode::encode_cpus(snapshot, w);
    }

    fn status(&self, snapshot: &cpu::CpuSnapshot) -> Status {
        problems_status(&snapshot.problems)
    }
}
