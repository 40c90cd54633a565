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

/// The tests' own Python virtual environment, with every package of tests/requirements.txt
/// (versions and extras pinned there) installed into it, and nothing from the machine's
/// site-packages visible: a package installed by hand cannot hide a missing one.
///
/// `DPC_VENV` names where it lives (CI gives a fresh one); by default `target/test-venv`. It is
/// made with Debian's `/usr/bin/python3 -m venv`, and filled again whenever the requirements
/// change.
pub fn ensure_venv() -> Result<std::path::PathBuf> {
    let root = crate::workspace_root();
    let dir = std::env::var_os("DPC_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target/test-venv"));
    let requirements = root.join("tests/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("cannot read {}", requirements.display()))?;
    let stamp = dir.join(".dpc-requirements");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted)
        && dir.join("bin/python3").exists()
    {
        return Ok(dir);
    }
    ensure_packages_force(&["python3-venv"])?;
    eprintln!("xtask: making the test venv {}", dir.display());
    let status = Command::new("/usr/bin/python3")
        .args(["-m", "venv", "--clear"])
        .arg(&dir)
        .status()
        .context("/usr/bin/python3 -m venv")?;
    if !status.success() {
        bail!("python3 -m venv {} failed", dir.display());
    }
    let status = Command::new(dir.join("bin/python3"))
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements)
        .status()
        .context("pip install -r tests/requirements.txt")?;
    if !status.success() {
        bail!("pip install -r {} failed", requirements.display());
    }
    std::fs::write(&stamp, wanted).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(dir)
}

/// `PATH` with the venv's `bin` first.
pub fn path_with_venv(venv: &std::path::Path) -> std::ffi::OsString {
    let mut paths = vec![venv.join("bin")];
    if let Some(p) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(paths).unwrap_or_default()
}

/// Installs a Python package into `venv` with pip if `module` cannot be imported there.
pub fn ensure_pip_in(venv: &std::path::Path, package: &str, module: &str) -> Result<()> {
    let python = venv.join("bin/python3");
    let ok = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Ok(());
    }
    eprintln!("xtask: pip install {package} into {}", venv.display());
    let status = Command::new(&python)
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
