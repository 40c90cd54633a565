//! `cargo xtask build-ebpf`: the eBPF programs, built entirely from Debian and crates.io. How they
//! are built is `collector/build_ebpf.rs`, shared with the daemon's build script (which builds
//! them in a plain `cargo build` once this has installed the toolchain).

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::Command;

#[path = "../../collector/build_ebpf.rs"]
mod recipe;

/// Installs Debian's compiler and `bpf-linker` (built for its LLVM) if they are missing.
pub fn ensure_toolchain() -> Result<()> {
    let has_core = || std::path::Path::new(recipe::BPF_CORE).exists();
    if !std::path::Path::new(recipe::DEBIAN_RUSTC).exists() || !has_core() {
        crate::deps::ensure_packages(&[
            // rustup's `rustc` on PATH is not Debian's: look for the file itself.
            ("rustc-web", recipe::DEBIAN_RUSTC),
            ("libstd-rust-web-dev-bpf", recipe::BPF_CORE),
        ])?;
        if !has_core() {
            crate::deps::ensure_packages_force(&["rustc-web", "libstd-rust-web-dev-bpf"])?;
        }
    }
    let llvm = recipe::llvm_major().map_err(anyhow::Error::msg)?;
    let marker = recipe::linker_marker(llvm);
    if recipe::cargo_bin("bpf-linker").exists() && marker.exists() {
        return Ok(());
    }
    let llvm_pkg = format!("llvm-{llvm}-dev");
    crate::deps::ensure_packages_force(&[&llvm_pkg])?;
    let version = recipe::BPF_LINKER_VERSION;
    eprintln!("xtask: building bpf-linker {version} for LLVM {llvm}");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["install", "bpf-linker", "--version", version, "--force"])
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
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = recipe::command(&cargo, &root)
        .status()
        .context("cargo build collector-ebpf")?;
    if !status.success() {
        bail!("building the eBPF programs failed");
    }
    let object = recipe::object_path(&root);
    if !object.exists() {
        bail!("{} was not produced", object.display());
    }
    eprintln!("xtask: eBPF object {}", object.display());
    Ok(object)
}
