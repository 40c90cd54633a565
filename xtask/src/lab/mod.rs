//! `cargo xtask lab [SCENARIO…]`: Debian's stock kernel under QEMU with a busybox initramfs, for
//! what the host kernel cannot do (Open vSwitch kernel datapath, IPVS, kprobes).
//!
//! One run: resolve and cache the kernel package (`kernel.rs`), build the project's binaries
//! statically (`artifacts.rs`), assemble one initramfs with them, the Debian tools the
//! scenarios call and the modules they need (`image.rs`), boot it once under
//! `qemu-system-x86_64 -accel tcg` (`qemu.rs`) and run the scenarios in order in that boot. The
//! guest's init prints `DPC-LAB: PASS|FAIL <scenario>` per scenario and powers off; a scenario
//! without a line failed (the guest died or timed out). Everything the guest printed is in
//! `target/lab/console.log`.
//!
//! The scenarios and the module plan are shared with the guest (`testbed::lab`); the guest's
//! `/init` is `lab-guest` (tests/src/bin/lab-guest/init.rs), no shell script.
//!
//! Facts the scenarios respect: the kernel boots in about 5 s; `ovs-vswitchd` loses every
//! upcall if started before the guest's uptime reaches 11 s; IPVS's counters reach netlink and
//! `ipvsadm` on the estimator's 2 s timer.

mod artifacts;
mod image;
mod kernel;
mod qemu;

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use testbed::lab::{SCENARIOS, Scenario};

/// Debian packages the lab needs on the host, with a program that shows each is there.
pub const LAB_PACKAGES: &[(&str, &str)] = &[
    ("qemu-system-x86", "qemu-system-x86_64"),
    ("busybox-static", "busybox"),
    ("kmod", "depmod"),
    ("ipvsadm", "ipvsadm"),
    ("openvswitch-switch", "ovs-vswitchd"),
    ("iproute2", "ip"),
    ("iputils-ping", "ping"),
    ("prometheus", "promtool"),
    ("python3", "python3.11"),
];

fn lab_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"))
        .join("lab")
}

fn select(names: &[String], all: impl Fn(&Scenario) -> bool) -> Result<Vec<&'static Scenario>> {
    for n in names {
        if !SCENARIOS.iter().any(|s| s.name == n) {
            let known: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
            bail!("unknown lab scenario {n:?} (known: {})", known.join(", "));
        }
    }
    Ok(SCENARIOS
        .iter()
        .filter(|s| {
            if names.is_empty() {
                all(s)
            } else {
                names.iter().any(|n| n == s.name)
            }
        })
        .collect())
}

/// Debian's paths of the tools the scenarios run in the guest.
const GUEST_TOOLS: &[&str] = &[
    "/usr/sbin/ipvsadm",
    "/usr/bin/ip",
    "/usr/sbin/tc",
    "/usr/bin/ping",
    "/usr/bin/promtool",
    "/usr/bin/python3",
    "/usr/sbin/ovsdb-server",
    "/usr/sbin/ovs-vswitchd",
    "/usr/bin/ovs-vsctl",
    "/usr/bin/ovs-ofctl",
    "/usr/bin/ovs-appctl",
    "/usr/bin/ovs-dpctl",
    "/usr/bin/ovsdb-tool",
];

/// What the test bed's Python snippets import, found by running one with Debian's Python.
fn python_files() -> Result<Vec<PathBuf>> {
    let out = std::process::Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import socket, sys\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.close()\n\
             for m in list(sys.modules.values()):\n\
             \x20   f = getattr(m, '__file__', None)\n\
             \x20   if f: print(f)\n",
        ])
        .output()
        .context("cannot run /usr/bin/python3 (apt-get install python3)")?;
    if !out.status.success() {
        bail!("python3: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("/usr/lib/python3"))
        .map(PathBuf::from)
        .collect())
}

