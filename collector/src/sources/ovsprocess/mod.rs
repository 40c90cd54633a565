//! The `ovsprocess` source: process figures of Open vSwitch's two daemons, ovs-vswitchd and
//! ovsdb-server — CPU time, memory, file descriptors, threads, start time — read from procfs at
//! scrape time, plus the size of ovsdb-server's database file. It never talks to the daemons,
//! so it keeps working when one hangs (which is when these figures matter): the `vswitchd`
//! source is separate on purpose.
//!
//! fetch (the pidfiles `ovs-vswitchd.pid` and `ovsdb-server.pid` in `--ovs.rundir`, then per pid
//! `/proc/PID/{comm,stat,status,limits,fd/}` and `/proc/stat`'s `btime`) → [`Snapshot`] →
//! encode (`encode.rs`). The parsers (`parse.rs`) are pure and tested on files captured from
//! the real daemons. Every file is read within [`MAX_PROCFS_FILE`] bytes and the fd directory
//! within [`MAX_FD_ENTRIES`] entries (docs/limits.md).
//!
//! **Absent is not an error.** No `--ovs.rundir`, or neither pidfile in it (Open vSwitch is not
//! on this node, or both daemons exited cleanly, which removes the pidfiles): the source is
//! unavailable. One pidfile missing: no series for that daemon. A pidfile whose pid is dead, or
//! was reused by another program (its `comm` is not the daemon's): `ovs_process_up` 0 and no
//! other series for that daemon — what a killed daemon leaves behind; a zombie (exited, not yet
//! reaped) is down too. A pidfile that does not hold a pid fails the scrape, and the other
//! daemon is still read. A restarted daemon is followed at the next scrape (the pidfile is read
//! every time).

mod encode;
pub mod flags;
pub mod parse;

use crate::exposition::Writer;
use crate::registry::{ScrapeRequest, Source, SourceError, Status};
use crate::unixctl::{self, UnixctlError};
use parse::ParseError;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

/// The daemons, by their pidfile's and process's (`comm`) name.
pub const DAEMONS: [&str; 2] = ["ovs-vswitchd", "ovsdb-server"];

/// Largest procfs file read (`/proc/PID/status` is ≈1.5 KiB, `/proc/stat` a few KiB per CPU).
pub const MAX_PROCFS_FILE: usize = 64 * 1024;

/// Most `/proc/PID/fd` entries counted: the kernel's default `fs.nr_open`, above which no
/// process can hold descriptors unless the node raised it.
pub const MAX_FD_ENTRIES: usize = 1 << 20;

/// Settings of the source, from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--ovs.rundir`, where the pidfiles are.
    pub rundir: PathBuf,
    /// `--collector.ovsprocess.procfs`.
    pub procfs: PathBuf,
    /// `--collector.ovsprocess.db-file`.
    pub db_file: PathBuf,
    /// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of `/proc/PID/stat`'s times.
    pub clk_tck: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum OvsprocessError {
    #[error("{}: no Open vSwitch run directory", .0.display())]
    NoRundir(PathBuf),
    #[error("neither ovs-vswitchd.pid nor ovsdb-server.pid is in {}", .0.display())]
    NoPidfiles(PathBuf),
    #[error(transparent)]
    Pidfile(#[from] UnixctlError),
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is larger than {limit} bytes", path.display())]
    TooLarge { path: PathBuf, limit: usize },
    #[error("{} has more than {limit} entries", path.display())]
    TooManyFds { path: PathBuf, limit: usize },
    #[error("{}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: ParseError,
    },
    #[error("the procfs reader task failed")]
    Join(#[from] tokio::task::JoinError),
}

impl SourceError for OvsprocessError {
    fn is_unavailable(&self) -> bool {
        matches!(
            self,
            OvsprocessError::NoRundir(_) | OvsprocessError::NoPidfiles(_)
        )
    }
}

impl OvsprocessError {
    /// The process is gone (it exited between two reads): ENOENT, or ESRCH for a dying one.
    fn is_gone(&self) -> bool {
        matches!(self, OvsprocessError::Io { source, .. }
            if source.kind() == ErrorKind::NotFound || source.raw_os_error() == Some(libc::ESRCH))
    }
}

/// The figures of a running daemon; each is `None` when its file could not be read (the
/// reason is in [`Snapshot::failures`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub user_seconds: Option<f64>,
    pub system_seconds: Option<f64>,
    pub virtual_bytes: Option<u64>,
    /// Unix time, seconds.
    pub start_time: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

/// One daemon whose pidfile exists.
#[derive(Debug, Clone, PartialEq)]
pub struct Process {
    pub daemon: &'static str,
    pub pid: u32,
    /// `None`: the pid is dead or another program's (`ovs_process_up` 0).
    pub figures: Option<Figures>,
}

/// What one scrape read.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub processes: Vec<Process>,
    /// The database file's size; `None` when there is no such file.
    pub db_size: Option<u64>,
    /// Files that should have been read and were not (the scrape is then marked failed).
    pub failures: Vec<String>,
}

