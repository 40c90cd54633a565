//! The `openflow` source's flags and descriptor.

use super::request::{ROUTES, TargetPolicy};
use super::{Config, DEFAULT_TARGET_PORT, OpenFlowSource};
use crate::sources::build::{self, BuildError, Context, Descriptor};
use clap::Args;
use std::sync::Arc;

const NAME: &str = "openflow";

/// `--collector.openflow.*` (the former `--ovs.*` spellings are aliases).
#[derive(Debug, Clone, Args)]
pub struct OpenFlowArgs {
    /// Port for a bare ?target=HOST (the seed exporter's 16633).
    #[arg(id = "collector.openflow.target-port", long = "collector.openflow.target-port",
          visible_alias = "ovs.target-port", value_name = "PORT",
          default_value_t = DEFAULT_TARGET_PORT)]
    pub target_port: u16,

    /// Where ?target= may point: CIDRs, addresses, host names, unix:PATH or unix:DIR/
    /// (repeatable or comma-separated). The local *.mgmt sockets are always allowed; any other
    /// target gets HTTP 400.
    #[arg(
        id = "collector.openflow.allowed-targets",
        long = "collector.openflow.allowed-targets",
        visible_alias = "ovs.allowed-targets",
        value_name = "LIST",
        value_delimiter = ','
    )]
    pub allowed_targets: Vec<String>,

    /// Add an `actions` label to flow series (as `ovs-ofctl -O OpenFlow13 dump-flows` writes them).
    #[arg(
        id = "collector.openflow.flow-actions",
        long = "collector.openflow.flow-actions",
        visible_alias = "ovs.flow-actions"
    )]
    pub flow_actions: bool,

    /// Flows per bridge with series of their own (those with the most bytes); the rest are summed
    /// per (table, cookie) with match="*". 0: no limit.
    #[arg(
        id = "collector.openflow.max-flow-series",
        long = "collector.openflow.max-flow-series",
        visible_alias = "ovs.max-flow-series",
        value_name = "N",
        default_value_t = 10_000
    )]
    pub max_flow_series: usize,

    /// Flows read per bridge at most; a switch with more fails that bridge's scrape (and
    /// counts `dataplane_collector_limit_exceeded_total{limit="openflow_flows"}`).
    #[arg(
        id = "collector.openflow.max-flows",
        long = "collector.openflow.max-flows",
        visible_alias = "ovs.max-flows",
        value_name = "N",
        default_value_t = 1_000_000
    )]
    pub max_flows: usize,

    /// Bytes of OpenFlow replies read per bridge and scrape at most.
    #[arg(id = "collector.openflow.max-reply-bytes", long = "collector.openflow.max-reply-bytes",
          visible_alias = "ovs.max-reply-bytes", value_name = "BYTES",
          default_value_t = crate::openflow::client::DEFAULT_MAX_REPLY_BYTES)]
    pub max_reply_bytes: usize,
}

fn build(m: &clap::ArgMatches, ctx: &mut Context<'_>) -> Result<(), BuildError> {
    let a: OpenFlowArgs = build::args(NAME, m)?;
    let allowed =
        super::target::AllowList::parse(&a.allowed_targets, a.target_port).map_err(|reason| {
            BuildError::Flag {
                collector: NAME,
                flag: "--collector.openflow.allowed-targets",
                reason,
            }
        })?;
    let cfg = Config {
        rundir: ctx.ovs_rundir().to_path_buf(),
        flow_actions: a.flow_actions,
        max_flow_series: a.max_flow_series,
        max_flows: a.max_flows,
        max_reply_bytes: a.max_reply_bytes,
        ovsdb: Some(ctx.ovsdb()?),
        attributor: crate::sources::ovsdb::flags::attributor(ctx)?,
    };
    let policy = TargetPolicy {
        allowed,
        port: a.target_port,
    };
    ctx.add(Arc::new(OpenFlowSource::new(cfg, policy)));
    Ok(())
}

pub const DESCRIPTOR: Descriptor = Descriptor {
    name: NAME,
    help: "Open vSwitch OpenFlow port, flow, table and group statistics (native OpenFlow 1.3)",
    default_enabled: true,
    routes: ROUTES,
    flags: <OpenFlowArgs as Args>::augment_args,
    build,
};