fn build_image(
    kernel: &kernel::Kernel,
    bins: &artifacts::Artifacts,
    loads: &BTreeMap<&str, Vec<kernel::ModuleLoad>>,
    out: &Path,
) -> Result<u64> {
    let mut img = image::Image::new();
    for (link, target) in [
        ("/bin", "usr/bin"),
        ("/sbin", "usr/sbin"),
        ("/lib", "usr/lib"),
        ("/lib64", "usr/lib64"),
        ("/var/run", "../run"),
    ] {
        img.symlink(link, target);
    }
    for d in [
        "/proc", "/sys", "/dev", "/tmp", "/run", "/root", "/var/log", "/var/lib",
    ] {
        img.dir(d);
    }
    img.char_dev("/dev/console", 5, 1);
    img.char_dev("/dev/null", 1, 3);
    let busybox = testbed::ovs::which("busybox")
        .context("busybox not found (apt-get install busybox-static)")?;
    img.host_file_as(&busybox, "/usr/bin/busybox")?;
    img.libraries_of(&busybox)?;
    let applets = std::process::Command::new(&busybox)
        .arg("--list")
        .output()?;
    for a in String::from_utf8_lossy(&applets.stdout).lines() {
        img.symlink(Path::new("/bb").join(a), "/usr/bin/busybox");
    }
    // The kernel runs /sbin/modprobe for its own module requests (a family looked up by name).
    img.symlink("/usr/sbin/modprobe", "/usr/bin/busybox");
    for tool in GUEST_TOOLS {
        img.host_binary(tool)
            .with_context(|| format!("{tool} (see LAB_PACKAGES)"))?;
    }
    for f in python_files()? {
        img.host_path(&f)?;
    }
    img.dir("/usr/lib/python3.11/lib-dynload");
    img.host_path("/usr/share/openvswitch/vswitch.ovsschema")?;
    for f in ["/etc/protocols", "/etc/services"] {
        if Path::new(f).exists() {
            img.host_path(f)?;
        }
    }
    img.bytes("/etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n");
    img.bytes("/etc/group", 0o644, "root:x:0:\n");
    img.bytes(
        "/etc/hosts",
        0o644,
        "127.0.0.1 localhost lab\n::1 localhost\n",
    );
    img.bytes(
        "/etc/nsswitch.conf",
        0o644,
        "passwd: files\ngroup: files\nhosts: files\n",
    );

    // Modules: every file a scenario loads, at its path, and the indexes so the kernel's own
    // module requests (busybox modprobe) work too.
    let mdir = format!("/usr/lib/modules/{}", kernel.version);
    for m in loads.values().flatten() {
        img.host_file_as(
            &kernel.modules_dir().join(&m.file),
            Path::new(&mdir).join(&m.file),
        )?;
    }
    for entry in std::fs::read_dir(kernel.modules_dir())? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("modules.") {
            img.host_file_as(&entry.path(), Path::new(&mdir).join(&name))?;
        }
    }

    let dpc = Path::new(testbed::lab::LIBEXEC);
    img.host_file_as(&bins.daemon, dpc.join("dataplane-collector"))?;
    img.host_file_as(&bins.guest, dpc.join("lab-guest"))?;
    img.host_file_as(&bins.openflow_tests, dpc.join("openflow-tests"))?;
    img.host_file_as(&bins.flow_text_tests, dpc.join("flow-text-tests"))?;
    // tests/tests/flow_text.rs reads its corpus at the path it was built from.
    let root = crate::workspace_root();
    img.dir(root.join("tests"));
    let corpus = root.join("collector/tests/fixtures/flow-corpus.txt");
    img.host_file_as(&corpus, &corpus)?;
    // lab-guest is the guest's init (as PID 1) and the OpenFlow tests' `ovs-vsctl` shim (by
    // that name): lab-guest/init.rs.
    img.symlink(dpc.join("shim/ovs-vsctl"), dpc.join("lab-guest"));
    img.symlink("/init", dpc.join("lab-guest"));
    let plan: Vec<testbed::lab::ModuleLoad> = SCENARIOS
        .iter()
        .flat_map(|sc| {
            loads
                .get(sc.name)
                .into_iter()
                .flatten()
                .map(|m| testbed::lab::ModuleLoad {
                    scenario: sc.name.to_owned(),
                    name: m.name.clone(),
                    file: m.file.to_string_lossy().into_owned(),
                    params: m.params.clone(),
                })
        })
        .collect();
    img.bytes(
        testbed::lab::PLAN_PATH,
        0o644,
        testbed::lab::write_plan(&plan),
    );
    img.write_cpio(out)
}

