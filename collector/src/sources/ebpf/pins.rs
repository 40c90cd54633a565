//! The pin directory (`--ebpf.pin-path`): checked to be a bpffs directory of the collector's
//! own, then swept at start-up before the maps are loaded from it.
//!
//! - `DIR/<MAP>`: the pinned maps. One whose definition (type, key or value size, size, flags)
//!   differs from what this run loads — a changed `--ebpf.max-*` flag, an upgrade that changed a
//!   map — is unpinned so that a new one is created, with a log line (its counts are lost; a
//!   map of the wrong shape must not be handed to the programs).
//! - `DIR/links/ingress_<netdev>`, `egress_<netdev>`: the pinned TCX links. One whose netdev is gone, or
//!   whose link no longer points at that netdev (the netdev went while the daemon was down;
//!   the kernel detached the link and left it defunct), is unpinned and so released.
//!
//! Nothing outside `DIR` is ever touched, and inside it only the names the daemon itself
//! creates. `DIR` must not be the root of a bpffs mount, where other programs pin their
//! objects: the daemon refuses to load with such a pin path.

use aya::maps::{MapInfo, MapType};
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// Where the DaemonSet pins (and what the docs recommend).
pub const DEFAULT_PIN_PATH: &str = "/sys/fs/bpf/dataplane-collector";

/// The pinned maps' definitions, as the kernel reports them for a pinned map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapDef {
    pub name: &'static str,
    pub map_type: MapType,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

/// The maps this run pins, with their sizes from the flags.
pub fn pinned_maps(cfg: &super::Config) -> [MapDef; 5] {
    use collector_common::{
        Counters, DropKey, FlowCounters, FlowKey, IpvsConnKey, PortKey, VportCounters,
    };
    use std::mem::size_of;
    let def = |name, map_type, key: usize, value: usize, max_entries| MapDef {
        name,
        map_type,
        key_size: key as u32,
        value_size: value as u32,
        max_entries,
        flags: 0,
    };
    [
        def(
            "PORTS",
            MapType::PerCpuHash,
            size_of::<PortKey>(),
            size_of::<Counters>(),
            super::ports_map_entries(cfg.max_ports),
        ),
        def(
            "FLOWS",
            MapType::LruPerCpuHash,
            size_of::<FlowKey>(),
            size_of::<FlowCounters>(),
            cfg.max_flows,
        ),
        def(
            "VPORTS",
            MapType::PerCpuHash,
            size_of::<u32>(),
            size_of::<VportCounters>(),
            cfg.max_ports,
        ),
        def(
            "IPVS_CONNS",
            MapType::LruPerCpuHash,
            size_of::<IpvsConnKey>(),
            size_of::<u64>(),
            cfg.max_ipvs_conns,
        ),
        def(
            "DROPS",
            MapType::PerCpuHash,
            size_of::<DropKey>(),
            size_of::<u64>(),
            cfg.max_drop_entries,
        ),
    ]
}

/// Unescapes a mountinfo path field (`\040` for a space, and so on).
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks that `dir` (absolute, symlinks resolved) is on a bpffs and is not the root of that
/// bpffs, from the text of `/proc/self/mountinfo`. A bind mount of a bpffs subdirectory (what
/// a hostPath volume of `/sys/fs/bpf/dataplane-collector` gives the container) is fine: its
/// mountinfo root is that subdirectory.
pub fn check_own_dir(dir: &Path, mountinfo: &str) -> Result<(), MountError> {
    let mut best: Option<(usize, String, PathBuf)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(root), Some(point), Some(fstype)) =
            (fields.get(3), fields.get(4), fields.get(sep + 1))
        else {
            continue;
        };
        let point = PathBuf::from(unescape(point));
        if !dir.starts_with(&point) {
            continue;
        }
        let depth = point.components().count();
        // The deepest mount point wins; among equals, the last mounted (it hides the others).
        if best.as_ref().is_none_or(|(d, _, _)| depth >= *d) {
            let rel = dir.strip_prefix(&point).unwrap_or(Path::new(""));
            best = Some((
                depth,
                (*fstype).to_owned(),
                PathBuf::from(unescape(root)).join(rel),
            ));
        }
    }
    let Some((_, fstype, in_fs)) = best else {
        return Err(MountError::NotMounted {
            dir: dir.to_owned(),
        });
    };
    if fstype != "bpf" {
        return Err(MountError::NotBpffs {
            dir: dir.to_owned(),
            fstype,
        });
    }
    let is_root = in_fs
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::CurDir));
    if is_root {
        return Err(MountError::BpffsRoot {
            dir: dir.to_owned(),
        });
    }
    Ok(())
}

