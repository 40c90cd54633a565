//! The guest side of `cargo xtask lab`: runs inside the QEMU guest (Debian's kernel, a busybox
//! initramfs) as root, checks one scenario against the real kernel and exits non-zero with the
//! reasons if anything differs. Statically linked; the lab's init calls it by full path.
//!
//! ```text
//! lab-guest ipvs           IPVS services in two network namespaces, real connections, every
//!                          counter served equal to ipvsadm's
//! lab-guest ipvs-absent    no ip_vs module: the source is unavailable, quietly, and loads nothing
//! lab-guest ovs-kernel     the OVS kernel datapath really carries a bridge's traffic
//! lab-guest datapath-absent  no openvswitch module: the datapath source is unavailable and
//!                          loads nothing
//! lab-guest datapath       the datapath source over netlink equal to ovs-dpctl show -s, a
//!                          conntrack zone limit with its live count
//! lab-guest ebpf-kernel    the eBPF kprobes on the OVS kernel datapath and IPVS (ip_vs loaded
//!                          after the daemon): every count equal to the kernel's own
//! lab-guest sriov          the SR-IOV source's RTM_GETLINK dump with the VF mask on every link,
//!                          a real PCI NIC included; vfstats unavailable without VFs
//! lab-guest bench-ipvs     1,000 services x 4 destinations: scrape versus /proc/net/ip_vs
//! lab-guest serve PORT...  (helper) TCP and UDP servers on [::]:PORT, run in a real server's namespace
//! lab-guest clients ...    (helper) client connections, run in a client's namespace
//! lab-guest hold ADDR N    (helper) N connections held open until killed
//! ```
//!
//! As PID 1 it is the guest's `/init` (`init.rs`: mounts, modules, each scenario's steps, a
//! `DPC-LAB: PASS|FAIL` line each, power off); called as `ovs-vsctl` it is the shim that puts
//! the OpenFlow tests' bridges on the kernel datapath.

mod absent;
mod bench;
mod datapath;
mod ebpf;
mod init;
mod ipvs;
mod ipvsadm;
mod net;
mod ovs;
mod sriov;

use anyhow::{Context, Result, bail};
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use testbed::lab::LIBEXEC;

pub fn daemon_path() -> PathBuf {
    Path::new(LIBEXEC).join("dataplane-collector")
}

pub fn self_path() -> PathBuf {
    Path::new(LIBEXEC).join("lab-guest")
}

