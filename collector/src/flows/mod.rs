//! `dataplane-collector flows`: parse, filter, group and draw OpenFlow tables.
//!
//! (Interface stub: the implementation lands with the flow-analysis issue.)

pub mod api;

use clap::Args;

/// Arguments of the `flows` subcommand.
#[derive(Debug, Clone, Args)]
pub struct FlowsArgs {
    /// `ovs-ofctl dump-flows` or `ovs-appctl dpctl/dump-flows` text; `-` for standard input.
    #[arg(short = 'i', long = "input", value_name = "FILE")]
    pub input: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FlowsError {
    #[error("not implemented yet")]
    NotImplemented,
}

/// Runs the subcommand.
pub fn run(_args: FlowsArgs) -> Result<(), FlowsError> {
    Err(FlowsError::NotImplemented)
}