/// Creates `dir` if needed and checks it is the collector's own bpffs directory; returns it
/// with symlinks resolved.
pub fn prepare_dir(dir: &Path) -> Result<PathBuf, PinDirError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| PinDirError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let dir = dir.canonicalize().map_err(io(dir))?;
    let mountinfo = Path::new("/proc/self/mountinfo");
    let text = std::fs::read_to_string(mountinfo).map_err(io(mountinfo))?;
    check_own_dir(&dir, &text)?;
    Ok(dir)
}

/// Why a pin directory is not the collector's own bpffs directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    #[error("{} is on no mounted file system", dir.display())]
    NotMounted { dir: PathBuf },
    #[error(
        "{} is not on a bpffs (it is on {fstype}); mount one, e.g. `mount -t bpf bpf /sys/fs/bpf`",
        dir.display()
    )]
    NotBpffs { dir: PathBuf, fstype: String },
    #[error(
        "{} is the root of a bpffs, where other programs pin their maps and links: use a \
         directory of the collector's own, e.g. {DEFAULT_PIN_PATH}",
        dir.display()
    )]
    BpffsRoot { dir: PathBuf },
}

/// `--ebpf.pin-path` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PinDirError {
    #[error("--ebpf.pin-path: {0}")]
    Mount(#[from] MountError),
    #[error("--ebpf.pin-path: {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a pinned map's definition differs in from `want`, if anything (`None`: reuse it).
pub fn map_def_change(info: &MapInfo, want: &MapDef) -> Option<String> {
    let ty = info.map_type().ok();
    let mut diffs = Vec::new();
    if ty != Some(want.map_type) {
        diffs.push(format!("type {ty:?} → {:?}", want.map_type));
    }
    for (what, have, need) in [
        ("key size", info.key_size(), want.key_size),
        ("value size", info.value_size(), want.value_size),
        ("max entries", info.max_entries(), want.max_entries),
        ("flags", info.map_flags(), want.flags),
    ] {
        if have != need {
            diffs.push(format!("{what} {have} → {need}"));
        }
    }
    (!diffs.is_empty()).then(|| diffs.join(", "))
}

/// Unpins every map in `dir` whose definition changed; returns their names.
pub fn recreate_changed_maps(dir: &Path, defs: &[MapDef]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for def in defs {
        let path = dir.join(def.name);
        if std::fs::symlink_metadata(&path).is_err() {
            continue;
        }
        let change = match MapInfo::from_pin(&path) {
            Ok(info) => map_def_change(&info, def),
            Err(e) => Some(format!("not a readable map ({e})")),
        };
        if let Some(change) = change {
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::warn!(
                        map = def.name,
                        path = %path.display(),
                        change = %change,
                        "pinned map definition changed: creating a new one (its counts start from 0)"
                    );
                    out.push(def.name);
                }
                Err(e) => tracing::warn!(
                    map = def.name,
                    path = %path.display(),
                    error = %e,
                    "pinned map definition changed but it cannot be unpinned"
                ),
            }
        }
    }
    out
}

/// The file name of `netdev`'s link pin in `direction` (`ingress` or `egress`):
/// `ingress_<netdev>`, with every `.` of the netdev's name written `:`. bpffs refuses names with
/// a dot (reserved for the kernel's own files), netdev names often have one (`eth0.100`) and
/// never a `:`, so the name reads back unambiguously.
pub fn link_pin_file(netdev: &str, direction: &str) -> String {
    format!("{direction}_{}", netdev.replace('.', ":"))
}

