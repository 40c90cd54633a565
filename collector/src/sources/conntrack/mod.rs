//! The `conntrack` source: the netfilter connection tracker's statistics over ctnetlink
//! (`NETLINK_NETFILTER`), without dumping the table: per-CPU counters
//! (`IPCTNL_MSG_CT_GET_STATS_CPU`, `IPCTNL_MSG_EXP_GET_STATS_CPU`) and the table's fill
//! (`IPCTNL_MSG_CT_GET_STATS`), what `conntrack -S`, `conntrack -S expect` and `conntrack -C`
//! print.
//!
//! fetch (`read_stats`: one netfilter netlink socket, two dumps and one acknowledged request) →
//! [`Snapshot`] → encode (`encode.rs`). Netlink is `crate::netlink`'s; `parse.rs` decodes the
//! replies in pure functions tested on replies captured from this host's kernel
//! (`collector/tests/fixtures/conntrack/`).
//!
//! **Namespace.** Conntrack statistics are per network namespace; the source reads the daemon's
//! own (run it in the host's namespace, `hostNetwork: true`, for the node's).
//!
//! **No module autoload.** A ctnetlink request to a subsystem no module has registered makes
//! nfnetlink call `request_module("nfnetlink-subsys-1")`, which loads `nf_conntrack_netlink`
//! (and `nf_conntrack`) — a scrape must not change the node. So before any request the source
//! looks ([`ModuleProbe`]): `/sys/module/nf_conntrack_netlink` (loaded as a module), no
//! `/proc/modules` (a kernel without module support cannot load anything: a request is safe and
//! an absent subsystem answers `EOPNOTSUPP`), or `nf_conntrack_netlink.ko` in
//! `/lib/modules/<release>/modules.builtin` (built in). Otherwise the source is unavailable
//! without asking; `--collector.conntrack.allow-module-load` skips the check. The kernel's
//! `EOPNOTSUPP` (no subsystem), `EPROTONOSUPPORT` on the socket (no nfnetlink) and `ENOENT` are
//! "unavailable" too: no series, `dataplane_collector_source_available 0`.

mod encode;
pub mod flags;
pub mod parse;

use crate::exposition::Writer;
use crate::netlink::{DumpError, DumpLimits, NetlinkError, Protocol, Socket};
use crate::registry::{ScrapeRequest, Source, SourceError};
use nix::errno::Errno;
use parse::{CpuStats, Global, ParseError};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// 8,192 messages per per-CPU dump: one per possible CPU, and Linux's `NR_CPUS` is at most
/// 8,192 (`conntrack_cpu_messages`, docs/limits.md).
pub const MAX_CPU_MESSAGES: usize = 8192;
/// The bytes of one per-CPU dump: 8,192 messages of well under 256 bytes.
pub const MAX_DUMP_BYTES: usize = MAX_CPU_MESSAGES * 256;

/// Settings of the source, from the command line.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Ask the kernel even when ctnetlink does not look loaded (it may then load it).
    pub allow_module_load: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConntrackError {
    #[error("conntrack is not available: {reason}")]
    Unavailable { reason: String },
    #[error("cannot read {what}")]
    Netlink {
        what: &'static str,
        #[source]
        source: NetlinkError,
    },
    #[error("cannot decode {what}")]
    Decode {
        what: &'static str,
        #[source]
        source: ParseError,
    },
    #[error("the reader thread failed: {reason}")]
    Thread { reason: String },
}

impl SourceError for ConntrackError {
    fn is_unavailable(&self) -> bool {
        matches!(self, ConntrackError::Unavailable { .. })
    }
}

/// What one scrape read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Each CPU's conntrack counters (`parse::CT_STATS`), in the kernel's order.
    pub cpus: Vec<CpuStats>,
    /// Each CPU's expectation counters (`parse::EXP_STATS`).
    pub expect: Vec<CpuStats>,
    /// Entries in the table now.
    pub entries: u32,
    /// The table's limit: `CTA_STATS_GLOBAL_MAX_ENTRIES`, or, from older kernels that do not send
    /// it, `/proc/sys/net/netfilter/nf_conntrack_max`.
    pub max_entries: Option<u64>,
}

