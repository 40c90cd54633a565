//! How the eBPF programs (`collector-ebpf`) are built: shared by the daemon's build script
//! (`collector/build.rs`, so a plain `cargo build --release` embeds them when the toolchain is
//! installed) and by `cargo xtask build-ebpf` (which also installs the toolchain), through
//! `#[path]`, so the two cannot build them differently. std only: a build script has no
//! dependencies to share.
//!
//! rustup's toolchain has no `core` for `bpfel-unknown-none` and must not download one; Debian's
//! `rustc-web` with `libstd-rust-web-dev-bpf` has it. `bpf-linker` must be built against the
//! LLVM that rustc uses (`/usr/bin/rustc -vV`); a marker file next to it records which. As the
//! Linux kernel does for its Rust code, `RUSTC_BOOTSTRAP=1` lets the stable Debian compiler build
//! for the BPF target.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's compiler, which has `core` for the BPF target.
pub const DEBIAN_RUSTC: &str = "/usr/bin/rustc";

/// Where Debian's `libstd-rust-web-dev-bpf` puts that `core`.
pub const BPF_CORE: &str = "/usr/lib/rustlib/bpfel-unknown-none/lib";

/// The bpf-linker release `cargo xtask build-ebpf` installs.
pub const BPF_LINKER_VERSION: &str = "0.13.0";

/// The one-line way to get the toolchain, for messages.
pub const HOW_TO_GET_IT: &str = "cargo xtask build-ebpf (installs Debian's rustc-web and \
    libstd-rust-web-dev-bpf, builds bpf-linker for their LLVM, then the programs)";

/// `$CARGO_HOME/bin/NAME`.
pub fn cargo_bin(name: &str) -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
        .join("bin")
        .join(name)
}

/// The LLVM major version Debian's rustc uses.
pub fn llvm_major() -> Result<u32, String> {
    let out = Command::new(DEBIAN_RUSTC)
        .arg("-vV")
        .output()
        .map_err(|e| format!("cannot run {DEBIAN_RUSTC}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no LLVM version in `{DEBIAN_RUSTC} -vV`: {text}"))
}

/// The marker that says bpf-linker was built for LLVM `llvm`.
pub fn linker_marker(llvm: u32) -> PathBuf {
    cargo_bin(&format!(".bpf-linker-llvm-{llvm}"))
}

/// Why the toolchain cannot build the programs, or `None` when it can.
pub fn toolchain_missing() -> Option<String> {
    if !Path::new(DEBIAN_RUSTC).exists() {
        return Some(format!(
            "{DEBIAN_RUSTC} (Debian's rustc-web) is not installed"
        ));
    }
    if !Path::new(BPF_CORE).exists() {
        return Some(format!(
            "{BPF_CORE} (Debian's libstd-rust-web-dev-bpf) is not installed"
        ));
    }
    let linker = cargo_bin("bpf-linker");
    if !linker.exists() {
        return Some(format!("{} is not installed", linker.display()));
    }
    match llvm_major() {
        Err(e) => Some(e),
        Ok(llvm) if !linker_marker(llvm).exists() => Some(format!(
            "{} was not built for LLVM {llvm}, which {DEBIAN_RUSTC} uses",
            linker.display()
        )),
        Ok(_) => None,
    }
}

/// The target directory of the eBPF build (its own: a build script must not wait for the lock
/// of the build that runs it).
pub fn target_dir(workspace: &Path) -> PathBuf {
    workspace.join("target/ebpf")
}

/// The object the build produces.
pub fn object_path(workspace: &Path) -> PathBuf {
    target_dir(workspace).join("bpfel-unknown-none/release/collector-ebpf")
}

/// The `cargo build` of the programs, with an environment of its own: nothing the calling
/// cargo set for its own build (a wrapper such as clippy-driver, flags for the host target,
/// another target directory) reaches it.
pub fn command(cargo: &std::ffi::OsStr, workspace: &Path) -> Command {
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "-p",
            "collector-ebpf",
            "--release",
            "--target",
            "bpfel-unknown-none",
        ])
        .arg("--target-dir")
        .arg(target_dir(workspace))
        .env("RUSTC", DEBIAN_RUSTC)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env(
            "CARGO_TARGET_BPFEL_UNKNOWN_NONE_LINKER",
            cargo_bin("bpf-linker"),
        );
    for var in [
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "RUSTDOCFLAGS",
        "CARGO_ENCODED_RUSTDOCFLAGS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}
