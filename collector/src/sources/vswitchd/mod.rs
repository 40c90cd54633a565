//! The `vswitchd` source: ovs-vswitchd's own health figures — coverage counters, upcall
//! handling, memory objects, PMD threads, conntrack fill, bonds and LACP — read over its
//! control socket at scrape time, the way `ovs-appctl` reads them, without a process
//! ([`crate::unixctl`]). Works for either datapath: the userspace `netdev` one (which has no
//! netlink interface) and the kernel's. The datapaths' own figures (lookups, flows, masks,
//! ports, zone limits) are the `datapath` source's, which reads the kernel's over netlink and
//! the userspace one's with this source's parsers; `dpctl/show -s` is read here for the list
//! of datapaths the per-datapath commands take.
//!
//! fetch (one connection per scrape, the commands pipelined in two batches — one round trip
//! each, not one per command; `version`, `dpctl/show -s`, `coverage/show`,
//! `upcall/show`, `memory/show`, then, where they apply, `dpif-netdev/pmd-stats-show`,
//! `dpctl/ct-get-nconns`, `dpctl/ct-get-maxconns` per datapath,
//! `bond/show` and `lacp/show`) → [`Snapshot`] → encode (`encode.rs`). The parsers
//! (`parse.rs`) are pure and tested on replies captured from a real ovs-vswitchd.
//!
//! **Absent is not an error.** No pidfile and no control socket in `--ovs.rundir` (ovs-vswitchd
//! is not running on this node, or not yet) is "unavailable". A command that this version
//! lacks, or that does not apply to a datapath (`ct-get-nconns` on the kernel datapath,
//! `pmd-stats-show` without a userspace one), is skipped without an error. A command that
//! should work and fails, or a reply that does not parse, fails the scrape (what was read is
//! still served).
//!
//! **Restarts.** The socket is looked up from the pidfile at every scrape, so a restarted
//! ovs-vswitchd is followed at the next one; its counters start from zero, as the daemon's did,
//! and nothing of the old process is served.

mod encode;
pub mod flags;
pub mod parse;

use crate::exposition::Writer;
use crate::registry::{ScrapeRequest, Source, SourceError, Status};
use crate::unixctl::{self, Conn, UnixctlError};
use parse::{Bond, Coverage, Datapath, ParseError, PmdThread, Upcall};
use std::path::PathBuf;

/// The daemon whose control socket is read.
pub const DAEMON: &str = "ovs-vswitchd";

/// Settings of the source, from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// Open vSwitch's run directory (`--ovs.rundir`), where the pidfile and socket are.
    pub rundir: PathBuf,
    /// `--collector.vswitchd.socket`: the control socket, when it is not where the pidfile says.
    pub socket: Option<PathBuf>,
    /// `--collector.vswitchd.max-reply-bytes`.
    pub max_reply: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum VswitchdError {
    #[error(transparent)]
    Unixctl(#[from] UnixctlError),
    #[error("cannot parse the reply")]
    Parse(#[from] ParseError),
}

impl SourceError for VswitchdError {
    fn is_unavailable(&self) -> bool {
        matches!(self, VswitchdError::Unixctl(e) if e.is_not_running())
    }
}

/// Conntrack figures of one datapath, each where the datapath has it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Conntrack {
    /// `netdev@ovs-netdev`.
    pub datapath: String,
    pub connections: Option<u64>,
    pub max_connections: Option<u64>,
}

/// What one scrape read.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub socket: PathBuf,
    /// Open vSwitch's and, in a DPDK build, DPDK's version.
    pub version: Option<(String, Option<String>)>,
    pub datapaths: Vec<Datapath>,
    pub coverage: Option<Coverage>,
    pub upcalls: Vec<Upcall>,
    pub memory: Vec<(String, u64)>,
    pub pmd: Vec<PmdThread>,
    pub conntrack: Vec<Conntrack>,
    pub bonds: Vec<Bond>,
    /// Commands that should have worked and did not (the scrape is then marked failed).
    pub failures: Vec<String>,
}

#[derive(Debug)]
pub struct VswitchdSource {
    cfg: Config,
}

impl VswitchdSource {
    pub fn new(cfg: Config) -> Self {
        VswitchdSource { cfg }
    }
}

/// Runs a command whose failure is "not here" (a datapath without conntrack counters, a
/// version without the command): `None` then.
pub(crate) async fn optional(
    c: &mut Conn,
    command: &str,
    args: &[&str],
    deadline: tokio::time::Instant,
) -> Result<Option<String>, UnixctlError> {
    optional_reply(command, c.call(command, args, deadline).await)
}

