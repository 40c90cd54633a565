//! The `datapath` source: Open vSwitch's datapaths — lookups (hit, missed, lost), megaflows,
//! masks and the masks cache, every datapath port's counters and, on the kernel, its upcalls;
//! conntrack zone limits with their live counts — for either datapath, at scrape time:
//!
//! - **the kernel datapath** (`system@ovs-system`) over generic netlink, the `ovs_datapath`,
//!   `ovs_vport` and `ovs_ct_limit` families (`kernel.rs`), as `ovs-dpctl show -s` reads
//!   them. It does not need ovs-vswitchd: a hung or crashed ovs-vswitchd leaves the kernel's
//!   figures readable, and they are still served.
//! - **the userspace datapath** (`netdev@ovs-netdev`, which has no netlink interface) through
//!   ovs-vswitchd's control socket: `dpctl/show -s` and `dpctl/ct-get-limits`, parsed by the
//!   `vswitchd` source's parsers ([`crate::sources::vswitchd::parse`], the one model of a
//!   datapath both read into).
//!
//! This source owns the `ovs_datapath_*` and `ovs_conntrack_zone_*` families, whichever way a
//! datapath is read, so a dashboard asks one name for both datapaths.
//!
//! **Absent is not an error.** No `ovs_datapath` family (the `openvswitch` module is not
//! loaded; looking the family up in a dump of every family never loads it) and no
//! ovs-vswitchd is "unavailable". The daemon's own network namespace is read (a DaemonSet with
//! `hostNetwork`).

pub mod flags;
pub mod kernel;

mod encode;

use crate::exposition::Writer;
use crate::netlink::{Protocol, Socket};
use crate::registry::{ScrapeRequest, Source, SourceError, Status, error_chain};
use crate::unixctl::{self, Conn, UnixctlError};
use kernel::KernelData;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use crate::sources::vswitchd::parse::{Datapath, DpPort, PortStats, ZoneLimits};

/// Settings of the source, from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// Read the kernel datapath over netlink (`--collector.datapath.kernel`).
    pub kernel: bool,
    /// Ask ovs-vswitchd for the userspace datapath's zone limits
    /// (`--collector.datapath.userspace-zone-limits`).
    pub userspace_zone_limits: bool,
    /// Open vSwitch's run directory and the control socket, as the `vswitchd` source finds it.
    pub rundir: PathBuf,
    pub socket: Option<PathBuf>,
    pub max_reply: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    #[error(
        "no Open vSwitch datapath: the openvswitch module is not loaded and ovs-vswitchd is not running"
    )]
    Unavailable,
    #[error("cannot open a generic netlink socket")]
    Socket {
        #[source]
        source: crate::netlink::NetlinkError,
    },
    #[error("the kernel datapath")]
    Kernel {
        #[source]
        source: kernel::ReadError,
    },
    #[error("the kernel datapath's reader thread failed: {reason}")]
    Thread { reason: String },
    #[error(transparent)]
    Unixctl(#[from] UnixctlError),
    #[error("cannot parse ovs-vswitchd's reply")]
    Parse(#[from] crate::sources::vswitchd::parse::ParseError),
}

impl SourceError for DatapathError {
    fn is_unavailable(&self) -> bool {
        matches!(self, DatapathError::Unavailable)
    }
}

/// How the source reads the kernel: [`Kernel`] (netlink) in the daemon, a captured read in
/// tests (given through [`crate::sources::build::Readers`] as an `Arc<dyn Reader>`). `Ok(None)`:
/// no `openvswitch` module. Each receive may wait `timeout`.
pub trait Reader: Send + Sync + 'static {
    fn read(&self, timeout: Duration) -> Result<Option<KernelData>, DatapathError>;
}

/// The kernel, over generic netlink, in the daemon's namespace.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kernel;

impl Reader for Kernel {
    fn read(&self, timeout: Duration) -> Result<Option<KernelData>, DatapathError> {
        let mut sock = Socket::open(Protocol::Generic, timeout)
            .map_err(|source| DatapathError::Socket { source })?;
        kernel::read(&mut sock).map_err(|source| DatapathError::Kernel { source })
    }
}