struct Outcome {
    name: String,
    passed: bool,
    detail: String,
}

/// Boots once with `scenarios` and returns each one's outcome and the console.
fn boot(scenarios: &[&Scenario], timeout: Duration) -> Result<(Vec<Outcome>, qemu::Console)> {
    let started = std::time::Instant::now();
    crate::deps::ensure_packages(LAB_PACKAGES)?;
    let cache = crate::workspace_root().join(".lab-cache");
    let kernel = kernel::ensure(&cache)?;
    let dir = lab_dir();
    std::fs::create_dir_all(&dir)?;
    // The daemon embeds the eBPF object: build it first.
    crate::ebpf::build()?;
    let bins = artifacts::build(&dir)?;
    let mut loads = BTreeMap::new();
    for sc in SCENARIOS {
        let mut seq: Vec<kernel::ModuleLoad> = Vec::new();
        for m in sc.modules {
            for l in kernel.show_depends(m)? {
                if !seq.iter().any(|x| x.name == l.name) {
                    seq.push(l);
                }
            }
        }
        loads.insert(sc.name, seq);
    }
    let initrd = dir.join("initrd.cpio");
    let size = build_image(&kernel, &bins, &loads, &initrd)?;
    eprintln!(
        "lab: kernel {}, initramfs {:.0} MiB, prepared in {:.0} s; booting for {}",
        kernel.version,
        size as f64 / (1 << 20) as f64,
        started.elapsed().as_secs_f64(),
        scenarios
            .iter()
            .map(|s| s.name)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let log = dir.join("console.log");
    let names: Vec<&str> = scenarios.iter().map(|s| s.name).collect();
    let console = qemu::boot(
        &qemu::Boot {
            kernel: &kernel.vmlinuz(),
            initrd: &initrd,
            cmdline: format!("dpc.scenarios={}", names.join(",")),
            memory_mib: 3072,
            cpus: 2,
            timeout,
            log: &log,
        },
        |l| l.starts_with("DPC-LAB-FIXTURE "),
    )?;
    let mut outcomes = Vec::new();
    for sc in scenarios {
        let line = console.lines.iter().find_map(|l| {
            l.strip_prefix("DPC-LAB: PASS ")
                .map(|r| (true, r))
                .or_else(|| l.strip_prefix("DPC-LAB: FAIL ").map(|r| (false, r)))
                .filter(|(_, r)| r.split_whitespace().next() == Some(sc.name))
        });
        outcomes.push(match line {
            Some((passed, rest)) => Outcome {
                name: sc.name.to_owned(),
                passed,
                detail: rest
                    .split_once(' ')
                    .map(|(_, d)| format!("{d} s"))
                    .unwrap_or_default(),
            },
            None => Outcome {
                name: sc.name.to_owned(),
                passed: false,
                detail: if console.timed_out {
                    "no result: the guest timed out".to_owned()
                } else {
                    "no result: the guest stopped before it".to_owned()
                },
            },
        });
    }
    save_fixtures(&console.lines, &dir)?;
    eprintln!("lab: console log: {}", log.display());
    Ok((outcomes, console))
}

/// `DPC-LAB-FIXTURE <name> <hex>` lines: into `target/lab/fixtures/`, and into
/// `collector/tests/fixtures/` with `DPC_UPDATE_FIXTURES=1`.
fn save_fixtures(lines: &[String], dir: &Path) -> Result<()> {
    let mut files: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    for l in lines {
        let Some(rest) = l.strip_prefix("DPC-LAB-FIXTURE ") else {
            continue;
        };
        let (name, hex) = rest.split_once(' ').unwrap_or((rest, ""));
        let data = files.entry(name).or_default();
        let hex = hex.trim().as_bytes();
        for pair in hex.chunks(2) {
            let s = std::str::from_utf8(pair)?;
            data.push(u8::from_str_radix(s, 16).with_context(|| format!("fixture {name}"))?);
        }
    }
    let update = std::env::var("DPC_UPDATE_FIXTURES").is_ok_and(|v| v == "1");
    for (name, data) in files {
        let mut targets = vec![dir.join("fixtures").join(name)];
        if update {
            targets.push(
                crate::workspace_root()
                    .join("collector/tests/fixtures")
                    .join(name),
            );
        }
        for t in targets {
            if let Some(p) = t.parent() {
                std::fs::create_dir_all(p)?;
            }
            std::fs::write(&t, &data)?;
            if update {
                eprintln!("lab: wrote {} ({} bytes)", t.display(), data.len());
            }
        }
    }
    Ok(())
}

/// Runs the named scenarios (all if empty) and reports pass/fail with the guest's output.
pub fn run(scenarios: &[String]) -> Result<()> {
    let outcomes = run_outcomes(scenarios)?;
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|(_, passed)| !passed)
        .map(|(name, _)| name.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("lab scenarios failed: {}", failed.join(", "));
    }
    Ok(())
}

