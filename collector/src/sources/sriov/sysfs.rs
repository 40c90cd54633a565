//! SR-IOV physical functions and their virtual functions, from sysfs; and the i40e driver's
//! per-VF counter files.
//!
//! Files read (paths relative to `--path.sysbuspci`, default `/sys/bus/pci/devices`, and
//! `--path.sysclassnet`, default `/sys/class/net`):
//!
//! | file | what it gives |
//! | --- | --- |
//! | `<pci>/sriov_totalvfs` | the device can do SR-IOV (present), and how many VFs at most |
//! | `<pci>/sriov_numvfs` | VFs enabled now |
//! | `<pci>/class` | PCI class; only network controllers (`0x02xxxx`) are PFs here |
//! | `<pci>/net/` | the PF's interface name (first entry, sorted) |
//! | `<pci>/numa_node` | NUMA node; `-1` (no NUMA information) becomes an empty label |
//! | `<pci>/virtfn<N>` | symlink to VF `N`'s PCI device; its last component is the VF's PCI address |
//! | `<pci>/driver` | symlink to the bound driver; its last component names the driver |
//! | `<net>/<pf>/device/sriov/<N>/stats/<counter>` | i40e (Intel 700 series, out-of-tree driver 2.11+) and ice per-VF counters |
//!
//! Everything here is re-read at each scrape: VFs come and go with `sriov_numvfs`.

use std::path::{Path, PathBuf};

/// PCI class of network controllers (`0x02`), in the top byte of the 24-bit `class` value.
const PCI_CLASS_NETWORK: u32 = 0x02;

#[derive(Debug, thiserror::Error)]
pub enum SysfsError {
    #[error("{path} does not exist (no PCI bus in this sysfs, or a wrong --path.sysbuspci)")]
    NoPciBus { path: PathBuf },
    #[error("cannot list {path}")]
    List {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A virtual function of a PF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vf {
    /// The VF number: `N` of `virtfnN`, the index in the PF's netlink VF list.
    pub id: u32,
    /// The VF's PCI address, e.g. `0000:3b:02.0` (the `pciAddr` label).
    pub pci_addr: String,
}

/// An SR-IOV capable network device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pf {
    /// Its PCI address.
    pub pci_addr: String,
    /// Its interface name (`pf` label); empty if it has none (bound to vfio, or no netdev).
    pub name: String,
    /// NUMA node; empty when the platform gives none (`-1`) or the file cannot be read.
    pub numa_node: String,
    /// The bound driver (`i40e`, `ice`, `mlx5_core`...), if any.
    pub driver: Option<String>,
    pub total_vfs: Option<u64>,
    pub num_vfs: Option<u64>,
    /// Sorted by id.
    pub vfs: Vec<Vf>,
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

fn read_u64(path: &Path) -> Option<u64> {
    read_trimmed(path).and_then(|s| s.parse().ok())
}

/// `0x020000` → 0x020000. The kernel writes PCI classes as `0x%06x`.
pub fn parse_class(text: &str) -> Option<u32> {
    let t = text.trim();
    let hex = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    u32::from_str_radix(hex, 16).ok()
}

/// `virtfn12` → 12.
pub fn parse_virtfn(name: &str) -> Option<u32> {
    let n = name.strip_prefix("virtfn")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// The NUMA label from a `numa_node` file's text: `-1` and garbage become empty.
pub fn numa_label(text: Option<&str>) -> String {
    match text.map(str::trim) {
        Some(t) if t.parse::<u32>().is_ok() => t.to_owned(),
        _ => String::new(),
    }
}

/// The last component of a symlink's target: the VF's PCI address, or the driver's name.
fn link_name(path: &Path) -> Option<String> {
    let target = std::fs::read_link(path).ok()?;
    target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty() && n != ".." && n != ".")
}

/// Finds every SR-IOV capable network PF under `sysbuspci`, sorted by PCI address.
pub fn discover(sysbuspci: &Path) -> Result<Vec<Pf>, SysfsError> {
    let entries = match std::fs::read_dir(sysbuspci) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SysfsError::NoPciBus {
                path: sysbuspci.to_owned(),
            });
        }
        Err(source) => {
            return Err(SysfsError::List {
                path: sysbuspci.to_owned(),
                source,
            });
        }
    };
    let mut pfs = Vec::new();
    for entry in entries.flatten() {
        let dir = entry.path();
        let Some(total_vfs_text) = read_trimmed(&dir.join("sriov_totalvfs")) else {
            continue;
        };
        let is_network = read_trimmed(&dir.join("class"))
            .and_then(|c| parse_class(&c))
            .is_some_and(|c| c >> 16 == PCI_CLASS_NETWORK);
        if !is_network {
            continue;
        }
        pfs.push(read_pf(
            &dir,
            entry.file_name().to_string_lossy().into_owned(),
            total_vfs_text.parse().ok(),
        ));
    }
    pfs.sort_by(|a, b| a.pci_addr.cmp(&b.pci_addr));
    Ok(pfs)
}

