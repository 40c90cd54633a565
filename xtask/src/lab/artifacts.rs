//! The project's binaries for the guest: the daemon, the guest-side check program and the
//! foundation's OpenFlow test binary, statically linked (glibc, `+crt-static`) in release mode,
//! in a target directory of their own so the flags never invalidate the normal build.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Artifacts {
    pub daemon: PathBuf,
    pub guest: PathBuf,
    /// `tests/tests/openflow.rs` and `tests/tests/flow_text.rs`.
    pub openflow_tests: PathBuf,
    pub flow_text_tests: PathBuf,
}

const TARGET: &str = "x86_64-unknown-linux-gnu";

fn cargo(target_dir: &Path) -> Command {
    let mut c = crate::cargo();
    c.env("CARGO_TARGET_DIR", target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        // With an explicit --target these reach only the target's crates, not build scripts.
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        // Smaller binaries, a smaller initramfs.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo");
    c
}

pub fn build(lab_dir: &Path) -> Result<Artifacts> {
    let target_dir = lab_dir.join("cargo");
    crate::run(cargo(&target_dir).args([
        "build",
        "--release",
        "--target",
        TARGET,
        "-p",
        "dataplane-collector",
        "--bin",
        "dataplane-collector",
        "-p",
        "integration-tests",
        "--bin",
        "lab-guest",
    ]))?;
    let out = cargo(&target_dir)
        .args([
            "test",
            "--release",
            "--target",
            TARGET,
            "-p",
            "integration-tests",
            "--test",
            "openflow",
            "--test",
            "flow_text",
            "--no-run",
            "--message-format",
            "json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the OpenFlow test binaries failed");
    }
    let (mut openflow_tests, mut flow_text_tests) = (None, None);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] == "compiler-artifact"
            && let Some(exe) = v["executable"].as_str()
        {
            match v["target"]["name"].as_str() {
                Some("openflow") => openflow_tests = Some(PathBuf::from(exe)),
                Some("flow_text") => flow_text_tests = Some(PathBuf::from(exe)),
                _ => {}
            }
        }
    }
    let release = target_dir.join(TARGET).join("release");
    let a = Artifacts {
        daemon: release.join("dataplane-collector"),
        guest: release.join("lab-guest"),
        openflow_tests: openflow_tests
            .context("cargo named no executable for tests/openflow.rs")?,
        flow_text_tests: flow_text_tests
            .context("cargo named no executable for tests/flow_text.rs")?,
    };
    for p in [&a.daemon, &a.guest, &a.openflow_tests, &a.flow_text_tests] {
        check_static(p)?;
    }
    Ok(a)
}

/// The guest has glibc for the Debian tools, but the project's binaries must not need it.
fn check_static(p: &Path) -> Result<()> {
    let out = Command::new("ldd").arg(p).output().context("ldd")?;
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    if !(text.contains("not a dynamic executable") || text.contains("statically linked")) {
        bail!("{} is not statically linked:\n{text}", p.display());
    }
    Ok(())
}