/// A command that may fail because this version or datapath lacks it: `None` then.
fn optional_reply(
    command: &str,
    r: Result<String, UnixctlError>,
) -> Result<Option<String>, UnixctlError> {
    match r {
        Ok(text) => Ok(Some(text)),
        Err(UnixctlError::Command { message, .. }) => {
            tracing::debug!(command, %message, "ovs-vswitchd command not available");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Runs every command into `s`, in two pipelined batches (one round trip each: what the
/// second asks depends on the first's datapaths and bonds); on the first error `s` keeps what
/// was parsed before it.
async fn read_all(
    c: &mut Conn,
    s: &mut Snapshot,
    deadline: tokio::time::Instant,
) -> Result<(), VswitchdError> {
    // Every command a supported version has, and bond/show (which one without bonds lacks).
    let first = c
        .call_all(
            &[
                ("version", vec![]),
                ("dpctl/show", vec!["-s"]),
                ("coverage/show", vec![]),
                ("upcall/show", vec![]),
                ("memory/show", vec![]),
                ("bond/show", vec![]),
            ],
            deadline,
        )
        .await?;
    let mut r = first.into_iter();
    let mut next = || r.next().unwrap_or_else(|| Ok(String::new()));
    s.version = parse::version(&next()?);
    s.datapaths = parse::dpctl_show(&next()?)?;
    s.coverage = Some(parse::coverage(&next()?)?);
    s.upcalls = parse::upcall(&next()?)?;
    s.memory = parse::memory(&next()?)?;
    let bonds = match optional_reply("bond/show", next())? {
        Some(t) => parse::bonds(&t)?,
        None => Vec::new(),
    };

    // The ones that apply to some datapaths or versions only.
    let netdev = s.datapaths.iter().any(|d| d.kind == "netdev");
    let lacp = bonds.iter().any(|b| b.lacp_status != "off");
    let names: Vec<String> = s.datapaths.iter().map(Datapath::full_name).collect();
    let mut second: Vec<(&str, Vec<&str>)> = Vec::new();
    if netdev {
        second.push(("dpif-netdev/pmd-stats-show", vec![]));
    }
    for dp in &names {
        second.push(("dpctl/ct-get-nconns", vec![dp.as_str()]));
        second.push(("dpctl/ct-get-maxconns", vec![dp.as_str()]));
    }
    if lacp {
        second.push(("lacp/show", vec![]));
    }
    let replies = c.call_all(&second, deadline).await?;
    let mut r = second.iter().map(|(c, _)| *c).zip(replies);
    let mut next = || {
        r.next()
            .map_or(Ok(None), |(command, reply)| optional_reply(command, reply))
    };
    if netdev && let Some(t) = next()? {
        s.pmd = parse::pmd_stats(&t)?;
    }
    for dp in &names {
        let mut ct = Conntrack {
            datapath: dp.clone(),
            ..Conntrack::default()
        };
        if let Some(t) = next()? {
            ct.connections = Some(parse::number("dpctl/ct-get-nconns", &t)?);
        }
        if let Some(t) = next()? {
            ct.max_connections = Some(parse::number("dpctl/ct-get-maxconns", &t)?);
        }
        s.conntrack.push(ct);
    }
    let mut bonds = bonds;
    if lacp && let Some(t) = next()? {
        parse::merge_lacp(&mut bonds, &t)?;
    }
    s.bonds = bonds;
    Ok(())
}

impl Source for VswitchdSource {
    type Snapshot = Snapshot;
    type Error = VswitchdError;

    fn name(&self) -> &'static str {
        flags::NAME
    }

    async fn fetch(&self, req: &ScrapeRequest) -> Result<Snapshot, VswitchdError> {
        let deadline = req.deadline;
        let socket = match &self.cfg.socket {
            Some(p) => p.clone(),
            None => unixctl::locate(&self.cfg.rundir, DAEMON).await?.0,
        };
        let mut c = Conn::connect(&socket, DAEMON, self.cfg.max_reply, deadline).await?;
        let mut s = Snapshot {
            socket,
            ..Snapshot::default()
        };
        if let Err(e) = read_all(&mut c, &mut s, deadline).await {
            s.failures.push(crate::registry::error_chain(&e));
        }
        Ok(s)
    }

    fn encode(&self, snapshot: &Snapshot, w: &mut Writer) {
        encode::encode(snapshot, w);
    }

    fn status(&self, s: &Snapshot) -> Status {
        if s.failures.is_empty() {
            Status::Ok
        } else {
            Status::Failed(format!("{}: {}", s.socket.display(), s.failures.join(", ")))
        }
    }
}
