//! The `openflow` source: port, flow, table and group statistics of every Open vSwitch bridge,
//! read over OpenFlow 1.3 from the bridge's management socket (`<rundir>/<bridge>.mgmt`) or
//! from a remote switch given as `?target=`.

pub mod encode;
pub mod fetch;
pub mod flags;
pub mod request;
pub mod target;

use crate::openflow::message::{GroupDesc, GroupStats, PortDesc, PortStats, TableStats};
use crate::openflow::{ClientError, Endpoint, FlowTable};
use crate::registry::{
    Incoming, RequestError, RequestParams, ScrapeRequest, Source, SourceError, Status,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Default port for a bare `?target=HOST`: the one the seed exporter (LeanNet ovs-exporter)
/// connects to, so its Prometheus configs keep working.
pub const DEFAULT_TARGET_PORT: u16 = 16633;

/// Settings of the source, from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where `ovs-vswitchd` puts `<bridge>.mgmt` sockets.
    pub rundir: PathBuf,
    /// Add an `actions` label to flow series.
    pub flow_actions: bool,
    /// Flows per bridge with series of their own; the rest are folded per (table, cookie).
    /// 0 means no limit.
    pub max_flow_series: usize,
    /// Flows read per bridge at most (`--ovs.max-flows`); a switch with more fails the scrape
    /// of that bridge.
    pub max_flows: usize,
    /// Bytes of OpenFlow replies read per bridge and scrape at most (`--ovs.max-reply-bytes`).
    pub max_reply_bytes: usize,
    /// The OVSDB monitor, when running: the bridge list and the pods behind ports.
    pub ovsdb: Option<Arc<crate::ovsdb::Handle>>,
    pub attributor: Arc<crate::sources::ovsdb::attribution::Attributor>,
}

/// Why the source could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum OpenFlowError {
    #[error("no Open vSwitch bridges: no *.mgmt sockets in {}", rundir.display())]
    NoBridges { rundir: PathBuf },
    #[error("no Open vSwitch run directory at {}", rundir.display())]
    NoRundir { rundir: PathBuf },
    #[error("cannot list {}: {source}", rundir.display())]
    Rundir {
        rundir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SourceError for OpenFlowError {
    fn is_unavailable(&self) -> bool {
        matches!(
            self,
            OpenFlowError::NoBridges { .. } | OpenFlowError::NoRundir { .. }
        )
    }
}

/// A port: its description (name) joined with its counters.
#[derive(Debug, Clone)]
pub struct Port {
    pub name: String,
    pub stats: PortStats,
}

/// A group: its description (type, buckets) joined with its counters.
#[derive(Debug, Clone)]
pub struct Group {
    pub desc: Option<GroupDesc>,
    pub stats: GroupStats,
}

/// Flows past `--ovs.max-flow-series`, summed per (table, cookie).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FoldedFlows {
    pub table_id: u8,
    pub cookie: u64,
    pub flows: u64,
    pub packets: u64,
    pub bytes: u64,
}

/// What one bridge answered.
#[derive(Debug, Default)]
pub struct BridgeData {
    /// The bridge's own name, from its LOCAL port (remote targets).
    pub local_name: Option<String>,
    pub ports: Vec<Port>,
    pub port_descs: Vec<PortDesc>,
    pub flows: FlowTable,
    pub folded: Vec<FoldedFlows>,
    pub folded_count: u64,
    pub tables: Vec<TableStats>,
    pub groups: Vec<Group>,
    /// Pods behind ports, by port (interface) name, from OVSDB.
    pub pods: HashMap<String, crate::sources::ovsdb::attribution::PodRef>,
    /// Whether each slice was read (so an empty list means "none", not "not asked").
    pub read_ports: bool,
    pub read_flows: bool,
    pub read_tables: bool,
    pub read_groups: bool,
}

/// One bridge's result.
#[derive(Debug)]
pub struct BridgeResult {
    pub bridge: String,
    pub endpoint: Endpoint,
    pub outcome: Result<BridgeData, ClientError>,
}

/// Everything the source read in one scrape.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub bridges: Vec<BridgeResult>,
}

pub struct OpenFlowSource {
    cfg: Config,
    targets: request::TargetPolicy,
}

impl OpenFlowSource {
    pub fn new(cfg: Config, targets: request::TargetPolicy) -> Self {
        OpenFlowSource { cfg, targets }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }
}

impl Source for OpenFlowSource {
    type Snapshot = Snapshot;
    type Error = OpenFlowError;

    fn name(&self) -> &'static str {
        "openflow"
    }

    async fn prepare(
        &self,
        incoming: Incoming<'_>,
        params: &mut RequestParams,
    ) -> Result<(), RequestError> {
        let asked = request::prepare(incoming, &self.targets, &self.cfg.rundir).await?;
        params.insert(asked);
        Ok(())
    }

    async fn fetch(&self, req: &ScrapeRequest) -> Result<Snapshot, OpenFlowError> {
        let default = request::OpenFlowRequest::default();
        let asked = req.param::<request::OpenFlowRequest>().unwrap_or(&default);
        fetch::fetch(&self.cfg, asked, req.deadline).await
    }

    fn encode(&self, snapshot: &Snapshot, w: &mut crate::exposition::Writer) {
        encode::encode(snapshot, self.cfg.flow_actions, w);
    }

    fn status(&self, snapshot: &Snapshot) -> Status {
        let errors: Vec<String> = snapshot
            .bridges
            .iter()
            .filter_map(|b| {
                b.outcome
                    .as_ref()
                    .err()
                    .map(|e| format!("bridge {}: {}", b.bridge, crate::registry::error_chain(e)))
            })
            .collect();
        if errors.is_empty() {
            Status::Ok
        } else {
            Status::Failed(errors.join("; "))
        }
    }
}
