//! The `ovsprocess` source's flags and descriptor.

use super::{Config, OvsprocessSource};
use crate::sources::build::{self, BuildError, Context, Descriptor};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

pub const NAME: &str = "ovsprocess";

/// `--collector.ovsprocess.*`.
#[derive(Debug, Clone, Args)]
pub struct OvsprocessArgs {
    /// The procfs mount the daemons' /proc/PID files are read from (a host's /proc mounted
    /// elsewhere in a container).
    #[arg(
        id = "collector.ovsprocess.procfs",
        long = "collector.ovsprocess.procfs",
        value_name = "DIR",
        default_value = "/proc"
    )]
    pub procfs: PathBuf,

    /// ovsdb-server's database file, whose size is served (no series when it does not exist).
    #[arg(
        id = "collector.ovsprocess.db-file",
        long = "collector.ovsprocess.db-file",
        value_name = "PATH",
        default_value = "/etc/openvswitch/conf.db"
    )]
    pub db_file: PathBuf,
}

fn build(m: &clap::ArgMatches, ctx: &mut Context<'_>) -> Result<(), BuildError> {
    let a: OvsprocessArgs = build::args(NAME, m)?;
    let clk_tck = match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t.unsigned_abs(),
        other => {
            return Err(BuildError::Flag {
                collector: NAME,
                flag: "--collector.ovsprocess",
                reason: format!("sysconf(_SC_CLK_TCK) gave {other:?}: cannot convert CPU times"),
            });
        }
    };
    ctx.add(Arc::new(OvsprocessSource::new(Config {
        rundir: ctx.ovs_rundir().to_owned(),
        procfs: a.procfs,
        db_file: a.db_file,
        clk_tck,
    })));
    Ok(())
}

pub const DESCRIPTOR: Descriptor = Descriptor {
    name: NAME,
    help: "CPU, memory, file descriptors, threads and start time of ovs-vswitchd and ovsdb-server (procfs, through their pidfiles), and the database file's size",
    default_enabled: true,
    routes: crate::registry::Routes::NONE,
    flags: <OvsprocessArgs as Args>::augment_args,
    build,
};
