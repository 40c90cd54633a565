//! Drops: what the `kfree_skb` program counts, named and attributed.
//!
//! - [`Reasons`]: drop reason values to names, from the running kernel's BTF: vmlinux's
//!   `enum skb_drop_reason` (the `SKB_DROP_REASON_` prefix cut: `NO_SOCKET`), and for each
//!   subsystem of `enum skb_drop_reason_subsys` (`OPENVSWITCH`…) the enums of that module's
//!   BTF whose values carry the subsystem (`OVS_DROP_LAST_ACTION`…). No table is compiled in:
//!   a new kernel's reasons appear by themselves, and a value no BTF names is served as its
//!   number.
//! - [`drop_config`]: the field offsets the program reads, from the same BTF.
//! - [`Netns`]: where a drop happened. The program records the device's network namespace
//!   (inode) and ifindex; a namespace other than the daemon's is found by its inode under
//!   `/run/netns` or a process's `/proc/PID/ns/net`, and its links are dumped over rtnetlink
//!   from a thread that enters it, so the pod end of a veth (`eth0` in the pod) leads to its
//!   peer, the OVS port. Namespaces and devices that are gone are reported, so their keys are
//!   deleted from the map (no stale series).

use super::btf::Btf;
use super::engine::OffsetsError;
use crate::netlink::{self, NetlinkError, Protocol, Request, Socket};
use collector_common::{DROP_REASON_SUBSYS_SHIFT, DropConfig};
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A drop reason's subsystem (`core`, `openvswitch`) and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub subsystem: String,
    pub name: String,
}

/// Why drops cannot be counted on this kernel.
#[derive(Debug, thiserror::Error)]
pub enum DropsError {
    #[error("the kernel's BTF has no enum skb_drop_reason (drop reasons came with Linux 5.17)")]
    NoReasons,
    #[error("the kernel's BTF has no {0} in enum skb_drop_reason")]
    NoValue(&'static str),
    #[error(transparent)]
    Offsets(#[from] OffsetsError),
}

const CORE_PREFIX: &str = "SKB_DROP_REASON_";
const SUBSYS_PREFIX: &str = "SKB_DROP_REASON_SUBSYS_";

/// Drop reason values to names, for one kernel (and the modules loaded when it was built).
#[derive(Debug, Clone, Default)]
pub struct Reasons {
    by_value: HashMap<u32, Reason>,
    /// Subsystem number to its name (lower case).
    subsystems: HashMap<u32, String>,
    pub not_dropped_yet: u32,
    pub consumed: u32,
}

impl Reasons {
    /// From vmlinux's BTF and `module(name)`, the split BTF of a loaded module (None: not
    /// loaded, or no BTF).
    pub fn from_btf(
        vmlinux: &Btf,
        module: &dyn Fn(&str) -> Option<Btf>,
    ) -> Result<Reasons, DropsError> {
        let core = vmlinux
            .enum_values("skb_drop_reason")
            .ok_or(DropsError::NoReasons)?;
        let mut r = Reasons::default();
        let value_of = |name: &'static str| {
            core.iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| u32::try_from(*v).ok())
                .ok_or(DropsError::NoValue(name))
        };
        r.not_dropped_yet = value_of("SKB_NOT_DROPPED_YET").unwrap_or(0);
        // Linux 6.1 frees consumed packets through consume_skb only (no SKB_CONSUMED): a
        // value no reason has.
        r.consumed = value_of("SKB_CONSUMED").unwrap_or(u32::MAX);
        r.subsystems.insert(0, "core".to_owned());
        for (name, value) in &core {
            let Ok(v) = u32::try_from(*value) else {
                continue;
            };
            let short = name.strip_prefix(CORE_PREFIX).unwrap_or(name);
            r.by_value.entry(v).or_insert_with(|| Reason {
                subsystem: "core".to_owned(),
                name: short.to_owned(),
            });
        }
        for (name, value) in vmlinux
            .enum_values("skb_drop_reason_subsys")
            .unwrap_or_default()
        {
            let (Some(sub), Ok(s)) = (name.strip_prefix(SUBSYS_PREFIX), u32::try_from(value))
            else {
                continue;
            };
            if s == 0 || sub == "NUM" {
                continue;
            }
            let sub = sub.to_ascii_lowercase();
            r.subsystems.insert(s, sub.clone());
            // The module is named as the subsystem, or as its first word
            // (`MAC80211_UNUSABLE` is mac80211's).
            let first = sub.split('_').next().unwrap_or(&sub).to_owned();
            let Some(btf) = module(&sub).or_else(|| module(&first)) else {
                continue;
            };
            for e in btf.enum_names() {
                for (n, v) in btf.enum_values(e).unwrap_or_default() {
                    if let Ok(v) = u32::try_from(v)
                        && v >> DROP_REASON_SUBSYS_SHIFT == s
                        && !n.starts_with("__")
                    {
                        r.by_value.entry(v).or_insert_with(|| Reason {
                            subsystem: sub.clone(),
                            name: n,
                        });
                    }
                }
            }
        }
        Ok(r)
    }