/// How the source reads: [`Kernel`] in the daemon, a capture in tests (through
/// [`crate::sources::build::Readers`] as an `Arc<dyn Reader>`). Each receive may wait `timeout`.
pub trait Reader: Send + Sync + 'static {
    fn read(&self, timeout: Duration) -> Result<Snapshot, ConntrackError>;
}

/// Whether ctnetlink is in the kernel, found without asking it (a request would load it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleProbe {
    /// `/sys/module`.
    pub sys_module: PathBuf,
    /// `/proc/modules`.
    pub proc_modules: PathBuf,
    /// `/proc/sys/kernel/osrelease`.
    pub osrelease: PathBuf,
    /// `/lib/modules`.
    pub lib_modules: PathBuf,
}

impl Default for ModuleProbe {
    fn default() -> Self {
        ModuleProbe {
            sys_module: "/sys/module".into(),
            proc_modules: "/proc/modules".into(),
            osrelease: "/proc/sys/kernel/osrelease".into(),
            lib_modules: "/lib/modules".into(),
        }
    }
}

/// What [`ModuleProbe::probe`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// `/sys/module/nf_conntrack_netlink` exists.
    Loaded,
    /// The kernel has no module support: nothing can be loaded, asking is safe.
    NoModules,
    /// `modules.builtin` lists it.
    BuiltIn,
    /// None of these: asking might load it.
    NotLoaded,
}

const MODULE: &str = "nf_conntrack_netlink";

impl ModuleProbe {
    pub fn probe(&self) -> Presence {
        if self.sys_module.join(MODULE).exists() {
            return Presence::Loaded;
        }
        if !self.proc_modules.exists() {
            return Presence::NoModules;
        }
        let release = std::fs::read_to_string(&self.osrelease).unwrap_or_default();
        let builtin = self
            .lib_modules
            .join(release.trim())
            .join("modules.builtin");
        // A few hundred KiB at most; read at most 4 MiB of it.
        let listed = std::fs::File::open(&builtin)
            .map(|f| {
                use std::io::{BufRead, Read};
                std::io::BufReader::new(f.take(4 << 20))
                    .lines()
                    .map_while(Result::ok)
                    .any(|l| l.trim_end().ends_with("/nf_conntrack_netlink.ko"))
            })
            .unwrap_or(false);
        if listed {
            Presence::BuiltIn
        } else {
            Presence::NotLoaded
        }
    }
}

/// The kernel's ctnetlink in the daemon's network namespace.
#[derive(Debug, Clone, Default)]
pub struct Kernel {
    pub probe: ModuleProbe,
    pub allow_module_load: bool,
    /// The fallback for the limit: `/proc/sys/net/netfilter/nf_conntrack_max`.
    pub max_sysctl: PathBuf,
}

impl Kernel {
    pub fn new(allow_module_load: bool) -> Kernel {
        Kernel {
            probe: ModuleProbe::default(),
            allow_module_load,
            max_sysctl: "/proc/sys/net/netfilter/nf_conntrack_max".into(),
        }
    }
}

