//! The `ovsdb` source's descriptor (its flags are the shared `--ovs.*` ones), and the pod
//! attribution the OVS sources share.

use super::OvsdbSource;
use super::attribution::Attributor;
use crate::sources::build::{self, BuildError, Context, Descriptor};
use std::sync::Arc;

/// The pod attribution the OVS sources share, from `--ovs.external-id-label`, made once.
pub fn attributor(ctx: &mut Context<'_>) -> Result<Arc<Attributor>, BuildError> {
    ctx.shared(|ovs| {
        Attributor::new(&ovs.external_id_labels).map_err(|reason| BuildError::SharedFlag {
            flag: "--ovs.external-id-label",
            reason,
        })
    })
}

fn build(_m: &clap::ArgMatches, ctx: &mut Context<'_>) -> Result<(), BuildError> {
    let handle = ctx.ovsdb()?;
    let attributor = attributor(ctx)?;
    ctx.add(Arc::new(OvsdbSource::new(handle, attributor)));
    Ok(())
}

pub const DESCRIPTOR: Descriptor = Descriptor {
    name: "ovsdb",
    help: "Open vSwitch interface statistics and state, and the pod each interface belongs to (OVSDB monitor)",
    default_enabled: true,
    routes: crate::registry::Routes::NONE,
    flags: build::no_flags,
    build,
};