    /// Reads the running kernel's BTF (`/sys/kernel/btf`).
    pub fn from_kernel() -> Result<(Btf, Reasons), DropsError> {
        let vmlinux = read_vmlinux()?;
        let module = |name: &str| {
            let data = std::fs::read(Path::new("/sys/kernel/btf").join(name)).ok()?;
            Btf::parse(&data, Some(&vmlinux)).ok()
        };
        let reasons = Reasons::from_btf(&vmlinux, &module)?;
        Ok((vmlinux, reasons))
    }

    /// The reason's name, if this kernel's BTF has it.
    pub fn get(&self, value: u32) -> Option<&Reason> {
        self.by_value.get(&value)
    }

    /// The reason's name; a value no BTF named is its number, under its subsystem's name when
    /// that is known (a module loaded after the table was made), else `unknown`.
    pub fn name(&self, value: u32) -> Reason {
        self.get(value).cloned().unwrap_or_else(|| Reason {
            subsystem: self
                .subsystems
                .get(&(value >> DROP_REASON_SUBSYS_SHIFT))
                .cloned()
                .unwrap_or_else(|| "unknown".to_owned()),
            name: value.to_string(),
        })
    }

    /// Number of named reasons.
    pub fn len(&self) -> usize {
        self.by_value.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_value.is_empty()
    }
}

fn read_vmlinux() -> Result<Btf, OffsetsError> {
    const VMLINUX: &str = "/sys/kernel/btf/vmlinux";
    let data = std::fs::read(VMLINUX).map_err(|source| OffsetsError::Read {
        path: VMLINUX,
        source,
    })?;
    Btf::parse(&data, None).map_err(|source| OffsetsError::Parse {
        path: VMLINUX,
        source,
    })
}

/// The drop program's settings: offsets from `vmlinux`, the values that are not drops from
/// `reasons`.
pub fn drop_config(vmlinux: &Btf, reasons: &Reasons) -> Result<DropConfig, OffsetsError> {
    let need = |strukt: &'static str, member: &'static str| {
        vmlinux
            .member_offset(strukt, member)
            .ok_or(OffsetsError::Member { strukt, member })
    };
    Ok(DropConfig {
        skb_dev: need("sk_buff", "dev")?,
        skb_iif: need("sk_buff", "skb_iif")?,
        skb_protocol: need("sk_buff", "protocol")?,
        skb_head: need("sk_buff", "head")?,
        skb_network_header: need("sk_buff", "network_header")?,
        dev_ifindex: need("net_device", "ifindex")?,
        // `possible_net_t` holds just the `struct net *` (when namespaces are built in).
        dev_nd_net: need("net_device", "nd_net")?,
        net_ns_inum: need("net", "ns")? + need("ns_common", "inum")?,
        not_dropped_yet: reasons.not_dropped_yet,
        consumed: reasons.consumed,
        enabled: 1,
        _pad: 0,
    })
}

/// A link of a network namespace, as rtnetlink tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub ifindex: u32,
    pub name: String,
    /// `IFLA_LINK`: for a veth, its peer's ifindex.
    pub peer: Option<u32>,
    /// `IFLA_LINK_NETNSID` was given: the peer is in another namespace (for a pod's `eth0`,
    /// the host's).
    pub peer_elsewhere: bool,
}

