//! The `vswitchd` source's flags and descriptor.

use super::{Config, VswitchdSource};
use crate::sources::build::{self, BuildError, Context, Descriptor};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

pub const NAME: &str = "vswitchd";

/// `--collector.vswitchd.*`.
#[derive(Debug, Clone, Args)]
pub struct VswitchdArgs {
    /// ovs-vswitchd's control socket [default: <--ovs.rundir>/ovs-vswitchd.<pid>.ctl, the pid
    /// read from ovs-vswitchd.pid at every scrape, else <--ovs.rundir>/ovs-vswitchd.ctl].
    #[arg(
        id = "collector.vswitchd.socket",
        long = "collector.vswitchd.socket",
        value_name = "PATH"
    )]
    pub socket: Option<PathBuf>,

    /// Largest reply accepted from ovs-vswitchd for one command; a larger one fails the scrape.
    #[arg(
        id = "collector.vswitchd.max-reply-bytes",
        long = "collector.vswitchd.max-reply-bytes",
        value_name = "BYTES",
        default_value_t = crate::unixctl::DEFAULT_MAX_REPLY
    )]
    pub max_reply_bytes: usize,
}

fn build(m: &clap::ArgMatches, ctx: &mut Context<'_>) -> Result<(), BuildError> {
    let a: VswitchdArgs = build::args(NAME, m)?;
    if a.max_reply_bytes < 4096 {
        return Err(BuildError::Flag {
            collector: NAME,
            flag: "--collector.vswitchd.max-reply-bytes",
            reason: format!(
                "--collector.vswitchd.max-reply-bytes {} is below 4096: every reply would be refused",
                a.max_reply_bytes
            ),
        });
    }
    ctx.add(Arc::new(VswitchdSource::new(Config {
        rundir: ctx.ovs_rundir().to_owned(),
        socket: a.socket,
        max_reply: a.max_reply_bytes,
    })));
    Ok(())
}

pub const DESCRIPTOR: Descriptor = Descriptor {
    name: NAME,
    help: "ovs-vswitchd's datapath, coverage, upcall, PMD, conntrack and bond figures (its control socket)",
    default_enabled: true,
    routes: crate::registry::Routes::NONE,
    flags: <VswitchdArgs as Args>::augment_args,
    build,
};