#[derive(Debug)]
pub struct OvsprocessSource {
    cfg: Config,
}

impl OvsprocessSource {
    pub fn new(cfg: Config) -> Self {
        OvsprocessSource { cfg }
    }
}

/// Reads a procfs file within [`MAX_PROCFS_FILE`] bytes.
fn read_bounded(path: &Path) -> Result<String, OvsprocessError> {
    let io = |source| OvsprocessError::Io {
        path: path.to_owned(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut buf = Vec::with_capacity(4096);
    f.take(MAX_PROCFS_FILE as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(io)?;
    if buf.len() > MAX_PROCFS_FILE {
        crate::limits::exceeded("procfs_file_bytes");
        return Err(OvsprocessError::TooLarge {
            path: path.to_owned(),
            limit: MAX_PROCFS_FILE,
        });
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn parsed<T>(path: &Path, r: Result<T, ParseError>) -> Result<T, OvsprocessError> {
    r.map_err(|source| OvsprocessError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Entries of `/proc/PID/fd`, within [`MAX_FD_ENTRIES`].
fn count_fds(dir: &Path) -> Result<u64, OvsprocessError> {
    let io = |source| OvsprocessError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut n = 0usize;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        entry.map_err(io)?;
        n += 1;
        if n > MAX_FD_ENTRIES {
            crate::limits::exceeded("procfs_fd_entries");
            return Err(OvsprocessError::TooManyFds {
                path: dir.to_owned(),
                limit: MAX_FD_ENTRIES,
            });
        }
    }
    Ok(n as u64)
}

/// The kernel keeps `comm` to 15 bytes.
fn is_daemon(comm: &str, daemon: &str) -> bool {
    comm == &daemon[..daemon.len().min(15)]
}

/// Reads one daemon's files. `Ok(None)`: the pid is dead or not the daemon's. An error that is
/// not the process vanishing is pushed to `failures` and leaves that figure `None`.
fn read_process(
    cfg: &Config,
    daemon: &'static str,
    pid: u32,
    btime: &mut Option<Result<u64, String>>,
    failures: &mut Vec<String>,
) -> Option<Figures> {
    let dir = cfg.procfs.join(pid.to_string());
    let comm_path = dir.join("comm");
    match read_bounded(&comm_path) {
        Ok(c) if is_daemon(parse::comm(&c), daemon) => {}
        Ok(c) => {
            tracing::debug!(
                daemon,
                pid,
                comm = parse::comm(&c),
                "pidfile names another program"
            );
            return None;
        }
        Err(e) if e.is_gone() => return None,
        Err(e) => {
            failures.push(crate::registry::error_chain(&e));
            return None;
        }
    }
    let mut f = Figures::default();
    let mut gone = false;
    let mut note = |e: OvsprocessError, failures: &mut Vec<String>| {
        if e.is_gone() {
            gone = true;
        } else {
            failures.push(crate::registry::error_chain(&e));
        }
    };

    let path = dir.join("stat");
    match read_bounded(&path).and_then(|t| parsed(&path, parse::stat(&t))) {
        // The pid was reused between reading comm and stat, or the daemon is a zombie (exited,
        // not yet reaped: no memory, no descriptors left).
        Ok(s) if !is_daemon(&s.comm, daemon) || s.is_dead() => return None,
        Ok(s) => {
            let tck = cfg.clk_tck as f64;
            f.user_seconds = Some(s.utime as f64 / tck);
            f.system_seconds = Some(s.stime as f64 / tck);
            f.virtual_bytes = Some(s.vsize);
            let boot = btime.get_or_insert_with(|| {
                let p = cfg.procfs.join("stat");
                read_bounded(&p)
                    .and_then(|t| parsed(&p, parse::btime(&t)))
                    .map_err(|e| crate::registry::error_chain(&e))
            });
            match boot {
                Ok(b) => f.start_time = Some(*b as f64 + s.starttime as f64 / tck),
                // Reported once per scrape, with the first daemon.
                Err(e) => failures.push(std::mem::take(e)),
            }
            f.threads = Some(s.num_threads);
        }
        Err(e) => note(e, failures),
    }
    let path = dir.join("status");
    match read_bounded(&path).and_then(|t| parsed(&path, parse::status(&t))) {
        Ok(s) => {
            f.threads = Some(s.threads);
            f.resident_bytes = s.vm_rss;
        }
        Err(e) => note(e, failures),
    }
    let path = dir.join("limits");
    match read_bounded(&path).and_then(|t| parsed(&path, parse::max_open_files(&t))) {
        Ok(m) => f.max_fds = m,
        Err(e) => note(e, failures),
    }
    match count_fds(&dir.join("fd")) {
        Ok(n) => f.open_fds = Some(n),
        Err(e) => note(e, failures),
    }
    if gone {
        return None;
    }
    Some(f)
}

/// Everything after the pidfiles: blocking file system reads.
fn read_procfs(cfg: &Config, pids: &[(&'static str, u32)]) -> Snapshot {
    let mut s = Snapshot::default();
    let mut btime = None;
    for &(daemon, pid) in pids {
        let figures = read_process(cfg, daemon, pid, &mut btime, &mut s.failures);
        s.processes.push(Process {
            daemon,
            pid,
            figures,
        });
    }
    match std::fs::metadata(&cfg.db_file) {
        Ok(m) => s.db_size = Some(m.len()),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(source) => s
            .failures
            .push(crate::registry::error_chain(&OvsprocessError::Io {
                path: cfg.db_file.clone(),
                source,
            })),
    }
    s
}

impl Source for OvsprocessSource {
    type Snapshot = Snapshot;
    type Error = OvsprocessError;

    fn name(&self) -> &'static str {
        flags::NAME
    }

    async fn fetch(&self, _req: &ScrapeRequest) -> Result<Snapshot, OvsprocessError> {
        let rundir = &self.cfg.rundir;
        if !tokio::fs::try_exists(rundir).await.unwrap_or(false) {
            return Err(OvsprocessError::NoRundir(rundir.clone()));
        }
        let mut pids = Vec::with_capacity(DAEMONS.len());
        let mut bad = Vec::new();
        for daemon in DAEMONS {
            let pidfile = rundir.join(format!("{daemon}.pid"));
            match unixctl::read_pidfile(&pidfile).await {
                Ok(Some(pid)) => pids.push((daemon, pid)),
                Ok(None) => {}
                // The other daemon is still read.
                Err(e) => bad.push(crate::registry::error_chain(&OvsprocessError::Pidfile(e))),
            }
        }
        if pids.is_empty() && bad.is_empty() {
            return Err(OvsprocessError::NoPidfiles(rundir.clone()));
        }
        let cfg = self.cfg.clone();
        let mut s = tokio::task::spawn_blocking(move || read_procfs(&cfg, &pids)).await?;
        bad.append(&mut s.failures);
        s.failures = bad;
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

    const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ovsprocess");

    fn cfg(procfs: &Path) -> Config {
        Config {
            rundir: PathBuf::from("/nonexistent"),
            procfs: procfs.to_owned(),
            db_file: Path::new(FIX).join("conf.db"),
            clk_tck: 100,
        }
    }

    #[test]
    fn reads_the_captured_daemons() {
        let c = cfg(&Path::new(FIX).join("proc"));
        let s = read_procfs(&c, &[("ovs-vswitchd", 19628), ("ovsdb-server", 19625)]);
        assert!(s.failures.is_empty(), "{:?}", s.failures);
        let v = s.processes[0].figures.clone().unwrap_or_default();
        assert_eq!(
            v,
            Figures {
                user_seconds: Some(0.0),
                system_seconds: Some(0.02),
                virtual_bytes: Some(403_124_224),
                start_time: Some(1_796_409_489.0 + 444.86),
                resident_bytes: Some(17736 * 1024),
                threads: Some(6),
                open_fds: Some(42),
                max_fds: Some(20000),
            }
        );
        assert_eq!(
            s.processes[1].figures.as_ref().and_then(|f| f.open_fds),
            Some(23)
        );
        assert_eq!(s.db_size, Some(16747));
    }

    #[test]
    fn a_dead_or_reused_pid_is_down_without_a_failure() {
        let c = cfg(&Path::new(FIX).join("proc"));
        // 19625 is ovsdb-server's, not ovs-vswitchd's; 1 is not in the fixture tree.
        let s = read_procfs(&c, &[("ovs-vswitchd", 19625), ("ovsdb-server", 1)]);
        assert!(s.failures.is_empty(), "{:?}", s.failures);
        assert!(s.processes.iter().all(|p| p.figures.is_none()));
    }

    #[tokio::test]
    async fn a_bad_pidfile_fails_the_scrape_but_not_the_other_daemon() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let w = |f: &str, text: &str| {
            std::fs::write(dir.path().join(f), text).unwrap_or_else(|e| panic!("{e}"));
        };
        w("ovs-vswitchd.pid", &"1".repeat(1000));
        w("ovsdb-server.pid", "19625\n");
        let mut c = cfg(&Path::new(FIX).join("proc"));
        c.rundir = dir.path().to_owned();
        let src = OvsprocessSource::new(c);
        let req =
            ScrapeRequest::new(tokio::time::Instant::now() + std::time::Duration::from_secs(5));
        let before = crate::limits::count("pidfile_bytes");
        let s = src.fetch(&req).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(crate::limits::count("pidfile_bytes") > before);
        assert_eq!(s.failures.len(), 1, "{:?}", s.failures);
        assert!(
            s.failures[0].contains("ovs-vswitchd.pid"),
            "{:?}",
            s.failures
        );
        assert_eq!(s.processes.len(), 1);
        assert_eq!(s.processes[0].daemon, "ovsdb-server");
        assert!(s.processes[0].figures.is_some());

        // Neither pidfile: unavailable; no run directory: unavailable.
        std::fs::remove_file(dir.path().join("ovs-vswitchd.pid")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::remove_file(dir.path().join("ovsdb-server.pid")).unwrap_or_else(|e| panic!("{e}"));
        assert!(src.fetch(&req).await.is_err_and(|e| e.is_unavailable()));
        let gone = OvsprocessSource::new(cfg(dir.path()));
        assert!(gone.fetch(&req).await.is_err_and(|e| e.is_unavailable()));
    }

    #[test]
    fn a_zombie_is_down() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("7");
        std::fs::create_dir_all(p.join("fd")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(p.join("comm"), "ovsdb-server\n").unwrap_or_else(|e| panic!("{e}"));
        let stat = std::fs::read_to_string(Path::new(FIX).join("proc/19625/stat"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(p.join("stat"), stat.replacen(") S ", ") Z ", 1))
            .unwrap_or_else(|e| panic!("{e}"));
        let s = read_procfs(&cfg(dir.path()), &[("ovsdb-server", 7)]);
        assert!(s.failures.is_empty(), "{:?}", s.failures);
        assert_eq!(s.processes[0].figures, None);
    }

    #[test]
    fn an_oversized_file_is_a_counted_failure() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("7");
        std::fs::create_dir_all(p.join("fd")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(p.join("comm"), "ovsdb-server\n").unwrap_or_else(|e| panic!("{e}"));
        for f in ["status", "limits"] {
            std::fs::copy(Path::new(FIX).join("proc/19625").join(f), p.join(f))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(p.join("stat"), vec![b'7'; MAX_PROCFS_FILE + 1])
            .unwrap_or_else(|e| panic!("{e}"));
        let before = crate::limits::count("procfs_file_bytes");
        let s = read_procfs(&cfg(dir.path()), &[("ovsdb-server", 7)]);
        assert!(crate::limits::count("procfs_file_bytes") > before);
        assert!(
            s.failures.iter().any(|f| f.contains("larger than 65536")),
            "{:?}",
            s.failures
        );
        // What could be read is still served: the (empty) fd directory.
        assert_eq!(
            s.processes[0].figures.as_ref().and_then(|f| f.open_fds),
            Some(0)
        );
    }
}