/// The netdev name and direction of a link pin's file name (see [`link_pin_file`]).
pub fn link_pin_name(file: &str) -> Option<(String, &'static str)> {
    let (direction, rest) = if let Some(rest) = file.strip_prefix("ingress_") {
        ("ingress", rest)
    } else {
        ("egress", file.strip_prefix("egress_")?)
    };
    (!rest.is_empty() && !rest.contains('.')).then(|| (rest.replace(':', "."), direction))
}

/// Why a pinned link of `netdev` is stale, if it is: the netdev is gone (`current` is None),
/// or the link is defunct (its netdev went: ifindex 0) or on another netdev.
pub fn link_stale(current: Option<u32>, link_ifindex: Option<u32>) -> Option<&'static str> {
    match (current, link_ifindex) {
        (None, _) => Some("netdev gone"),
        (Some(_), Some(0)) => Some("link defunct (its netdev went away)"),
        (Some(c), Some(l)) if c != l => Some("link on another netdev"),
        (Some(_), None) => Some("not a TCX link"),
        _ => None,
    }
}

/// Unpins the stale links in `dir/links` (see [`link_stale`]) and, when `keep` is given,
/// those of netdevs not in it; returns the removed pins' file names.
pub fn sweep_links(dir: &Path, keep: Option<&BTreeSet<String>>) -> Vec<String> {
    let links = dir.join("links");
    let Ok(entries) = std::fs::read_dir(&links) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some((netdev, _)) = link_pin_name(&file) else {
            tracing::debug!(pin = %file, "not a link pin of ours: left alone");
            continue;
        };
        let path = entry.path();
        let why = match keep {
            Some(k) if !k.contains(&netdev) => Some("netdev no longer an OVS port"),
            _ => link_stale(super::engine::ifindex(&netdev), tcx_link_ifindex(&path)),
        };
        let Some(why) = why else { continue };
        match std::fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!(pin = %path.display(), reason = why, "stale pinned link removed");
                removed.push(file);
            }
            Err(e) => {
                tracing::warn!(pin = %path.display(), error = %e, "cannot remove a stale pinned link")
            }
        }
    }
    removed.sort();
    removed
}

