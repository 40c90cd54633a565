//! `cargo xtask bench --only flows`: the `flows` subcommand's parse + filter speed against
//! OVS's Python `ovs.flow` and ovs-dbg's `ofparse` on the same file.
//!
//! (Interface stub: the implementation lands with the flow-analysis issue.)

use anyhow::Result;
use std::path::Path;

/// Measures and writes the section of BENCHMARKS.md.
pub fn run(_out: &Path) -> Result<()> {
    Ok(())
}
