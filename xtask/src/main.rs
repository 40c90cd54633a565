//! Project automation. `cargo xtask demo` runs the demo; `cargo xtask test` runs every test;
//! `cargo xtask bench` measures and writes BENCHMARKS.md.

mod bench;
mod bench_ebpf;
mod bench_flows;
mod bench_ovsdb;
mod demo;
mod deps;
mod ebpf;
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
        /// Only one group: openflow, ovsdb, ebpf, flows, lab.
        #[arg(long)]
        only: Option<String>,
    },
    /// Builds the eBPF programs (installing Debian's rustc and bpf-linker if needed).
    BuildEbpf,
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
                bench_ovsdb::run(&out, 1000)?;
            }
            if want("ebpf") {
                bench_ebpf::run(&out)?;
            }
            if want("flows") {
                bench_flows::run(&out)?;
            }
            if want("lab") {
                lab::bench(&out)?;
            }
            Ok(())
        }
        Cmd::Lab { scenarios } => lab::run(&scenarios),
        Cmd::BuildEbpf => ebpf::build().map(|_| ()),
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

fn test(no_root: bool) -> Result<()> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    if no_root {
        run(cargo().args(["test", "--workspace", "--exclude", "integration-tests"]))?;
        return Ok(());
    }
    if !deps::is_root() {
        bail!("the root-only tests need root (or pass --no-root)");
    }
    deps::ensure_packages(deps::TEST_PACKAGES)?;
    deps::ensure_pip("kubernetes-validate", "kubernetes_validate")?;
    // The daemon under test embeds the eBPF programs.
    ebpf::build()?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // Every crate, including the root-only integration tests; a skipped root test fails.
    run(cargo()
        .args(["test", "--workspace", "--all-targets"])
        .env("DPC_REQUIRE_ROOT_TESTS", "1"))?;
    // The kernel lab: what the host kernel cannot do.
    lab::run(&[])?;
    Ok(())
}
