//! SR-IOV: virtual-function counters (`vfstats`), which pod holds which VF (`kubepoddevice`),
//! and which CPUs a Guaranteed pod owns (`kubepodcpu`).
//!
//! (Interface stub: the implementation lands with the SR-IOV issue.)

use crate::exposition::Writer;
use crate::registry::{ScrapeRequest, Source, SourceError};
use std::path::PathBuf;

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
}

impl SourceError for SriovError {
    fn is_unavailable(&self) -> bool {
        matches!(self, SriovError::Unavailable { .. })
    }
}

macro_rules! stub_source {
    ($ty:ident, $name:literal) => {
        pub struct $ty {
            #[allow(dead_code)]
            cfg: Config,
        }

        impl $ty {
            pub fn new(cfg: Config) -> Self {
                $ty { cfg }
            }
        }

        impl Source for $ty {
            type Snapshot = ();
            type Error = SriovError;

            fn name(&self) -> &'static str {
                $name
            }

            async fn fetch(&self, _req: &ScrapeRequest) -> Result<(), SriovError> {
                Err(SriovError::Unavailable {
                    reason: "not implemented yet".to_owned(),
                })
            }

            fn encode(&self, _snapshot: &(), _w: &mut Writer) {}
        }
    };
}

stub_source!(VfStatsSource, "vfstats");
stub_source!(KubePodDeviceSource, "kubepoddevice");
stub_source!(KubePodCpuSource, "kubepodcpu");
