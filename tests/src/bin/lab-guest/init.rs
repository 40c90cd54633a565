//! The guest's `/init` (PID 1) and what each scenario runs, in Rust: mounts, hostname,
//! loopback, the scenarios the kernel command line names, each with its modules loaded from
//! the host's plan and its steps run as child processes with a time limit, a
//! `DPC-LAB: PASS|FAIL` line each, then power off. PID 1 must not die (the kernel panics), so
//! everything here reports instead of exiting, and the checks themselves run in children.
//!
//! Also the `ovs-vsctl` shim: the foundation's test bed asks for the userspace datapath
//! (`datapath_type=netdev`); in the lab its tests run on the kernel's, so `lab-guest` called as
//! `ovs-vsctl` rewrites that argument, records that it did, and becomes the real `ovs-vsctl`.

use anyhow::{Context, Result, bail};
use std::ffi::CString;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use testbed::lab::{self, CONSOLE_PREFIX, LIBEXEC, ModuleLoad};

/// Where the shim records each rewrite; `ovs-kernel` fails if none happened.
const REWRITES: &str = "/tmp/dpc-datapath-rewrites";

/// Where the shim sits, first on the OpenFlow tests' `PATH`.
const SHIM_DIR: &str = "/usr/libexec/dpc/shim";

/// `ovs-vswitchd` loses every upcall if started before the guest's uptime reaches this.
const VSWITCHD_UPTIME_S: f64 = 11.0;

/// One thing a scenario does.
enum Step {
    /// Waits until `/proc/uptime` reaches this many seconds.
    WaitUptime(f64),
    /// Writes `/proc/sys/...` (a sysctl, dotted).
    Sysctl(&'static str, &'static str),
    /// Removes a file if it is there.
    Remove(&'static str),
    /// Runs a program of [`LIBEXEC`] with arguments, for at most the given time; with the
    /// `ovs-vsctl` shim first on `PATH` and the root-only tests required when `tests` is set.
    Run {
        program: &'static str,
        args: &'static [&'static str],
        limit: Duration,
        tests: bool,
    },
    /// The shim rewrote at least one bridge's datapath type (the OpenFlow tests really ran on
    /// the kernel datapath).
    ExpectRewrites,
}