impl Reader for Kernel {
    fn read(&self, timeout: Duration) -> Result<Snapshot, ConntrackError> {
        if !self.allow_module_load && self.probe.probe() == Presence::NotLoaded {
            return Err(ConntrackError::Unavailable {
                reason: format!(
                    "{MODULE} is not loaded (not in /sys/module nor modules.builtin); not asking \
                     the kernel, which would load it (--collector.conntrack.allow-module-load)"
                ),
            });
        }
        let mut sock = Socket::open(Protocol::Netfilter, timeout).map_err(|e| match e {
            NetlinkError::Open {
                source: Errno::EPROTONOSUPPORT,
                ..
            } => ConntrackError::Unavailable {
                reason: "no netfilter netlink in this kernel".to_owned(),
            },
            source => ConntrackError::Netlink {
                what: "conntrack (no netlink socket)",
                source,
            },
        })?;
        let mut snap = read_stats(&mut sock)?;
        if snap.max_entries.is_none() {
            snap.max_entries = std::fs::read_to_string(&self.max_sysctl)
                .ok()
                .and_then(|s| s.trim().parse().ok());
        }
        Ok(snap)
    }
}

fn failed(what: &'static str, e: DumpError<ParseError>) -> ConntrackError {
    match e {
        DumpError::Netlink(NetlinkError::Kernel { errno, .. })
            if matches!(errno, Errno::EOPNOTSUPP | Errno::ENOENT) =>
        {
            ConntrackError::Unavailable {
                reason: format!("the kernel has no ctnetlink ({errno} for {what})"),
            }
        }
        DumpError::Netlink(source) => ConntrackError::Netlink { what, source },
        DumpError::Decode { source } => ConntrackError::Decode { what, source },
    }
}

/// Reads the statistics through `sock` (a netfilter netlink socket), in its namespace. The
/// limit is `None` when the kernel did not send it.
pub fn read_stats(sock: &mut Socket) -> Result<Snapshot, ConntrackError> {
    sock.set_limits(DumpLimits {
        max_messages: MAX_CPU_MESSAGES,
        max_bytes: MAX_DUMP_BYTES,
    });
    let mut cpus = Vec::new();
    let seq = sock.next_seq();
    sock.dump(&parse::ct_cpu_request(seq), seq, |m| {
        cpus.push(parse::parse_ct_cpu(m)?);
        Ok(())
    })
    .map_err(|e| failed("the per-CPU conntrack statistics", e))?;
    let mut expect = Vec::new();
    let seq = sock.next_seq();
    sock.dump(&parse::exp_cpu_request(seq), seq, |m| {
        expect.push(parse::parse_exp_cpu(m)?);
        Ok(())
    })
    .map_err(|e| failed("the per-CPU expectation statistics", e))?;
    let mut global: Option<Global> = None;
    let seq = sock.next_seq();
    sock.dump(&parse::global_request(seq), seq, |m| {
        global = Some(parse::parse_global(m)?);
        Ok(())
    })
    .map_err(|e| failed("the conntrack table's fill", e))?;
    let global = global.ok_or(ConntrackError::Decode {
        what: "the conntrack table's fill",
        source: ParseError::NoEntries,
    })?;
    Ok(Snapshot {
        cpus,
        expect,
        entries: global.entries,
        max_entries: global.max_entries.map(u64::from),
    })
}

pub struct ConntrackSource {
    reader: Arc<dyn Reader>,
}

impl ConntrackSource {
    /// Reads the kernel.
    pub fn new(cfg: Config) -> Self {
        Self::with_reader(Arc::new(Kernel::new(cfg.allow_module_load)))
    }

    /// Reads through `reader` (a capture in tests).
    pub fn with_reader(reader: Arc<dyn Reader>) -> Self {
        ConntrackSource { reader }
    }
}

impl Source for ConntrackSource {
    type Snapshot = Snapshot;
    type Error = ConntrackError;

    fn name(&self) -> &'static str {
        "conntrack"
    }

    async fn fetch(&self, req: &ScrapeRequest) -> Result<Snapshot, ConntrackError> {
        let timeout = req
            .deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .max(Duration::from_millis(100));
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || reader.read(timeout))
            .await
            .unwrap_or_else(|e| {
                Err(ConntrackError::Thread {
                    reason: e.to_string(),
                })
            })
    }

    fn encode(&self, snapshot: &Snapshot, w: &mut Writer) {
        encode::encode(snapshot, w);
    }
}