/// The ifindex a pinned TCX link is attached to (0 once its netdev is gone), or None if the
/// pin is not a TCX link. aya's `LinkInfo` does not expose it: `bpf(2)` directly.
#[expect(unsafe_code, reason = "bpf(2) with attribute structs we own")]
pub fn tcx_link_ifindex(pin: &Path) -> Option<u32> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    const BPF_OBJ_GET: libc::c_long = 7;
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    const BPF_LINK_TYPE_TCX: u32 = 11;
    #[repr(C)]
    struct ObjGet {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
        path_fd: i32,
        _pad: u32,
    }
    #[repr(C)]
    struct GetInfo {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let path = std::ffi::CString::new(pin.as_os_str().as_bytes()).ok()?;
    let mut get = ObjGet {
        pathname: path.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
        path_fd: 0,
        _pad: 0,
    };
    // SAFETY: `get` is a valid bpf_attr prefix for BPF_OBJ_GET, `path` outlives the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET,
            &mut get as *mut ObjGet,
            std::mem::size_of::<ObjGet>(),
        )
    };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: BPF_OBJ_GET returned a new file descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // struct bpf_link_info: type, id, prog_id, then (8-aligned) the per-type union, whose
    // tcx member starts with ifindex.
    let mut info = [0u64; 16];
    let mut attr = GetInfo {
        bpf_fd: u32::try_from(fd.as_raw_fd()).ok()?,
        info_len: std::mem::size_of_val(&info) as u32,
        info: info.as_mut_ptr() as u64,
    };
    // SAFETY: `attr` is a valid bpf_attr prefix for BPF_OBJ_GET_INFO_BY_FD; `info` is
    // writable for `info_len` bytes and outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &mut attr as *mut GetInfo,
            std::mem::size_of::<GetInfo>(),
        )
    };
    if r < 0 {
        return None;
    }
    let link_type = info[0] as u32;
    if link_type != BPF_LINK_TYPE_TCX {
        return None;
    }
    Some(info[2] as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:21 / /sys rw,nosuid shared:2 - sysfs sysfs rw
30 23 0:28 / /sys/fs/bpf rw,nosuid shared:9 - bpf bpf rw,mode=700
41 22 0:28 /dataplane-collector /pins rw - bpf bpf rw
42 22 0:40 / /my\\040pins rw - bpf bpf rw
";

    #[test]
    fn the_pin_dir_must_be_a_bpffs_subdirectory() {
        let ok = |p: &str| check_own_dir(Path::new(p), MOUNTINFO);
        assert_eq!(ok("/sys/fs/bpf/dataplane-collector"), Ok(()));
        assert_eq!(ok("/sys/fs/bpf/a/b"), Ok(()));
        // A bind mount of a bpffs subdirectory (the container's view of a hostPath volume).
        assert_eq!(ok("/pins"), Ok(()));
        assert_eq!(ok("/pins/x"), Ok(()));
        let root = ok("/sys/fs/bpf").expect_err("root refused").to_string();
        assert!(root.contains("root of a bpffs") && root.contains(DEFAULT_PIN_PATH));
        assert!(ok("/my pins").is_err_and(|e| e.to_string().contains("root of a bpffs")));
        assert_eq!(ok("/my pins/sub"), Ok(()));
        let not = ok("/var/lib/x").expect_err("ext4 refused").to_string();
        assert!(
            not.contains("not on a bpffs") && not.contains("ext4"),
            "{not}"
        );
        assert!(ok("/sys/class").is_err_and(|e| e.to_string().contains("sysfs")));
        assert!(check_own_dir(Path::new("/x"), "").is_err());
    }

    #[test]
    fn the_last_mount_on_a_point_wins() {
        let m = format!("{MOUNTINFO}50 23 0:60 / /sys/fs/bpf rw - tmpfs tmpfs rw\n");
        assert!(
            check_own_dir(Path::new("/sys/fs/bpf/x"), &m)
                .is_err_and(|e| e.to_string().contains("tmpfs"))
        );
    }

    #[test]
    fn link_pins_are_named_by_netdev_and_direction() {
        assert_eq!(link_pin_file("veth1", "ingress"), "ingress_veth1");
        assert_eq!(link_pin_file("eth0.100", "egress"), "egress_eth0:100");
        for (netdev, dir) in [
            ("veth1", "ingress"),
            ("eth0.100", "egress"),
            ("a_b-c.d.e", "ingress"),
        ] {
            let file = link_pin_file(netdev, dir);
            assert!(!file.contains('.'), "bpffs refuses dots: {file}");
            assert_eq!(link_pin_name(&file), Some((netdev.to_owned(), dir)));
        }
        assert_eq!(link_pin_name("ingress_"), None);
        assert_eq!(link_pin_name("veth1.ingress"), None);
        assert_eq!(link_pin_name("other_veth1"), None);
        assert_eq!(link_pin_name("PORTS"), None);
    }

    #[test]
    fn stale_links() {
        assert_eq!(link_stale(None, Some(7)), Some("netdev gone"));
        assert_eq!(link_stale(None, None), Some("netdev gone"));
        assert!(link_stale(Some(7), Some(0)).is_some_and(|w| w.contains("defunct")));
        assert!(link_stale(Some(7), Some(8)).is_some());
        assert!(link_stale(Some(7), None).is_some());
        assert_eq!(link_stale(Some(7), Some(7)), None);
    }

    #[test]
    fn map_definitions_follow_the_flags() {
        let cfg = super::super::Config {
            max_ports: 10,
            max_flows: 2048,
            max_ipvs_conns: 4096,
            ..super::super::Config::for_tests()
        };
        let defs = pinned_maps(&cfg);
        let get = |n: &str| defs.iter().find(|d| d.name == n).copied().expect("def");
        assert_eq!(get("PORTS").max_entries, 20);
        assert_eq!(get("PORTS").key_size, 8);
        assert_eq!(get("PORTS").value_size, 16);
        assert_eq!(get("VPORTS").max_entries, 10);
        assert_eq!(get("FLOWS").max_entries, 2048);
        assert_eq!(get("FLOWS").map_type, MapType::LruPerCpuHash);
        assert_eq!(get("IPVS_CONNS").max_entries, 4096);
        assert_eq!(get("IPVS_CONNS").map_type, MapType::LruPerCpuHash);
    }
}