/// What one scrape read.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The kernel's datapaths and zone limits (`None`: not read, or no module).
    pub kernel: Option<KernelData>,
    /// The datapaths ovs-vswitchd reports that the kernel read does not cover (the userspace
    /// ones; all of them with `--no-collector.datapath.kernel`), each with its zone limits
    /// where it has them.
    pub vswitchd: Vec<(Datapath, Option<ZoneLimits>)>,
    /// What failed (the scrape is then marked failed; what was read is served).
    pub failures: Vec<String>,
}

/// How long the zones found to have a limit of their own (in ovs-vswitchd's datapaths) are
/// asked for by number before all zones are looked at again.
pub const ZONE_REDISCOVERY: Duration = Duration::from_secs(30);

pub struct DatapathSource {
    cfg: Config,
    reader: Arc<dyn Reader>,
    /// Per datapath of ovs-vswitchd: when all its zones were last looked at, and the zones that
    /// had a limit of their own then.
    zones: std::sync::Mutex<std::collections::HashMap<String, (tokio::time::Instant, Vec<u16>)>>,
}

/// The `dpctl/ct-get-limits` arguments for `dp`: every zone (ovs-vswitchd then looks up all
/// 65,536 of them, about 1 ms of its main thread) when `known` is `None`, else only the zones
/// known to have a limit (`zone=0` when none does: the reply carries the default limit either
/// way, and zone 0 is dropped unless known).
fn zone_args(dp: &str, known: Option<&[u16]>) -> Vec<String> {
    match known {
        None => vec![dp.to_owned()],
        Some([]) => vec![dp.to_owned(), "zone=0".to_owned()],
        Some(zones) => {
            let list: Vec<String> = zones.iter().map(u16::to_string).collect();
            vec![dp.to_owned(), format!("zone={}", list.join(","))]
        }
    }
}

impl DatapathSource {
    pub fn new(cfg: Config, reader: Arc<dyn Reader>) -> Self {
        DatapathSource {
            cfg,
            reader,
            zones: std::sync::Mutex::default(),
        }
    }

    /// The zones of `dp` to ask for by number, if they were found recently enough.
    fn known_zones(&self, dp: &str, now: tokio::time::Instant) -> Option<Vec<u16>> {
        let zones = self
            .zones
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        zones
            .get(dp)
            .filter(|(at, _)| now.saturating_duration_since(*at) < ZONE_REDISCOVERY)
            .map(|(_, z)| z.clone())
    }