const RTM_GETLINK: u16 = 18;
const RTM_NEWLINK: u16 = 16;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINK: u16 = 5;
const IFLA_EXT_MASK: u16 = 29;
const IFLA_LINK_NETNSID: u16 = 37;
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;
const IFINFOMSG_LEN: usize = 16;
/// Links read from one namespace at most (a pod has a handful).
pub const MAX_LINKS: usize = 4096;

/// Decodes one `RTM_NEWLINK` body (pure; malformed attributes end the walk, never a panic).
pub fn parse_link(payload: &[u8]) -> Option<Link> {
    let hdr = payload.get(..IFINFOMSG_LEN)?;
    let ifindex = u32::from_ne_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
    let mut link = Link {
        ifindex,
        name: String::new(),
        peer: None,
        peer_elsewhere: false,
    };
    for a in netlink::attrs(&payload[IFINFOMSG_LEN..]) {
        let Ok(a) = a else { break };
        match a.kind {
            IFLA_IFNAME => link.name = a.string(),
            IFLA_LINK => link.peer = a.u32("IFLA_LINK").ok().filter(|&p| p != 0),
            IFLA_LINK_NETNSID => link.peer_elsewhere = true,
            _ => {}
        }
    }
    Some(link)
}

/// The links of the namespace at `netns` (None: the calling thread's), from a thread of its
/// own that enters it.
pub fn links_in(netns: Option<&Path>, timeout: Duration) -> Result<Vec<Link>, NetlinkError> {
    let path = netns.map(Path::to_path_buf);
    let dump = move || -> Result<Vec<Link>, NetlinkError> {
        let mut sock = Socket::open_in(Protocol::Route, timeout, path.as_deref())?;
        let seq = sock.next_seq();
        let req = Request::dump(RTM_GETLINK, seq)
            .header(&[0u8; IFINFOMSG_LEN])
            .attr(IFLA_EXT_MASK, &RTEXT_FILTER_SKIP_STATS.to_ne_bytes())
            .finish();
        let mut links = Vec::new();
        sock.dump(&req, seq, |m| {
            if m.msg_type == RTM_NEWLINK
                && links.len() < MAX_LINKS
                && let Some(l) = parse_link(m.payload)
            {
                links.push(l);
            }
            Ok::<(), Infallible>(())
        })?;
        Ok(links)
    };
    if netns.is_none() {
        return dump();
    }
    // Entering a namespace changes the thread: a thread of its own, thrown away after.
    std::thread::Builder::new()
        .name("dpc-netns".into())
        .spawn(dump)
        .map_err(|source| NetlinkError::Thread { source })?
        .join()
        .unwrap_or_else(|_| {
            Err(NetlinkError::Thread {
                source: std::io::Error::other("the namespace thread panicked"),
            })
        })
}

/// The inode of the daemon's own network namespace.
pub fn own_netns() -> Option<u32> {
    std::fs::metadata("/proc/self/ns/net")
        .ok()
        .and_then(|m| u32::try_from(m.ino()).ok())
}

/// Processes looked at, at most, when looking for namespaces by inode.
pub const MAX_PROCS: usize = 65_536;

/// Finds a path that opens each namespace of `want`: `/run/netns/*` first (what `ip netns`
/// and CNI plugins bind-mount), then `/proc/PID/ns/net`.
pub fn find_netns(want: &HashSet<u32>, proc: &Path, run_netns: &Path) -> HashMap<u32, PathBuf> {
    let mut found = HashMap::new();
    if want.is_empty() {
        return found;
    }
    if let Ok(dir) = std::fs::read_dir(run_netns) {
        for e in dir.flatten().take(MAX_PROCS) {
            let p = e.path();
            if let Ok(m) = std::fs::metadata(&p)
                && let Ok(ino) = u32::try_from(m.ino())
                && want.contains(&ino)
            {
                found.entry(ino).or_insert(p);
            }
        }
    }
    if found.len() == want.len() {
        return found;
    }
    if let Ok(dir) = std::fs::read_dir(proc) {
        for e in dir.flatten().take(MAX_PROCS) {
            let name = e.file_name();
            if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
                continue;
            }
            let p = e.path().join("ns/net");
            let Ok(target) = std::fs::read_link(&p) else {
                continue;
            };
            let t = target.to_string_lossy();
            if let Some(ino) = t
                .strip_prefix("net:[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|n| n.parse::<u32>().ok())
                && want.contains(&ino)
            {
                found.entry(ino).or_insert(p);
                if found.len() == want.len() {
                    break;
                }
            }
        }
    }
    found
}

