//! The `vswitchd` source: ovs-vswitchd's own health figures — coverage counters, upcall
//! handling, memory objects, PMD threads, conntrack fill, bonds and LACP — read over its
//! control socket at scrape time, the way `ovs-appctl` reads them, without a process
//! ([`crate::unixctl`]). Works for either datapath: the userspace `netdev` one (which has no
//! netlink interface) and the kernel's. The datapaths' own figures (lookups, flows, masks,
//! ports, zone limits) are the `datapath` source's, which reads the kernel's over netlink and
//! the userspace one's with this source's parsers.
//!
//! fetch (one connection per scrape, every command pipelined in one batch — one round trip,
//! not one per command: `version`, `coverage/show`, `upcall/show`, `memory/show`,
//! `bond/show`, `lacp/show`, `dpif-netdev/pmd-stats-show`, `dpctl/ct-get-nconns` and
//! `dpctl/ct-get-maxconns` of each datapath) → [`Snapshot`] → encode (`encode.rs`). The parsers
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
use parse::{Bond, Coverage, ParseError, PmdThread, Upcall};
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

/// A command that may fail because this version or datapath lacks it: `None` then.
pub(crate) fn optional_reply(
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

/// The datapaths ovs-vswitchd can have: one per datapath type, named `ovs-<type>`
/// (ofproto-dpif's backers), the kernel's and the userspace one.
pub const DATAPATHS: [&str; 2] = ["netdev@ovs-netdev", "system@ovs-system"];

/// Runs every command into `s` in one pipelined batch: one round trip to ovs-vswitchd, not one
/// per command. The per-datapath commands are asked of both datapaths ovs-vswitchd can have
/// ([`DATAPATHS`]); the one it does not have answers with an error, and only those
/// `upcall/show` lists are kept. On the first error `s` keeps what was parsed before it.
async fn read_all(
    c: &mut Conn,
    s: &mut Snapshot,
    deadline: tokio::time::Instant,
) -> Result<(), VswitchdError> {
    let mut batch: Vec<(&str, Vec<&str>)> = vec![
        // Every command a supported version has.
        ("version", vec![]),
        ("coverage/show", vec![]),
        ("upcall/show", vec![]),
        ("memory/show", vec![]),
        // The ones that apply to some datapaths, bonds or versions only.
        ("bond/show", vec![]),
        ("lacp/show", vec![]),
        ("dpif-netdev/pmd-stats-show", vec![]),
    ];
    for dp in DATAPATHS {
        batch.push(("dpctl/ct-get-nconns", vec![dp]));
        batch.push(("dpctl/ct-get-maxconns", vec![dp]));
    }
    let replies = c.call_all(&batch, deadline).await?;
    let mut r = replies.into_iter();
    let mut required = || r.next().unwrap_or_else(|| Ok(String::new()));
    s.version = parse::version(&required()?);
    s.coverage = Some(parse::coverage(&required()?)?);
    s.upcalls = parse::upcall(&required()?)?;
    s.memory = parse::memory(&required()?)?;
    let mut r = batch[4..].iter().map(|(c, _)| *c).zip(r);
    let mut next = || {
        r.next()
            .map_or(Ok(None), |(command, reply)| optional_reply(command, reply))
    };
    let bond = next()?;
    let lacp = next()?;
    let pmd = next()?;
    let present = |dp: &str| s.upcalls.iter().any(|u| u.datapath == dp);
    let mut conntrack = Vec::new();
    for dp in DATAPATHS {
        let (nconns, maxconns) = (next()?, next()?);
        if !present(dp) {
            continue;
        }
        let mut ct = Conntrack {
            datapath: dp.to_owned(),
            ..Conntrack::default()
        };
        if let Some(t) = nconns {
            ct.connections = Some(parse::number("dpctl/ct-get-nconns", &t)?);
        }
        if let Some(t) = maxconns {
            ct.max_connections = Some(parse::number("dpctl/ct-get-maxconns", &t)?);
        }
        conntrack.push(ct);
    }
    s.conntrack = conntrack;
    if present("netdev@ovs-netdev")
        && let Some(t) = pmd
    {
        s.pmd = parse::pmd_stats(&t)?;
    }
    if let Some(t) = bond {
        let mut bonds = parse::bonds(&t)?;
        if bonds.iter().any(|b| b.lacp_status != "off")
            && let Some(t) = lacp
        {
            parse::merge_lacp(&mut bonds, &t)?;
        }
        s.bonds = bonds;
    }
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