fn main() {
    // The guest's /init is this binary; so is the `ovs-vsctl` shim of the OpenFlow tests.
    let argv0 = std::env::args().next().unwrap_or_default();
    if std::process::id() == 1 {
        init::init();
    }
    if Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n == "ovs-vsctl")
    {
        init::vsctl_shim(std::env::args().skip(1).collect());
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!(
            "usage: lab-guest ipvs|ipvs-absent|datapath-absent|datapath|ovs-kernel|ebpf-kernel|sriov|bench-ipvs|serve|clients|hold"
        );
        std::process::exit(2);
    };
    let start = Instant::now();
    let result = match cmd.as_str() {
        "ipvs" => ipvs::run(),
        "ipvs-absent" => absent::run(),
        "datapath-absent" => datapath::absent(),
        "datapath" => datapath::run(),
        "ovs-kernel" => ovs::run(),
        "ebpf-kernel" => ebpf::run(),
        "sriov" => sriov::run(),
        "bench-ipvs" => bench::run(rest),
        "serve" => net::serve(rest),
        "clients" => net::clients(rest),
        "hold" => net::hold(rest),
        other => Err(anyhow::anyhow!("unknown command {other}")),
    };
    match result {
        Ok(()) => {
            if !matches!(cmd.as_str(), "serve" | "clients" | "hold") {
                println!(
                    "lab-guest {cmd}: ok ({:.1} s)",
                    start.elapsed().as_secs_f64()
                );
            }
        }
        Err(e) => {
            println!("lab-guest {cmd}: FAILED: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Runs a command; its stdout, or an error with its stderr.
pub fn run(prog: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {prog}"))?;
    if !out.status.success() {
        bail!(
            "{prog} {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command with `input` on its standard input.
pub fn run_with_input(prog: &str, args: &[&str], input: &str) -> Result<String> {
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {prog}"))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{prog} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip ARGS` (iproute2's, not busybox's).
pub fn ip(args: &[&str]) -> Result<String> {
    run("/usr/bin/ip", args)
}

/// `ipvsadm ARGS`, in network namespace `netns` (the guest's own if `None`).
pub fn ipvsadm_in(netns: Option<&str>, args: &[&str]) -> Result<String> {
    match netns {
        None => run("/usr/sbin/ipvsadm", args),
        Some(ns) => {
            let mut full = vec!["netns", "exec", ns, "/usr/sbin/ipvsadm"];
            full.extend_from_slice(args);
            ip(&full)
        }
    }
}

/// A child process, killed and reaped when dropped.
pub struct Proc {
    pub child: Child,
    pub what: String,
}

impl Proc {
    pub fn spawn(what: &str, cmd: &mut Command) -> Result<Proc> {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {what}"))?;
        Ok(Proc {
            child,
            what: what.to_owned(),
        })
    }

    /// Spawns with stdout piped and waits for a line equal to `ready`.
    pub fn spawn_until(what: &str, cmd: &mut Command, ready: &str) -> Result<Proc> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {what}"))?;
        let out = child.stdout.take().context("stdout")?;
        let mut lines = std::io::BufReader::new(out).lines();
        let proc = Proc {
            child,
            what: what.to_owned(),
        };
        loop {
            match lines.next() {
                Some(Ok(l)) if l.trim() == ready => break,
                Some(Ok(_)) => continue,
                Some(Err(e)) => bail!("{what}: {e}"),
                None => bail!("{what} exited before it was ready"),
            }
        }
        // Keep draining so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(proc)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real daemon binary, listening on `127.0.0.1:port`, its log in `/tmp/daemon-<port>.log`.
pub struct Daemon {
    pub proc: Proc,
    pub port: u16,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(port: u16, args: &[&str]) -> Result<Daemon> {
        let log = PathBuf::from(format!("/tmp/daemon-{port}.log"));
        let file = std::fs::File::create(&log)?;
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(daemon_path());
        // No rate limit: the checks scrape back to back.
        cmd.args(["--web.listen-address", &listen, "--web.rate-limit", "0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(file);
        let d = Daemon {
            proc: Proc::spawn("dataplane-collector", &mut cmd)?,
            port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if d.get("/healthz").is_ok_and(|(s, _)| s == 200) {
                return Ok(d);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "the daemon did not answer /healthz on {listen}: {}",
            std::fs::read_to_string(&d.log).unwrap_or_default()
        )
    }

    pub fn get(&self, path: &str) -> Result<(u16, String)> {
        testbed::daemon::get(&format!("http://127.0.0.1:{}{path}", self.port))
    }

    pub fn metrics(&self) -> Result<String> {
        let (status, body) = self.get("/metrics")?;
        if status != 200 {
            bail!("/metrics answered {status}: {body}");
        }
        Ok(body)
    }
}

/// `promtool check metrics` on `text` (promtool is always in the guest image).
pub fn promtool_check(text: &str) -> Result<()> {
    testbed::promtool::check_metrics_required(text).map_err(anyhow::Error::msg)
}

/// Prints `bytes` as fixture lines the host collects (`DPC_UPDATE_FIXTURES=1`).
pub fn emit_fixture(name: &str, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = std::io::stdout().lock();
    for chunk in bytes.chunks(512) {
        let mut line = String::with_capacity(chunk.len() * 2);
        for b in chunk {
            line.push(HEX[usize::from(b >> 4)] as char);
            line.push(HEX[usize::from(b & 0xf)] as char);
        }
        let _ = writeln!(out, "DPC-LAB-FIXTURE {name} {line}");
    }
    if bytes.is_empty() {
        let _ = writeln!(out, "DPC-LAB-FIXTURE {name} ");
    }
}

pub fn module_loaded(name: &str) -> bool {
    Path::new("/sys/module").join(name).exists()
}

/// Polls `f` every 200 ms until it returns `Some`, for at most `limit`.
pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