/// One namespace's links, and when they were read.
#[derive(Debug, Clone)]
struct NsEntry {
    path: PathBuf,
    links: Arc<HashMap<u32, Link>>,
    read: Instant,
}

/// Where a (namespace, ifindex) is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A device of the daemon's namespace: its ifindex there.
    Own { ifindex: u32 },
    /// A device of another namespace; `host_ifindex`: its veth peer in the daemon's namespace.
    Other {
        device: String,
        host_ifindex: Option<u32>,
    },
    /// The namespace or the device is gone.
    Gone,
    /// The namespace exists but could not be read (nothing to attribute it to yet).
    Unknown,
}

/// Links of the namespaces drops were seen in, kept a while (a pod's links rarely change).
#[derive(Debug)]
pub struct Netns {
    own: Option<u32>,
    cache: HashMap<u32, NsEntry>,
    proc: PathBuf,
    run_netns: PathBuf,
    ttl: Duration,
    timeout: Duration,
}

/// Namespaces read per call at most (each is a thread and a dump).
pub const MAX_NETNS_PER_CALL: usize = 256;

impl Netns {
    pub fn new() -> Netns {
        Netns {
            own: own_netns(),
            cache: HashMap::new(),
            proc: "/proc".into(),
            run_netns: "/run/netns".into(),
            ttl: Duration::from_secs(30),
            timeout: Duration::from_secs(1),
        }
    }

    /// The daemon's own namespace.
    pub fn own(&self) -> Option<u32> {
        self.own
    }

    /// Where each of `keys` (namespace inode, ifindex) is. `exists(ifindex)` says whether a
    /// device of the daemon's namespace exists.
    pub fn places(
        &mut self,
        keys: &HashSet<(u32, u32)>,
        exists: &dyn Fn(u32) -> bool,
    ) -> HashMap<(u32, u32), Place> {
        let now = Instant::now();
        let others: HashSet<u32> = keys
            .iter()
            .map(|(ns, _)| *ns)
            .filter(|ns| Some(*ns) != self.own && *ns != 0)
            .collect();
        // A cached namespace still there (its path opens the same inode) and fresh is kept.
        self.cache.retain(|ns, e| {
            others.contains(ns)
                && now.duration_since(e.read) < self.ttl
                && std::fs::metadata(&e.path)
                    .ok()
                    .and_then(|m| u32::try_from(m.ino()).ok())
                    == Some(*ns)
        });
        let missing: HashSet<u32> = others
            .iter()
            .filter(|ns| !self.cache.contains_key(ns))
            .copied()
            .collect();
        let paths = find_netns(&missing, &self.proc, &self.run_netns);
        let mut unreadable = HashSet::new();
        for (ns, path) in paths.into_iter().take(MAX_NETNS_PER_CALL) {
            match links_in(Some(&path), self.timeout) {
                Ok(links) => {
                    let links = links.into_iter().map(|l| (l.ifindex, l)).collect();
                    self.cache.insert(
                        ns,
                        NsEntry {
                            path,
                            links: Arc::new(links),
                            read: now,
                        },
                    );
                }
                Err(e) => {
                    tracing::debug!(netns = ns, error = %e, "cannot read a namespace's links");
                    unreadable.insert(ns);
                }
            }
        }
        keys.iter()
            .map(|&(ns, ifindex)| {
                let place = if ns == 0 || Some(ns) == self.own {
                    if ifindex == 0 || exists(ifindex) {
                        Place::Own { ifindex }
                    } else {
                        Place::Gone
                    }
                } else if let Some(e) = self.cache.get(&ns) {
                    match e.links.get(&ifindex) {
                        Some(l) => Place::Other {
                            device: l.name.clone(),
                            host_ifindex: l.peer.filter(|_| l.peer_elsewhere),
                        },
                        None if ifindex == 0 => Place::Other {
                            device: String::new(),
                            host_ifindex: None,
                        },
                        None => Place::Gone,
                    }
                } else if unreadable.contains(&ns) || missing.len() > MAX_NETNS_PER_CALL {
                    Place::Unknown
                } else {
                    Place::Gone
                };
                ((ns, ifindex), place)
            })
            .collect()
    }
}

