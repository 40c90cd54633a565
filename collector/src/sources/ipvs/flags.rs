//! The `ipvs` source's flags and descriptor.

use super::{Config, IpvsSource, Kernel, Reader};
use crate::sources::build::{self, BuildError, Context, Descriptor};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

const NAME: &str = "ipvs";

/// `--collector.ipvs.*` (the former `--ipvs.*` spellings are aliases).
#[derive(Debug, Clone, Args)]
pub struct IpvsArgs {
    /// Network namespace to read IPVS in, as a path like /var/run/docker/netns/ingress_sbox
    /// (repeatable). Without it, the daemon's own namespace.
    #[arg(
        id = "collector.ipvs.netns",
        long = "collector.ipvs.netns",
        visible_alias = "ipvs.netns",
        value_name = "PATH"
    )]
    pub netns: Vec<PathBuf>,
}

fn build(m: &clap::ArgMatches, ctx: &mut Context<'_>) -> Result<(), BuildError> {
    let a: IpvsArgs = build::args(NAME, m)?;
    let reader = ctx
        .reader::<Arc<dyn Reader>>()
        .unwrap_or_else(|| Arc::new(Kernel));
    ctx.add(Arc::new(IpvsSource::with_reader(
        Config { netns: a.netns },
        reader,
    )));
    Ok(())
}

pub const DESCRIPTOR: Descriptor = Descriptor {
    name: NAME,
    help: "IPVS virtual services and real servers (generic netlink)",
    default_enabled: true,
    routes: crate::registry::Routes::NONE,
    flags: <IpvsArgs as Args>::augment_args,
    build,
};
