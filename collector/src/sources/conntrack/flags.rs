//! The `conntrack` source's flags and descriptor.

use super::{Config, ConntrackSource, Kernel, Reader};
use crate::sources::build::{self, BuildError, Context, Descriptor};
use clap::Args;
use std::sync::Arc;

const NAME: &str = "conntrack";

/// `--collector.conntrack.*`.
#[derive(Debug, Clone, Args)]
pub struct ConntrackArgs {
    /// Ask the kernel for conntrack statistics even when nf_conntrack_netlink does not look
    /// loaded (not in /sys/module nor in /lib/modules/<release>/modules.builtin, as in a
    /// container without /lib/modules): the request then makes the kernel load it.
    #[arg(
        id = "collector.conntrack.allow-module-load",
        long = "collector.conntrack.allow-module-load"
    )]
    pub allow_module_load: bool,
}

fn build(m: &clap::ArgMatches, ctx: &mut Context<'_>) -> Result<(), BuildError> {
    let a: ConntrackArgs = build::args(NAME, m)?;
    let cfg = Config {
        allow_module_load: a.allow_module_load,
    };
    let reader = ctx
        .reader::<Arc<dyn Reader>>()
        .unwrap_or_else(|| Arc::new(Kernel::new(cfg.allow_module_load)));
    ctx.add(Arc::new(ConntrackSource::with_reader(reader)));
    Ok(())
}

pub const DESCRIPTOR: Descriptor = Descriptor {
    name: NAME,
    help: "netfilter conntrack statistics: per-CPU counters and the table's fill (ctnetlink)",
    default_enabled: true,
    routes: crate::registry::Routes::NONE,
    flags: <ConntrackArgs as Args>::augment_args,
    build,
};