impl Default for Netns {
    fn default() -> Self {
        Netns::new()
    }
}

/// `skb->protocol` and the IP next header as a label value: `tcp`, `udp`… for IP, else the
/// ethertype's name (`arp`) or number.
pub fn protocol_label(protocol: u16, ip_proto: u8) -> String {
    match (protocol, ip_proto) {
        (0x0800 | 0x86dd, p) if p != 0 => super::encode::protocol(p),
        (0x0800, _) => "ipv4".to_owned(),
        (0x86dd, _) => "ipv6".to_owned(),
        (0x0806, _) => "arp".to_owned(),
        (0x88cc, _) => "lldp".to_owned(),
        (0, _) => String::new(),
        (p, _) => format!("{p:#06x}"),
    }
}

/// One series of `ebpf_drops_total`.
#[derive(Debug, Clone, PartialEq)]
pub struct DropRow {
    pub reason: Reason,
    /// The device in its namespace (`eth0` in a pod, the OVS port's netdev on the host);
    /// `other` on the folded series.
    pub device: String,
    /// The OVS port (and its pod) the device is, or is the veth peer of.
    pub info: super::PortInfo,
    pub protocol: String,
    /// `DIR_*`; None on the folded series.
    pub direction: Option<u8>,
    pub count: u64,
}

/// A drop key with what it was attributed to.
#[derive(Debug, Clone)]
pub struct Attributed {
    pub reason: Reason,
    pub device: String,
    pub info: super::PortInfo,
    pub protocol: String,
    pub direction: u8,
    pub count: u64,
}