fn run(program: &'static str, args: &'static [&'static str], secs: u64) -> Step {
    Step::Run {
        program,
        args,
        limit: Duration::from_secs(secs),
        tests: false,
    }
}

fn tests(program: &'static str, secs: u64) -> Step {
    Step::Run {
        program,
        args: &["--test-threads=1"],
        limit: Duration::from_secs(secs),
        tests: true,
    }
}

/// What scenario `name` runs, in order (stopping at the first failure); `None` for a name the
/// guest does not know.
fn steps(name: &str) -> Option<Vec<Step>> {
    use Step::*;
    Some(match name {
        "ebpf-kernel" => vec![
            WaitUptime(VSWITCHD_UPTIME_S),
            run("lab-guest", &["ebpf-kernel"], 600),
        ],
        "ipvs-absent" => vec![run("lab-guest", &["ipvs-absent"], 300)],
        "datapath-absent" => vec![run("lab-guest", &["datapath-absent"], 120)],
        "datapath" => vec![
            WaitUptime(VSWITCHD_UPTIME_S),
            run("lab-guest", &["datapath"], 300),
        ],
        "ipvs" => vec![run("lab-guest", &["ipvs"], 300)],
        // The pods are IPv4-only: without IPv6 their interfaces send no router solicitations
        // or MLD reports, which would otherwise arrive seconds later, between the tests' scrape
        // and their ovs-ofctl read (the emulated guest is slow enough for that to happen).
        "ovs-kernel" => vec![
            Sysctl("net.core.devconf_inherit_init_net", "1"),
            Sysctl("net.ipv6.conf.all.disable_ipv6", "1"),
            Sysctl("net.ipv6.conf.default.disable_ipv6", "1"),
            WaitUptime(VSWITCHD_UPTIME_S),
            Remove(REWRITES),
            tests("openflow-tests", 900),
            tests("flow-text-tests", 600),
            ExpectRewrites,
            run("lab-guest", &["ovs-kernel"], 300),
        ],
        "sriov" => vec![run("lab-guest", &["sriov"], 300)],
        "bench-ipvs" => vec![run("lab-guest", &["bench-ipvs", "1000", "4", "20"], 1200)],
        _ => return None,
    })
}

fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

fn say(line: std::fmt::Arguments<'_>) {
    println!("{CONSOLE_PREFIX}{line}");
}

fn mount(fstype: &str, target: &str) -> Result<()> {
    std::fs::create_dir_all(target)?;
    nix::mount::mount(
        Some(fstype),
        target,
        Some(fstype),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .with_context(|| format!("mount {fstype} on {target}"))
}

/// The environment of every step (PID 1's own is the kernel's).
const ENV: &[(&str, &str)] = &[
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/bb",
    ),
    ("HOME", "/root"),
    ("TMPDIR", "/tmp"),
    ("RUST_BACKTRACE", "1"),
    ("DPC", LIBEXEC),
];

/// Mounts, directories, hostname and loopback.
fn prepare() -> Result<()> {
    mount("proc", "/proc")?;
    mount("sysfs", "/sys")?;
    mount("devtmpfs", "/dev")?;
    mount("devpts", "/dev/pts")?;
    std::fs::create_dir_all("/dev/shm")?;
    mount("tmpfs", "/run")?;
    // /tmp stays the initramfs's own (already in memory): a tmpfs there would hide files the
    // image puts under a workspace that lives in /tmp (a CI checkout), like the flow corpus.
    for d in ["/run/netns", "/run/openvswitch", "/var/log/openvswitch"] {
        std::fs::create_dir_all(d)?;
    }
    mount("bpf", "/sys/fs/bpf")?;
    mount("tracefs", "/sys/kernel/tracing")?;
    nix::unistd::sethostname("lab").context("sethostname")?;
    let lo = Command::new("/usr/bin/ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .context("/usr/bin/ip")?;
    if !lo.success() {
        bail!("ip link set lo up: {lo}");
    }
    Ok(())
}

/// Loads one module unless it is there; a module that does not load is reported, and the
/// scenario's own checks say what it lacks.
fn load(release: &str, m: &ModuleLoad) {
    if Path::new("/sys/module").join(&m.name).exists() {
        return;
    }
    let path = PathBuf::from(format!("/usr/lib/modules/{release}")).join(&m.file);
    let loaded = (|| -> Result<()> {
        let file = std::fs::File::open(&path).with_context(|| path.display().to_string())?;
        let params = CString::new(m.params.as_str())?;
        // The kernel decompresses `.ko.xz` itself (MODULE_INIT_COMPRESSED_FILE).
        let flags = if m.file.ends_with(".xz") || m.file.ends_with(".zst") {
            nix::kmod::ModuleInitFlags::from_bits_retain(4)
        } else {
            nix::kmod::ModuleInitFlags::empty()
        };
        nix::kmod::finit_module(&file, &params, flags)
            .with_context(|| format!("finit_module {}", path.display()))?;
        Ok(())
    })();
    if let Err(e) = loaded {
        say(format_args!("module {} did not load: {e:#}", m.name));
    }
}

/// Runs a child for at most `limit`; killed when it overruns.
fn run_child(mut cmd: Command, what: &str, limit: Duration) -> Result<()> {
    let mut child = cmd.spawn().with_context(|| format!("start {what}"))?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                return Ok(());
            }
            bail!("{what}: {status}");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what}: killed after {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn step(s: &Step) -> Result<()> {
    match s {
        Step::WaitUptime(secs) => {
            while uptime() < *secs {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Step::Sysctl(key, value) => {
            let path = Path::new("/proc/sys").join(key.replace('.', "/"));
            std::fs::write(&path, value).with_context(|| format!("sysctl {key}={value}"))?;
        }
        Step::Remove(path) => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("rm {path}"));
            }
            _ => {}
        },
        Step::Run {
            program,
            args,
            limit,
            tests,
        } => {
            let mut cmd = Command::new(Path::new(LIBEXEC).join(program));
            cmd.args(*args).env_clear().envs(ENV.iter().copied());
            if *tests {
                let path = ENV
                    .iter()
                    .find(|(k, _)| *k == "PATH")
                    .map_or("", |(_, v)| *v);
                cmd.env("PATH", format!("{SHIM_DIR}:{path}"))
                    .env("DPC_REQUIRE_ROOT_TESTS", "1");
            }
            run_child(cmd, &format!("{program} {}", args.join(" ")), *limit)?;
        }
        Step::ExpectRewrites => {
            let n = std::fs::read_to_string(REWRITES)
                .map(|s| s.lines().count())
                .unwrap_or(0);
            if n == 0 {
                bail!(
                    "the ovs-vsctl shim rewrote no datapath type: the OpenFlow tests did not use the kernel datapath"
                );
            }
            println!("datapath_type=system for {n} bridges of the OpenFlow tests");
        }
    }
    Ok(())
}

/// Reaps children of children that PID 1 inherited (a daemon a test left behind).
fn reap_orphans() {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    while let Ok(s) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
}

/// PID 1: never returns.
pub fn init() -> ! {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Err(e) = prepare() {
        say(format_args!("init failed: {e:#}"));
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    say(format_args!(
        "BOOTED {release} uptime={:.2}s cpus={cpus}",
        uptime()
    ));
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let wanted: Vec<String> = cmdline
        .split_whitespace()
        .filter_map(|a| a.strip_prefix(lab::CMDLINE_SCENARIOS))
        .flat_map(|v| v.split(',').map(str::to_owned).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    let plan = std::fs::read_to_string(lab::PLAN_PATH)
        .map_err(anyhow::Error::from)
        .and_then(|t| lab::read_plan(&t));
    let plan = match plan {
        Ok(p) => p,
        Err(e) => {
            say(format_args!("no module plan: {e:#}"));
            Vec::new()
        }
    };
    for name in &wanted {
        let t0 = uptime();
        say(format_args!("START {name} uptime={t0:.2}s"));
        let result = match steps(name) {
            None => Err(anyhow::anyhow!("no such scenario in the guest")),
            Some(list) => {
                for m in plan.iter().filter(|m| &m.scenario == name) {
                    load(&release, m);
                }
                list.iter().try_for_each(step)
            }
        };
        reap_orphans();
        let secs = uptime() - t0;
        match result {
            Ok(()) => say(format_args!("PASS {name} {secs:.1}")),
            Err(e) => {
                println!("{name}: {e:#}");
                say(format_args!("FAIL {name} {secs:.1}"));
            }
        }
    }
    say(format_args!("END uptime={:.2}s", uptime()));
    nix::unistd::sync();
    let e = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    say(format_args!("poweroff failed: {e:?}"));
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// `ovs-vsctl ARGS`: `datapath_type=netdev` becomes `datapath_type=system`, each rewrite a line
/// in [`REWRITES`]; then the real `/usr/bin/ovs-vsctl` with the arguments.
pub fn vsctl_shim(args: Vec<String>) -> ! {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| {
            if a == "datapath_type=netdev" {
                let logged = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(REWRITES)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, b"rewritten\n"));
                if let Err(e) = logged {
                    eprintln!("ovs-vsctl shim: cannot record the rewrite in {REWRITES}: {e}");
                }
                "datapath_type=system".to_owned()
            } else {
                a
            }
        })
        .collect();
    let e = Command::new("/usr/bin/ovs-vsctl").args(&args).exec();
    eprintln!("ovs-vsctl shim: cannot run /usr/bin/ovs-vsctl: {e}");
    std::process::exit(127);
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_scenario_has_steps() {
        for sc in testbed::lab::SCENARIOS {
            assert!(super::steps(sc.name).is_some(), "{}", sc.name);
        }
        assert!(super::steps("nonesuch").is_none());
    }
}
