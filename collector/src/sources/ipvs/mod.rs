//! The `ipvs` source: IPVS virtual services and their real servers, over generic netlink
//! (family "IPVS"), in the host's network namespace and in each `--ipvs.netns`.
//!
//! (Interface stub: the implementation lands with the IPVS issue.)

use crate::exposition::Writer;
use crate::registry::{ScrapeRequest, Source, SourceError};
use std::path::PathBuf;

/// Settings of the source, from the command line.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Network namespaces to read (`--ipvs.netns`); empty means the daemon's own.
    pub netns: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum IpvsError {
    #[error("IPVS is not available: {reason}")]
    Unavailable { reason: String },
}

impl SourceError for IpvsError {
    fn is_unavailable(&self) -> bool {
        matches!(self, IpvsError::Unavailable { .. })
    }
}

#[derive(Debug, Default)]
pub struct Snapshot;

pub struct IpvsSource {
    #[allow(dead_code)]
    cfg: Config,
}

impl IpvsSource {
    pub fn new(cfg: Config) -> Self {
        IpvsSource { cfg }
    }
}

impl Source for IpvsSource {
    type Snapshot = Snapshot;
    type Error = IpvsError;

    fn name(&self) -> &'static str {
        "ipvs"
    }

    async fn fetch(&self, _req: &ScrapeRequest) -> Result<Snapshot, IpvsError> {
        Err(IpvsError::Unavailable {
            reason: "not implemented yet".to_owned(),
        })
    }

    fn encode(&self, _snapshot: &Snapshot, _w: &mut Writer) {}
}