    /// ovs-vswitchd's datapaths, except the kernel's when netlink reads them. `Ok(None)`:
    /// ovs-vswitchd is not running.
    async fn read_vswitchd(
        &self,
        deadline: tokio::time::Instant,
        skip_system: bool,
    ) -> Result<Option<Vec<(Datapath, Option<ZoneLimits>)>>, DatapathError> {
        const DAEMON: &str = crate::sources::vswitchd::DAEMON;
        let socket = match &self.cfg.socket {
            Some(p) => p.clone(),
            None => match unixctl::locate(&self.cfg.rundir, DAEMON).await {
                Ok((p, _)) => p,
                Err(e) if e.is_not_running() => return Ok(None),
                Err(e) => return Err(e.into()),
            },
        };
        let mut c = match Conn::connect(&socket, DAEMON, self.cfg.max_reply, deadline).await {
            Ok(c) => c,
            Err(e) if e.is_not_running() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // One round trip: the datapaths and the zone limits of each one ovs-vswitchd can have
        // (the one it lacks answers with an error, and is not listed by dpctl/show).
        let wanted: Vec<&str> = crate::sources::vswitchd::DATAPATHS
            .into_iter()
            .filter(|dp| !(skip_system && dp.starts_with("system@")))
            .filter(|dp| self.cfg.userspace_zone_limits || !dp.starts_with("netdev@"))
            .collect();
        // Each datapath's zones are looked at all at once every ZONE_REDISCOVERY, and only
        // those with a limit are asked for in between: their limits and live counts are read
        // at every scrape; a zone given a limit in between appears at the next full look.
        let now = tokio::time::Instant::now();
        let known: Vec<Option<Vec<u16>>> =
            wanted.iter().map(|dp| self.known_zones(dp, now)).collect();
        let args: Vec<Vec<String>> = wanted
            .iter()
            .zip(&known)
            .map(|(dp, k)| zone_args(dp, k.as_deref()))
            .collect();
        let mut batch: Vec<(&str, Vec<&str>)> = vec![("dpctl/show", vec!["-s"])];
        batch.extend(args.iter().map(|a| {
            (
                "dpctl/ct-get-limits",
                a.iter().map(String::as_str).collect(),
            )
        }));
        let mut replies = c.call_all(&batch, deadline).await?.into_iter();
        let text = replies.next().unwrap_or_else(|| Ok(String::new()))?;
        let mut limits = std::collections::HashMap::new();
        for ((dp, known), reply) in wanted.iter().zip(known).zip(replies) {
            let Some(t) = crate::sources::vswitchd::optional_reply("dpctl/ct-get-limits", reply)?
            else {
                continue;
            };
            let mut l = crate::sources::vswitchd::parse::ct_limits(&t)?;
            match known {
                Some(k) => l.zones.retain(|(z, _, _)| k.contains(z)),
                None => {
                    let found = l.zones.iter().map(|(z, _, _)| *z).collect();
                    self.zones
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert((*dp).to_owned(), (now, found));
                }
            }
            limits.insert(*dp, l);
        }
        let mut out = Vec::new();
        for d in crate::sources::vswitchd::parse::dpctl_show(&text)? {
            if skip_system && d.kind == "system" {
                continue;
            }
            let l = limits.remove(d.full_name().as_str());
            out.push((d, l));
        }
        Ok(Some(out))
    }
}

impl Source for DatapathSource {
    type Snapshot = Snapshot;
    type Error = DatapathError;

    fn name(&self) -> &'static str {
        flags::NAME
    }

    async fn fetch(&self, req: &ScrapeRequest) -> Result<Snapshot, DatapathError> {
        let timeout = req
            .deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .max(Duration::from_millis(100));
        let kernel = async {
            if !self.cfg.kernel {
                return Ok(None);
            }
            let reader = self.reader.clone();
            tokio::task::spawn_blocking(move || reader.read(timeout))
                .await
                .unwrap_or_else(|e| {
                    Err(DatapathError::Thread {
                        reason: e.to_string(),
                    })
                })
        };
        // Both at once: a slow ovs-vswitchd does not hold the kernel's figures back.
        let (kernel, vswitchd) = tokio::join!(kernel, async {
            // Which datapaths netlink covers is known only once it answered; the kernel's is
            // skipped from ovs-vswitchd's reply whenever netlink is asked.
            self.read_vswitchd(req.deadline, self.cfg.kernel).await
        });
        let mut s = Snapshot::default();
        let mut kernel_present = false;
        match kernel {
            Ok(k) => {
                kernel_present = k.is_some();
                s.kernel = k;
            }
            Err(e) => s.failures.push(error_chain(&e)),
        }
        let mut vswitchd_present = false;
        match vswitchd {
            Ok(Some(v)) => {
                vswitchd_present = true;
                s.vswitchd = v;
            }
            Ok(None) => {}
            Err(e) => {
                vswitchd_present = true;
                s.failures.push(error_chain(&e));
            }
        }
        if !kernel_present && !vswitchd_present && s.failures.is_empty() {
            return Err(DatapathError::Unavailable);
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
            Status::Failed(s.failures.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_arguments() {
        let dp = "netdev@ovs-netdev";
        assert_eq!(zone_args(dp, None), [dp]);
        assert_eq!(zone_args(dp, Some(&[])), [dp, "zone=0"]);
        assert_eq!(zone_args(dp, Some(&[5, 7])), [dp, "zone=5,7"]);
    }
}