/// Sums keys with the same labels, keeps the `max_series` with the most drops (0: all; ties
/// broken by the labels, so the choice is stable) and folds the rest into one series per
/// reason (`device="other"`). Returns the rows and how many series were folded.
pub fn fold(items: Vec<Attributed>, max_series: usize) -> (Vec<DropRow>, u64) {
    type Labels = (
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        u8,
    );
    let labels = |a: &Attributed| -> Labels {
        let (ns, pod) = a
            .info
            .pod
            .as_ref()
            .map(|p| (p.namespace.clone(), p.pod.clone()))
            .unwrap_or_default();
        (
            a.reason.subsystem.clone(),
            a.reason.name.clone(),
            a.device.clone(),
            a.info.bridge.clone(),
            a.info.port.clone(),
            ns,
            pod,
            a.protocol.clone(),
            a.direction,
        )
    };
    let mut sums: HashMap<Labels, Attributed> = HashMap::new();
    for a in items {
        let k = labels(&a);
        match sums.get_mut(&k) {
            Some(e) => e.count = e.count.saturating_add(a.count),
            None => {
                sums.insert(k, a);
            }
        }
    }
    let mut all: Vec<(Labels, Attributed)> = sums.into_iter().collect();
    all.sort_by(|(ka, a), (kb, b)| b.count.cmp(&a.count).then_with(|| ka.cmp(kb)));
    let keep = if max_series == 0 {
        all.len()
    } else {
        max_series.min(all.len())
    };
    let mut folded: std::collections::BTreeMap<(String, String), u64> = Default::default();
    let mut n_folded = 0u64;
    for (_, a) in all.drain(keep..) {
        let e = folded
            .entry((a.reason.subsystem, a.reason.name))
            .or_default();
        *e = e.saturating_add(a.count);
        n_folded += 1;
    }
    let mut rows: Vec<DropRow> = all
        .into_iter()
        .map(|(_, a)| DropRow {
            reason: a.reason,
            device: a.device,
            info: a.info,
            protocol: a.protocol,
            direction: Some(a.direction),
            count: a.count,
        })
        .collect();
    rows.extend(
        folded
            .into_iter()
            .map(|((subsystem, name), count)| DropRow {
                reason: Reason { subsystem, name },
                device: "other".to_owned(),
                info: super::PortInfo::default(),
                protocol: String::new(),
                direction: None,
                count,
            }),
    );
    (rows, n_folded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_decode_and_malformed_attributes_stop_the_walk() {
        let mut body = vec![0u8; IFINFOMSG_LEN];
        body[4..8].copy_from_slice(&7u32.to_ne_bytes());
        netlink::push_attr(&mut body, IFLA_IFNAME, b"eth0\0");
        netlink::push_attr(&mut body, IFLA_LINK, &12u32.to_ne_bytes());
        netlink::push_attr(&mut body, IFLA_LINK_NETNSID, &0i32.to_ne_bytes());
        assert_eq!(
            parse_link(&body),
            Some(Link {
                ifindex: 7,
                name: "eth0".into(),
                peer: Some(12),
                peer_elsewhere: true,
            })
        );
        // A length past the end: the walk stops, what was read is kept.
        let mut bad = vec![0u8; IFINFOMSG_LEN];
        netlink::push_attr(&mut bad, IFLA_IFNAME, b"lo\0");
        bad.extend_from_slice(&[200, 0, 5, 0, 1]);
        let l = parse_link(&bad).map(|l| (l.name, l.peer));
        assert_eq!(l, Some(("lo".into(), None)));
        assert_eq!(parse_link(&[0; 3]), None);
    }

    #[test]
    fn this_kernels_reasons_come_from_its_btf() {
        let Ok((vmlinux, reasons)) = Reasons::from_kernel() else {
            eprintln!("SKIPPED: no kernel BTF with drop reasons");
            return;
        };
        let names: Vec<String> = (0..512)
            .filter_map(|v| reasons.get(v))
            .map(|r| r.name.clone())
            .collect();
        for want in ["NO_SOCKET", "NETFILTER_DROP", "NOT_SPECIFIED"] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        assert_ne!(reasons.consumed, reasons.not_dropped_yet);
        let cfg = drop_config(&vmlinux, &reasons).map_err(|e| e.to_string());
        let Ok(cfg) = cfg else { panic!("{cfg:?}") };
        assert!(
            cfg.skb_dev != cfg.skb_protocol && cfg.net_ns_inum > 0,
            "{cfg:?}"
        );
        // A value no BTF names: its number, under its subsystem's name when known.
        let r = reasons.name(0xfffe);
        assert_eq!((r.subsystem.as_str(), r.name.as_str()), ("core", "65534"));
        assert_eq!(reasons.name(0x7f_0001).subsystem, "unknown");
    }

    fn item(name: &str, device: &str, count: u64) -> Attributed {
        Attributed {
            reason: Reason {
                subsystem: "core".into(),
                name: name.into(),
            },
            device: device.into(),
            info: super::super::PortInfo::default(),
            protocol: "udp".into(),
            direction: 0,
            count,
        }
    }

    #[test]
    fn the_most_dropped_series_are_kept_and_the_rest_folded_per_reason() {
        let items = vec![
            item("NO_SOCKET", "a", 5),
            item("NO_SOCKET", "a", 2), // same labels (two namespaces unresolved alike): summed
            item("NO_SOCKET", "b", 1),
            item("NETFILTER_DROP", "c", 3),
            item("NETFILTER_DROP", "d", 3),
        ];
        let (rows, folded) = fold(items.clone(), 2);
        let got: Vec<(&str, &str, u64)> = rows
            .iter()
            .map(|r| (r.reason.name.as_str(), r.device.as_str(), r.count))
            .collect();
        assert_eq!(
            got,
            [
                ("NO_SOCKET", "a", 7),
                ("NETFILTER_DROP", "c", 3),
                ("NETFILTER_DROP", "other", 3),
                ("NO_SOCKET", "other", 1),
            ]
        );
        assert_eq!(folded, 2);
        // Nothing lost: the sum over the rows is the sum of the map.
        assert_eq!(rows.iter().map(|r| r.count).sum::<u64>(), 14);
        let (all, none) = fold(items, 0);
        assert_eq!((all.len(), none), (4, 0));
    }

    #[test]
    fn protocols_are_named() {
        assert_eq!(protocol_label(0x0800, 17), "udp");
        assert_eq!(protocol_label(0x86dd, 58), "icmpv6");
        assert_eq!(protocol_label(0x0800, 0), "ipv4");
        assert_eq!(protocol_label(0x0806, 0), "arp");
        assert_eq!(protocol_label(0x8847, 0), "0x8847");
        assert_eq!(protocol_label(0, 0), "");
    }
}