/// Runs the scenarios (all default ones if none named) and returns each one's name and
/// whether it passed; `Err` only when the lab itself could not run.
pub fn run_outcomes(scenarios: &[String]) -> Result<Vec<(String, bool)>> {
    let start = std::time::Instant::now();
    let selected = select(scenarios, |s| s.default)?;
    let (outcomes, console) = boot(&selected, Duration::from_secs(25 * 60))?;
    eprintln!(
        "lab: results (boot and all, {:.0} s):",
        start.elapsed().as_secs_f64()
    );
    for o in &outcomes {
        let about = SCENARIOS
            .iter()
            .find(|s| s.name == o.name)
            .map_or("", |s| s.about);
        eprintln!(
            "lab:   {} {:<12} {:>8}  {about}",
            if o.passed { "PASS" } else { "FAIL" },
            o.name,
            o.detail
        );
    }
    eprintln!("lab: guest ran {:.0} s", console.elapsed.as_secs_f64());
    Ok(outcomes.into_iter().map(|o| (o.name, o.passed)).collect())
}

/// Lab benchmarks (IPVS scrape cost against /proc/net/ip_vs); writes their BENCHMARKS.md section.
pub fn bench(out: &Path) -> Result<()> {
    let selected = select(&["bench-ipvs".to_owned()], |_| false)?;
    let (outcomes, console) = boot(&selected, Duration::from_secs(25 * 60))?;
    if outcomes.iter().any(|o| !o.passed) {
        bail!("the lab benchmark failed (see the console above)");
    }
    let mut rows: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for l in &console.lines {
        let Some(rest) = l.strip_prefix("DPC-LAB-BENCH ") else {
            continue;
        };
        let kv: BTreeMap<String, String> = rest
            .split_whitespace()
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        if let Some(name) = kv.get("name") {
            rows.insert(name.clone(), kv);
        }
    }
    let kernel = console
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("DPC-LAB: BOOTED "))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("?")
        .to_owned();
    let table = bench_table(&rows, &kernel)?;
    crate::bench::write_section(out, "IPVS: scrape versus /proc/net/ip_vs", &table)?;
    eprintln!("lab: wrote {}", out.display());
    eprint!("{table}");
    Ok(())
}