/// Whether `path` names an existing file (for tests of [`ModuleProbe`]).
#[cfg(test)]
fn touch(path: &std::path::Path) {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::write(path, b"").unwrap_or_else(|e| panic!("{e}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe_in(dir: &std::path::Path) -> ModuleProbe {
        ModuleProbe {
            sys_module: dir.join("sys/module"),
            proc_modules: dir.join("proc/modules"),
            osrelease: dir.join("proc/osrelease"),
            lib_modules: dir.join("lib/modules"),
        }
    }

    #[test]
    fn the_probe_never_guesses_loaded() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = probe_in(tmp.path());
        // No /proc/modules: a kernel without module support.
        assert_eq!(p.probe(), Presence::NoModules);
        touch(&p.proc_modules);
        assert_eq!(p.probe(), Presence::NotLoaded);
        std::fs::write(&p.osrelease, "6.1.0-test\n").unwrap_or_else(|e| panic!("{e}"));
        let builtin = p.lib_modules.join("6.1.0-test/modules.builtin");
        touch(&builtin);
        std::fs::write(&builtin, "kernel/net/netfilter/nf_conntrack.ko\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.probe(), Presence::NotLoaded);
        std::fs::write(
            &builtin,
            "kernel/net/netfilter/nf_conntrack.ko\nkernel/net/netfilter/nf_conntrack_netlink.ko\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.probe(), Presence::BuiltIn);
        std::fs::remove_file(&builtin).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(p.sys_module.join(MODULE)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.probe(), Presence::Loaded);
    }

    #[test]
    fn not_loaded_is_unavailable_without_a_request() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = probe_in(tmp.path());
        touch(&p.proc_modules);
        let k = Kernel {
            probe: p,
            allow_module_load: false,
            max_sysctl: tmp.path().join("max"),
        };
        let err = k.read(Duration::from_secs(1)).err();
        assert!(
            matches!(&err, Some(e @ ConntrackError::Unavailable { reason }) if e.is_unavailable() && reason.contains("nf_conntrack_netlink is not loaded")),
            "{err:?}"
        );
    }

    #[test]
    fn a_missing_subsystem_is_unavailable() {
        let e = failed(
            "x",
            DumpError::Netlink(NetlinkError::kernel(Errno::EOPNOTSUPP as i32)),
        );
        assert!(e.is_unavailable(), "{e:?}");
        let e = failed(
            "x",
            DumpError::Netlink(NetlinkError::kernel(Errno::EPERM as i32)),
        );
        assert!(!e.is_unavailable(), "{e:?}");
    }
}

/// Captures this host's replies into `tests/fixtures/conntrack/read.bin` (each datagram a
/// big-endian u32 length, then its bytes), with `conntrack -S`, `conntrack -S expect` and
/// `conntrack -C` printed right after. Root; run by hand:
/// `cargo test -p dataplane-collector --lib conntrack::capture -- --ignored`.
#[cfg(test)]
#[test]
#[ignore = "writes the fixtures from this host's kernel"]
fn capture() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conntrack");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let mut sock =
        Socket::open(Protocol::Netfilter, Duration::from_secs(2)).unwrap_or_else(|e| panic!("{e}"));
    sock.start_capture();
    let snap = read_stats(&mut sock).unwrap_or_else(|e| panic!("{e:?}"));
    let bin = crate::netlink::capture::encode(&sock.take_capture());
    std::fs::write(dir.join("read.bin"), bin).unwrap_or_else(|e| panic!("{e}"));
    let run = |args: &[&str]| {
        let out = std::process::Command::new("conntrack")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = format!(
        "# conntrack -S\n{}# conntrack -S expect\n{}# conntrack -C\n{}",
        run(&["-S"]),
        run(&["-S", "expect"]),
        run(&["-C"])
    );
    std::fs::write(dir.join("conntrack-S.txt"), text).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{snap:?}");
}
