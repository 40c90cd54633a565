//! The SR-IOV source's netlink path on Debian's kernel: an `RTM_GETLINK` dump with the VF mask
//! over every link of the guest, including a real PCI NIC (QEMU's e1000, driven by the kernel's
//! e1000 module). QEMU 7.2 emulates no SR-IOV NIC, so no link has VFs: what this proves is the
//! request, the dump's framing and every link's attributes on this kernel, and that the kernel
//! honours the VF mask (`IFLA_NUM_VF` on exactly the links with a parent device); the VF
//! attributes themselves are proven on kernel-layout bytes (`collector/tests/sriov_netlink.rs`).
//! Then the daemon, with only `vfstats`, on a node without SR-IOV: unavailable, no series.

use crate::{Daemon, ip};
use anyhow::{Context, Result, anyhow, bail};
use dataplane_collector::sources::sriov::netlink;
use std::path::Path;
use std::time::Duration;
use testbed::prom;

pub fn run() -> Result<()> {
    // Links of every kind the dump must carry: the NIC, veths, a dummy, a bridge.
    ip(&["link", "add", "sv0", "type", "veth", "peer", "name", "sv1"])?;
    ip(&["link", "add", "sdum", "type", "dummy"])?;
    ip(&["link", "add", "sbr", "type", "bridge"])?;
    let links: Vec<netlink::Link> = netlink::dump_links(Duration::from_secs(5))?
        .into_iter()
        .map(|l| l.map_err(|(i, e)| anyhow!("link {i}: {e}")))
        .collect::<Result<_>>()?;
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    names.sort();
    let mut dumped: Vec<String> = links.iter().map(|l| l.name.clone()).collect();
    dumped.sort();
    if dumped != names {
        bail!("the dump has links {dumped:?}, /sys/class/net {names:?}");
    }
    let mut with_parent = Vec::new();
    for l in &links {
        let dir = Path::new("/sys/class/net").join(&l.name);
        let index: i32 = std::fs::read_to_string(dir.join("ifindex"))?
            .trim()
            .parse()
            .with_context(|| format!("ifindex of {}", l.name))?;
        if index != l.index {
            bail!(
                "{}: index {} in the dump, {index} in sysfs",
                l.name,
                l.index
            );
        }
        if !l.vfs.is_empty() {
            bail!("{}: VFs on a machine without SR-IOV: {:?}", l.name, l.vfs);
        }
        let parent = dir.join("device").exists();
        let want = parent.then_some(0);
        if l.num_vf != want {
            bail!(
                "{}: IFLA_NUM_VF {:?}, expected {want:?} (parent device: {parent})",
                l.name,
                l.num_vf
            );
        }
        if parent {
            let dev = std::fs::canonicalize(dir.join("device"))?;
            with_parent.push(format!("{} ({})", l.name, dev.display()));
        }
    }
    if with_parent.is_empty() {
        bail!("no link with a parent device: the e1000 NIC is missing");
    }
    println!(
        "sriov: {} links dumped with the VF mask, equal to sysfs; IFLA_NUM_VF 0 on exactly {}",
        links.len(),
        with_parent.join(", ")
    );

    let daemon = Daemon::start(
        9400,
        &["--collector.disable-defaults", "--collector.vfstats"],
    )?;
    let samples = prom::parse(&daemon.metrics()?)?;
    let available = samples
        .iter()
        .find(|s| {
            s.name == "dataplane_collector_source_available" && s.label("collector") == "vfstats"
        })
        .map(|s| s.value);
    if available != Some(0.0) {
        bail!("vfstats on a node without SR-IOV: available = {available:?}");
    }
    if let Some(s) = samples.iter().find(|s| s.name.starts_with("sriov_vf_")) {
        bail!("a VF series without VFs: {s:?}");
    }
    println!("sriov: the daemon reports vfstats unavailable, with no VF series");
    for l in ["sv0", "sdum", "sbr"] {
        let _ = ip(&["link", "del", l]);
    }
    Ok(())
}
