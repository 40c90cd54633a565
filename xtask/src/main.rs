//! Project automation. `cargo xtask demo` runs the demo; `cargo xtask test` runs every test;
//! `cargo xtask bench` measures and writes BENCHMARKS.md.

mod bench;
mod bench_ebpf;
mod bench_flows;
mod bench_ovsdb;
mod bench_vswitchd;
mod cycles;
mod demo;
mod deps;
mod ebpf;
mod fuzz;
mod lab;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// A private Open vSwitch with pods and traffic, scraped by the daemon (root).
    Demo {
        #[arg(long, default_value = "127.0.0.1:9477")]
        listen: String,
        #[arg(long, default_value_t = 3)]
        pods: usize,
        /// Seconds to run instead of waiting for Ctrl-C.
        #[arg(long)]
        duration: Option<u64>,
    },
    /// Every test: unit, fixture, golden, and the root-only ones against a real Open vSwitch.
    Test {
        /// Skip installing packages and the root-only tests.
        #[arg(long)]
        no_root: bool,
    },
    /// Benchmarks against the tools users run today; writes BENCHMARKS.md.
    Bench {
        /// Flow-table sizes to measure.
        #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
        flows: Vec<usize>,
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
        /// Only one group: openflow, ovsdb, ebpf, drops, flows, vswitchd, lab.
        #[arg(long)]
        only: Option<String>,
    },
    /// Builds the eBPF programs (installing Debian's rustc and bpf-linker if needed).
    BuildEbpf,
    /// Runs the coverage-guided fuzz targets (fuzz/) under libFuzzer; writes BENCHMARKS.md.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Only this target (a file of fuzz/fuzz_targets/).
        #[arg(long)]
        target: Option<String>,
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
    },
    /// Fails when modules of the collector's library depend on each other in a cycle
    /// (top-level modules, and each source under sources/).
    Cycles {
        /// Another source tree to check (default: collector/src).
        #[arg(long)]
        src: Option<PathBuf>,
    },
    /// Boots Debian's kernel under QEMU and runs lab scenarios (all if none named).
    Lab { scenarios: Vec<String> },
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Demo {
            listen,
            pods,
            duration,
        } => demo::run(demo::Options {
            listen,
            pods,
            duration: duration.map(Duration::from_secs),
        }),
        Cmd::Test { no_root } => test(no_root),
        Cmd::Bench { flows, out, only } => {
            let out = workspace_root().join(out);
            let want = |g: &str| only.as_deref().is_none_or(|o| o == g);
            if want("openflow") {
                bench::run(&flows, &out)?;
            }
            if want("ovsdb") {
                bench_ovsdb::run(&out, &[1000, 10_000, 30_000])?;
            }
            if want("ebpf") {
                bench_ebpf::run(&out)?;
            }
            if want("drops") {
                bench_ebpf::run_drops(&out)?;
            }
            if want("flows") {
                bench_flows::run(&out)?;
            }
            if want("vswitchd") {
                bench_vswitchd::run(&out)?;
            }
            if want("lab") {
                lab::bench(&out)?;
            }
            Ok(())
        }
        Cmd::Lab { scenarios } => lab::run(&scenarios),
        Cmd::Cycles { src } => cycles::run(src.as_deref()),
        Cmd::BuildEbpf => ebpf::build().map(|_| ()),
        Cmd::Fuzz {
            seconds,
            target,
            out,
        } => fuzz::run(seconds, target.as_deref(), &workspace_root().join(out)),
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    c.current_dir(workspace_root());
    c
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Builds the daemon (with the eBPF programs) in release mode and returns its path.
pub fn build_release_daemon() -> Result<PathBuf> {
    ebpf::build()?;
    run(cargo().args(["build", "--release", "-p", "dataplane-collector"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    Ok(target.join("release/dataplane-collector"))
}

/// Every tier of tests, each run even when an earlier one failed, then one summary line
/// `N passed, N failed` (tests counted from cargo's `test result:` lines, lab scenarios one
/// each, fmt and clippy one each; a tier that fails without reporting tests counts as one
/// failure).
fn test(no_root: bool) -> Result<()> {
    let mut tally = Tally::default();
    tally.tier("fmt", cargo().args(["fmt", "--all", "--", "--check"]));
    tally.check("module cycles", cycles::run(None));
    if no_root {
        tally.tier(
            "cargo test",
            cargo().args([
                "test",
                "--workspace",
                "--exclude",
                "integration-tests",
                "--no-fail-fast",
            ]),
        );
        return tally.finish();
    }
    if !deps::is_root() {
        bail!("the root-only tests need root (or pass --no-root)");
    }
    deps::ensure_packages(deps::TEST_PACKAGES)?;
    // Python packages live in a venv of their own, first on the tests' PATH.
    let venv = deps::ensure_venv()?;
    let path = deps::path_with_venv(&venv);
    // The daemon under test embeds the eBPF programs.
    ebpf::build()?;
    tally.tier(
        "clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    );
    // Every crate, including the root-only integration tests; a skipped root test fails.
    tally.tier(
        "cargo test",
        cargo()
            .args(["test", "--workspace", "--all-targets", "--no-fail-fast"])
            .env("DPC_REQUIRE_ROOT_TESTS", "1")
            .env("PATH", &path)
            .env("VIRTUAL_ENV", &venv),
    );
    // The kernel lab: what the host kernel cannot do.
    match lab::run_outcomes(&[]) {
        Ok(outcomes) => {
            for (name, passed) in outcomes {
                tally.count(&format!("lab {name}"), passed);
            }
        }
        Err(e) => {
            eprintln!("xtask: the kernel lab could not run: {e:#}");
            tally.count("lab", false);
        }
    }
    tally.finish()
}

/// What `cargo xtask test` ran and how it went.
#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    failures: Vec<String>,
}

impl Tally {
    /// Runs one tier, echoing its output, and counts what it reports.
    fn tier(&mut self, name: &str, cmd: &mut Command) {
        use std::io::{BufRead, Write};
        eprintln!("xtask: {cmd:?}");
        let child = cmd.stdout(std::process::Stdio::piped()).spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                eprintln!("xtask: cannot run {name}: {e}");
                self.count(name, false);
                return;
            }
        };
        let (mut passed, mut failed, mut reported) = (0, 0, false);
        if let Some(out) = child.stdout.take() {
            let stdout = std::io::stdout();
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = writeln!(stdout.lock(), "{line}");
                if let Some((p, f)) = cargo_test_result(&line) {
                    passed += p;
                    failed += f;
                    reported = true;
                }
            }
        }
        let ok = child.wait().is_ok_and(|s| s.success());
        if reported {
            self.passed += passed;
            self.failed += failed;
            if failed > 0 || !ok {
                self.failures.push(format!("{name} ({failed} failed)"));
                if failed == 0 {
                    // Tests passed but the tier did not (a crate that did not build).
                    self.failed += 1;
                }
            }
        } else {
            self.count(name, ok);
        }
    }

    /// Counts a check run in-process, printing why it failed.
    fn check(&mut self, name: &str, result: Result<()>) {
        if let Err(e) = &result {
            eprintln!("xtask: {name}: {e:#}");
        }
        self.count(name, result.is_ok());
    }

    fn count(&mut self, name: &str, passed: bool) {
        if passed {
            self.passed += 1;
        } else {
            self.failed += 1;
            self.failures.push(name.to_owned());
        }
    }

    fn finish(self) -> Result<()> {
        if !self.failures.is_empty() {
            println!("failed: {}", self.failures.join(", "));
        }
        println!("{} passed, {} failed", self.passed, self.failed);
        if self.failed > 0 {
            bail!("{} failed", self.failed);
        }
        Ok(())
    }
}

/// The counts of a cargo test binary's `test result: ok. 12 passed; 0 failed; …` line.
fn cargo_test_result(line: &str) -> Option<(u64, u64)> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let number_before = |word: &str| -> Option<u64> {
        let end = rest.find(word)?;
        rest[..end]
            .trim_end()
            .rsplit([' ', '.'])
            .next()?
            .parse()
            .ok()
    };
    Some((number_before(" passed")?, number_before(" failed")?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_cargo_test_result_lines() {
        assert_eq!(
            super::cargo_test_result(
                "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s"
            ),
            Some((12, 0))
        );
        assert_eq!(
            super::cargo_test_result("test result: FAILED. 3 passed; 2 failed; 0 ignored"),
            Some((3, 2))
        );
        assert_eq!(super::cargo_test_result("running 3 tests"), None);
    }
}
