//! `cargo xtask build-ebpf`: the eBPF programs, built entirely from Debian and crates.io.
//!
//! rustup's toolchain has no `core` for `bpfel-unknown-none` and must not download one; Debian's
//! `rustc-web` with `libstd-rust-web-dev-bpf` has it. `bpf-linker` must be built against the
//! LLVM that rustc uses, so its `llvm-NN` feature is read from `/usr/bin/rustc -vV` (security
//! updates move it). As the Linux kernel does for its Rust code, `RUSTC_BOOTSTRAP=1` lets the
//! stable Debian compiler build for the BPF target.

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::Command;

const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const BPF_LINKER_VERSION: &str = "0.13.0";

fn llvm_major() -> Result<u32> {
    let out = Command::new(DEBIAN_RUSTC)
        .arg("-vV")
        .output()
        .with_context(|| format!("cannot run {DEBIAN_RUSTC}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no LLVM version in `{DEBIAN_RUSTC} -vV`: {text}"))
}

fn has_bpf_core() -> bool {
    std::path::Path::new("/usr/lib/rustlib/bpfel-unknown-none/lib").exists()
}

fn cargo_bin(name: &str) -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
        .join("bin")
        .join(name)
}

/// Installs Debian's compiler and `bpf-linker` (built for its LLVM) if they are missing.
pub fn ensure_toolchain() -> Result<()> {
    if !std::path::Path::new(DEBIAN_RUSTC).exists() || !has_bpf_core() {
        crate::deps::ensure_packages(&[
            // rustup's `rustc` on PATH is not Debian's: look for the file itself.
            ("rustc-web", DEBIAN_RUSTC),
            (
                "libstd-rust-web-dev-bpf",
                "/usr/lib/rustlib/bpfel-unknown-none/lib",
            ),
        ])?;
        if !has_bpf_core() {
            crate::deps::ensure_packages_force(&["rustc-web", "libstd-rust-web-dev-bpf"])?;
        }
    }
    let llvm = llvm_major()?;
    // A marker records which LLVM the installed bpf-linker was built for.
    let marker = cargo_bin(&format!(".bpf-linker-llvm-{llvm}"));
    if cargo_bin("bpf-linker").exists() && marker.exists() {
        return Ok(());
    }
    let llvm_pkg = format!("llvm-{llvm}-dev");
    crate::deps::ensure_packages_force(&[&llvm_pkg])?;
    eprintln!("xtask: building bpf-linker {BPF_LINKER_VERSION} for LLVM {llvm}");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--force",
        ])
        .args([
            "--no-default-features",
            "--features",
            &format!("llvm-{llvm}"),
        ])
        .env("LLVM_PREFIX", format!("/usr/lib/llvm-{llvm}"))
        .status()
        .context("cargo install bpf-linker")?;
    if !status.success() {
        bail!("cargo install bpf-linker failed");
    }
    std::fs::write(&marker, format!("{llvm}\n"))?;
    Ok(())
}

/// Builds the object; returns its path (the daemon's build embeds it from there).
pub fn build() -> Result<PathBuf> {
    ensure_toolchain()?;
    let root = crate::workspace_root();
    let target_dir = root.join("target/ebpf");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .current_dir(&root)
        .args([
            "build",
            "-p",
            "collector-ebpf",
            "--release",
            "--target",
            "bpfel-unknown-none",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTC", DEBIAN_RUSTC)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env(
            "CARGO_TARGET_BPFEL_UNKNOWN_NONE_LINKER",
            cargo_bin("bpf-linker"),
        )
        .env_remove("RUSTC_WRAPPER")
        .status()
        .context("cargo build collector-ebpf")?;
    if !status.success() {
        bail!("building the eBPF programs failed");
    }
    let object = target_dir.join("bpfel-unknown-none/release/collector-ebpf");
    if !object.exists() {
        bail!("{} was not produced", object.display());
    }
    eprintln!("xtask: eBPF object {}", object.display());
    Ok(object)
}
