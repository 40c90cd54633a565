//! Installs what the demo, tests and benchmarks need on a fresh Debian machine.

use anyhow::{Context, Result, bail};
use std::process::{Command, Stdio};

/// Debian packages, with the program that shows each is there.
pub const TEST_PACKAGES: &[(&str, &str)] = &[
    ("openvswitch-switch", "ovs-vswitchd"),
    ("iproute2", "ip"),
    ("iputils-ping", "ping"),
    ("prometheus", "promtool"),
    ("procps", "pgrep"),
    ("bpftool", "bpftool"),
];

pub const BENCH_PACKAGES: &[(&str, &str)] = &[
    ("hyperfine", "hyperfine"),
    ("time", "time"),
    ("iperf3", "iperf3"),
];

pub fn have(prog: &str) -> bool {
    testbed::ovs::which(prog).is_some() || std::path::Path::new("/usr/bin").join(prog).exists()
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Installs the missing packages with apt-get (root only).
pub fn ensure_packages(pkgs: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = pkgs
        .iter()
        .filter(|(_, prog)| !have(prog))
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing packages: {} (run as root, or apt-get install them)",
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    let status = Command::new("apt-get")
        .arg("update")
        .arg("-qq")
        .stdout(Stdio::null())
        .status()
        .context("apt-get update")?;
    if !status.success() {
        bail!("apt-get update failed");
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .context("apt-get install")?;
    if !status.success() {
        bail!("apt-get install {} failed", missing.join(" "));
    }
    Ok(())
}

/// Installs packages with apt-get whether or not some program shows they are there.
pub fn ensure_packages_force(pkgs: &[&str]) -> Result<()> {
    let missing: Vec<&str> = pkgs
        .iter()
        .filter(|p| {
            !Command::new("dpkg")
                .args(["-s", p])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .copied()
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let pairs: Vec<(&str, &str)> = missing.iter().map(|p| (*p, "/nonexistent")).collect();
    ensure_packages(&pairs)
}

/// Installs a Python package with pip if `module` cannot be imported.
pub fn ensure_pip(package: &str, module: &str) -> Result<()> {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Ok(());
    }
    eprintln!("xtask: pip install {package}");
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            package,
        ])
        .status()
        .context("python3 -m pip")?;
    if !status.success() {
        bail!("pip install {package} failed");
    }
    Ok(())
}