fn bench_table(rows: &BTreeMap<String, BTreeMap<String, String>>, kernel: &str) -> Result<String> {
    let get = |row: &str, k: &str| -> Result<String> {
        rows.get(row)
            .and_then(|r| r.get(k))
            .cloned()
            .with_context(|| format!("benchmark output has no {k} for {row}"))
    };
    let setup = |k| get("setup", k);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{} services x {} destinations, {} runs each after 3 warm-up runs, side by side in one boot of \
         Debian's kernel {kernel} under QEMU TCG ({} emulated CPUs): absolute times are several \
         times a real machine's; the rows compare.\n",
        setup("services")?,
        setup("dests")?,
        setup("runs")?,
        setup("cpus")?
    );
    t.push_str(
        "| what | what it yields | mean | p50 | p90 | size |\n|---|---|---:|---:|---:|---:|\n",
    );
    let ms = |row: &str, k: &str| get(row, k).map(|v| format!("{v} ms"));
    let lines: [(&str, &str, &str, String); 5] = [
        (
            "scrape",
            "`GET /metrics` of the daemon (ipvs collector only), over HTTP",
            "every counter of every service and destination, weights, active/inactive connections",
            format!(
                "{} bytes served, {} series",
                get("scrape", "bytes")?,
                get("scrape", "series")?
            ),
        ),
        (
            "netlink",
            "the source's netlink read alone, in-process (family dump, service dump, one destination dump per service)",
            "the same, before encoding",
            "-".to_owned(),
        ),
        (
            "netlink-services",
            "of which: the service dump alone (one request)",
            "services and their counters, no destinations",
            "-".to_owned(),
        ),
        (
            "procfs",
            "read and parse `/proc/net/ip_vs` + `/proc/net/ip_vs_stats` (node_exporter's `ipvs` collector)",
            "weights and active/inactive connections per backend; packets and bytes only as host-wide totals",
            format!("{} bytes read", get("procfs", "bytes")?),
        ),
        (
            "ipvsadm",
            "`ipvsadm -Ln --stats --exact` (a process per scrape, as scripts do)",
            "per-service and per-destination counters, as text",
            "-".to_owned(),
        ),
    ];
    for (row, what, yields, bytes) in lines {
        let _ = writeln!(
            t,
            "| {what} | {yields} | {} | {} | {} | {bytes} |",
            ms(row, "mean_ms")?,
            ms(row, "p50_ms")?,
            ms(row, "p90_ms")?
        );
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_keeps_the_run_order() -> Result<()> {
        let names = |v: Vec<&Scenario>| v.iter().map(|s| s.name).collect::<Vec<_>>();
        let all = select(&[], |s| s.default)?;
        assert_eq!(
            names(all),
            vec![
                "datapath-absent",
                "ebpf-kernel",
                "ipvs-absent",
                "ipvs",
                "ovs-kernel",
                "datapath",
                "sriov"
            ]
        );
        let some = select(&["ipvs".to_owned(), "ipvs-absent".to_owned()], |s| {
            s.default
        })?;
        assert_eq!(names(some), vec!["ipvs-absent", "ipvs"]);
        assert!(select(&["nope".to_owned()], |_| true).is_err());
        Ok(())
    }

    #[test]
    fn bench_table_from_guest_lines() -> Result<()> {
        let mut rows = BTreeMap::new();
        for line in [
            "name=scrape mean_ms=1 p50_ms=1 p90_ms=2 bytes=100 series=9",
            "name=netlink mean_ms=1 p50_ms=1 p90_ms=1 services=3",
            "name=netlink-services mean_ms=1 p50_ms=1 p90_ms=1",
            "name=procfs mean_ms=1 p50_ms=1 p90_ms=1 bytes=50 backends=12",
            "name=ipvsadm mean_ms=3 p50_ms=3 p90_ms=3",
            "name=setup services=3 dests=4 runs=5 cpus=2",
        ] {
            let kv: BTreeMap<String, String> = line
                .split_whitespace()
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            rows.insert(kv["name"].clone(), kv);
        }
        let t = bench_table(&rows, "6.1")?;
        assert!(t.contains("| 100 bytes served, 9 series |"), "{t}");
        rows.remove("procfs");
        assert!(bench_table(&rows, "6.1").is_err());
        Ok(())
    }
}
