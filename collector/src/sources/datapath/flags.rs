//! The `datapath` source's flags and descriptor.

use super::{Config, DatapathSource, Kernel, Reader};
use crate::sources::build::{self, BuildError, Context, Descriptor};
use crate::sources::vswitchd::flags::VswitchdArgs;
use clap::Args;
use std::sync::Arc;

pub const NAME: &str = "datapath";

/// `--collector.datapath.*`. The userspace datapath is read over ovs-vswitchd's control
/// socket, found as `--collector.vswitchd.socket` and bounded by
/// `--collector.vswitchd.max-reply-bytes` say.
#[derive(Debug, Clone, Args)]
pub struct DatapathArgs {
    /// Read the kernel datapath over generic netlink (`--collector.datapath.kernel=false`:
    /// from ovs-vswitchd's `dpctl/show -s` instead, as for the userspace datapath).
    #[arg(
        id = "collector.datapath.kernel",
        long = "collector.datapath.kernel",
        value_name = "BOOL",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub kernel: bool,

    /// Read the userspace datapath's conntrack zone limits (`dpctl/ct-get-limits`). ovs-vswitchd
    /// answers it by looking up all 65,536 zones: about 1 ms of its main thread per scrape
    /// (measured, Open vSwitch 3.1); turn it off where no zone limits are set.
    #[arg(
        id = "collector.datapath.userspace-zone-limits",
        long = "collector.datapath.userspace-zone-limits",
        value_name = "BOOL",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub userspace_zone_limits: bool,
}

fn build(m: &clap::ArgMatches, ctx: &mut Context<'_>) -> Result<(), BuildError> {
    let a: DatapathArgs = build::args(NAME, m)?;
    let v: VswitchdArgs = build::args(NAME, m)?;
    let reader = ctx
        .reader::<Arc<dyn Reader>>()
        .unwrap_or_else(|| Arc::new(Kernel));
    ctx.add(Arc::new(DatapathSource::new(
        Config {
            kernel: a.kernel,
            userspace_zone_limits: a.userspace_zone_limits,
            rundir: ctx.ovs_rundir().to_owned(),
            socket: v.socket,
            max_reply: v.max_reply_bytes,
        },
        reader,
    )));
    Ok(())
}

pub const DESCRIPTOR: Descriptor = Descriptor {
    name: NAME,
    help: "Open vSwitch datapaths: lookups, flows, masks, ports, conntrack zone limits (kernel over generic netlink, userspace over ovs-vswitchd's control socket)",
    default_enabled: true,
    routes: crate::registry::Routes::NONE,
    flags: <DatapathArgs as Args>::augment_args,
    build,
};
