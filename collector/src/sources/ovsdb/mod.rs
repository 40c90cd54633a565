//! The `ovsdb` source: Interface statistics and state from ovsdb-server's `Interface` table,
//! kept current by the monitor task ([`crate::ovsdb::Handle`]), and the pod each interface
//! belongs to, from the `external_ids` the CNI wrote ([`attribution`]); BFD, CFM, tunnel
//! carrier and ovs-vswitchd's datapath settings ([`health`]).

pub mod attribution;
pub mod encode;
pub mod flags;
pub mod health;

use crate::exposition::Writer;
use crate::ovsdb::{Handle, OvsdbError, State};
use crate::registry::{ScrapeRequest, Source, SourceError, Status};
use attribution::Attributor;
use std::sync::Arc;

impl SourceError for OvsdbError {
    fn is_unavailable(&self) -> bool {
        matches!(self, OvsdbError::Absent { .. })
    }
}

/// What one scrape read.
pub struct Snapshot {
    /// `None` when the database is down (reported as `ovs_ovsdb_up 0`, nothing else).
    pub state: Option<Arc<State>>,
    pub error: Option<OvsdbError>,
    pub attributor: Arc<Attributor>,
    /// The monitor connection's own state, even when this scrape could not sync.
    pub link: Arc<State>,
}

pub struct OvsdbSource {
    handle: Arc<Handle>,
    attributor: Arc<Attributor>,
}

impl OvsdbSource {
    pub fn new(handle: Arc<Handle>, attributor: Arc<Attributor>) -> Self {
        OvsdbSource { handle, attributor }
    }
}

impl Source for OvsdbSource {
    type Snapshot = Snapshot;
    type Error = OvsdbError;

    fn name(&self) -> &'static str {
        "ovsdb"
    }

    async fn fetch(&self, req: &ScrapeRequest) -> Result<Snapshot, OvsdbError> {
        match self.handle.synced(req.deadline).await {
            Ok(state) => Ok(Snapshot {
                link: state.clone(),
                state: Some(state),
                error: None,
                attributor: self.attributor.clone(),
            }),
            // No Open vSwitch on this node: unavailable, not an error.
            Err(e @ OvsdbError::Absent { .. }) => Err(e),
            // There, but down: say so with ovs_ovsdb_up 0.
            Err(e) => Ok(Snapshot {
                link: self.handle.state(),
                state: None,
                error: Some(e),
                attributor: self.attributor.clone(),
            }),
        }
    }

    fn encode(&self, snapshot: &Snapshot, w: &mut Writer) {
        encode::encode(snapshot, w);
    }

    fn status(&self, snapshot: &Snapshot) -> Status {
        match &snapshot.error {
            None => Status::Ok,
            Some(e) => Status::Failed(e.to_string()),
        }
    }
}