fn read_pf(dir: &Path, pci_addr: String, total_vfs: Option<u64>) -> Pf {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("net"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut vfs: Vec<Vf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let id = parse_virtfn(&e.file_name().to_string_lossy())?;
                    let pci_addr = link_name(&e.path())?;
                    Some(Vf { id, pci_addr })
                })
                .collect()
        })
        .unwrap_or_default();
    vfs.sort_by_key(|v| v.id);
    Pf {
        pci_addr,
        name: names.into_iter().next().unwrap_or_default(),
        numa_node: numa_label(read_trimmed(&dir.join("numa_node")).as_deref()),
        driver: link_name(&dir.join("driver")),
        total_vfs,
        num_vfs: read_u64(&dir.join("sriov_numvfs")),
        vfs,
    }
}

/// Per-VF counters, from netlink or sysfs. `None`: the source does not give that counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VfCounters {
    pub rx_packets: Option<u64>,
    pub tx_packets: Option<u64>,
    pub rx_bytes: Option<u64>,
    pub tx_bytes: Option<u64>,
    pub rx_broadcast: Option<u64>,
    pub rx_multicast: Option<u64>,
    pub tx_broadcast: Option<u64>,
    pub tx_multicast: Option<u64>,
    pub rx_dropped: Option<u64>,
    pub tx_dropped: Option<u64>,
    pub tx_errors: Option<u64>,
}

impl VfCounters {
    pub fn is_empty(&self) -> bool {
        *self == VfCounters::default()
    }
}

/// Where a counter goes in [`VfCounters`].
pub type CounterSlot = fn(&mut VfCounters) -> &mut Option<u64>;

/// The counter files of the i40e/ice `sriov/<N>/stats/` directory this source reads, and where
/// each goes. Other files there (`rx_unicast`, `tx_unicast`...) are not read.
pub const SYSFS_STATS_FILES: &[(&str, CounterSlot)] = &[
    ("rx_packets", |c| &mut c.rx_packets),
    ("tx_packets", |c| &mut c.tx_packets),
    ("rx_bytes", |c| &mut c.rx_bytes),
    ("tx_bytes", |c| &mut c.tx_bytes),
    ("rx_broadcast", |c| &mut c.rx_broadcast),
    ("rx_multicast", |c| &mut c.rx_multicast),
    ("tx_broadcast", |c| &mut c.tx_broadcast),
    ("tx_multicast", |c| &mut c.tx_multicast),
    ("rx_dropped", |c| &mut c.rx_dropped),
    ("tx_dropped", |c| &mut c.tx_dropped),
    ("tx_errors", |c| &mut c.tx_errors),
];

/// `<sysclassnet>/<pf>/device/sriov/<vf>/stats`.
pub fn stats_dir(sysclassnet: &Path, pf: &str, vf: u32) -> PathBuf {
    sysclassnet
        .join(pf)
        .join("device/sriov")
        .join(vf.to_string())
        .join("stats")
}

/// Reads VF `vf`'s counters from the i40e/ice sysfs layout. `None` when the PF has no such
/// directory (another driver, or an i40e older than 2.11). A file that is missing, a symlink,
/// or not a decimal number leaves its counter out.
pub fn read_sysfs_stats(sysclassnet: &Path, pf: &str, vf: u32) -> Option<VfCounters> {
    if pf.is_empty() {
        return None;
    }
    let dir = stats_dir(sysclassnet, pf, vf);
    if !dir.is_dir() {
        return None;
    }
    let mut c = VfCounters::default();
    for (file, slot) in SYSFS_STATS_FILES {
        let path = dir.join(file);
        let is_symlink = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        if is_symlink {
            continue;
        }
        *slot(&mut c) = read_u64(&path);
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pure_helpers() {
        assert_eq!(parse_class("0x020000\n"), Some(0x020000));
        assert_eq!(parse_class("0x010802"), Some(0x010802));
        assert_eq!(parse_class("zz"), None);
        assert_eq!(parse_virtfn("virtfn0"), Some(0));
        assert_eq!(parse_virtfn("virtfn63"), Some(63));
        assert_eq!(parse_virtfn("virtfn"), None);
        assert_eq!(parse_virtfn("virtfnx"), None);
        assert_eq!(parse_virtfn("physfn"), None);
        assert_eq!(numa_label(Some("1\n")), "1");
        assert_eq!(numa_label(Some("-1\n")), "");
        assert_eq!(numa_label(None), "");
    }

    #[test]
    fn missing_bus_is_its_own_error() {
        let err = discover(Path::new("/nonexistent/sys/bus/pci/devices")).err();
        assert!(matches!(err, Some(SysfsError::NoPciBus { .. })), "{err:?}");
    }
}
