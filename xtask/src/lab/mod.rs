//! `cargo xtask lab [SCENARIO…]`: Debian's stock kernel under QEMU with a busybox initramfs, for
//! what the host kernel cannot do (Open vSwitch kernel datapath, IPVS, kprobes).
//!
//! (Interface stub: the implementation lands with the kernel-lab issue.)

use anyhow::Result;
use std::path::Path;

/// Runs the named scenarios (all if empty) and reports pass/fail with the guest's output.
pub fn run(_scenarios: &[String]) -> Result<()> {
    eprintln!("lab: no scenarios yet");
    Ok(())
}

/// Lab benchmarks (IPVS scrape cost against /proc/net/ip_vs); writes their BENCHMARKS.md section.
pub fn bench(_out: &Path) -> Result<()> {
    Ok(())
}
