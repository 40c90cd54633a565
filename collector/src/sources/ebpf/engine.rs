//! The loaded programs and their maps: load once, attach to every OVS vport netdev as vports
//! come and go, read the maps at scrape time, retire idle flows into per-port totals, and
//! detach everything on shutdown (unless pinned).

use super::btf::{Btf, BtfError};
use super::{Config, ConfigError, EbpfError, PortTraffic, pins};
use aya::maps::{Array, MapData, MapError, PerCpuArray, PerCpuHashMap, PerCpuValues, RingBuf};
use aya::programs::kprobe::KProbeLinkId;
use aya::programs::links::LinkError;
use aya::programs::tc::{self, SchedClassifierLinkId, TcAttachOptions};
use aya::programs::{
    BtfTracePoint, KProbe, LinkOrder, ProgramError, RawTracePoint, SchedClassifier, TcAttachType,
};
use aya::{Ebpf, EbpfLoader};
use collector_common::{
    Config as ProgConfig, Counters, DIR_EGRESS, DIR_INGRESS, DropConfig, DropKey, EVENT_FLOW_END,
    EVENT_FLOW_START, FlowCounters, FlowEvent, FlowKey, IpvsConnKey, KernelOffsets, MAP_FULL_NAMES,
    MAP_FULL_PORTS, MAP_FULL_SLOTS, PortKey, VportCounters,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The eBPF object, built by `cargo xtask build-ebpf` and embedded at compile time (empty when
/// the daemon was built without it).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/collector-ebpf.o"));

/// How programs get attached to a netdev's TC hooks on this kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// BPF links on TCX (Linux 6.6+): no qdisc, pinnable, coexists with other programs.
    Tcx,
    /// Filters on a clsact qdisc over netlink.
    Clsact,
}

#[derive(Debug)]
struct Attached {
    ifindex: u32,
    ingress: Option<SchedClassifierLinkId>,
    egress: Option<SchedClassifierLinkId>,
    /// TCX links pinned under `--ebpf.pin-path` (they outlive the daemon).
    pins: Vec<PathBuf>,
}

struct Loaded {
    ebpf: Ebpf,
    mode: Option<AttachMode>,
    ingress_prog: &'static str,
    egress_prog: &'static str,
    attached: BTreeMap<String, Attached>,
    /// Attached kprobes.
    kprobes: BTreeMap<&'static str, KProbeLinkId>,
    /// Kprobes tried (and failed) since their module was last seen loaded: not retried until
    /// the module goes and comes back.
    kprobes_tried: HashSet<&'static str>,
    /// `--ebpf.pin-path` (checked, symlinks resolved) and its `links` subdirectory.
    pin_root: Option<PathBuf>,
    pin_dir: Option<PathBuf>,
    /// The drop program's hook (`tp_btf` or `raw_tp`), or why there is none.
    drop_hook: Result<&'static str, String>,
    /// Drop reason names, and when they were last read from BTF.
    reasons: Option<(super::drops::Reasons, std::time::Instant)>,
    /// Whether the links of netdevs that are no longer OVS ports were swept (once, on the
    /// first reconcile: only OVSDB knows which netdevs are ours).
    swept_unwanted: bool,
}

/// The kprobes: program (named as the kernel function it probes) and the module that has it.
const KPROBES: [(&str, &str); 3] = [
    ("ovs_vport_receive", "openvswitch"),
    ("ovs_dp_upcall", "openvswitch"),
    ("ip_vs_conn_new", "ip_vs"),
];

/// Counters of flows the daemon took out of the map (idle or ended), per (ifindex, direction).
#[derive(Debug, Default, Clone)]
pub struct Retired {
    pub totals: HashMap<(u32, u8), Counters>,
}

/// Flow lifecycle events seen on the ring buffer, per ifindex: (started, ended).
pub type FlowEvents = HashMap<u32, (u64, u64)>;

/// Why the programs could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("built without the eBPF programs (run `cargo xtask build-ebpf`, then rebuild)")]
    NoObject,
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    PinDir(#[from] pins::PinDirError),
    #[error("loading the eBPF object: {source}")]
    Object {
        #[source]
        source: aya::EbpfError,
    },
    #[error("{map} map: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: MapError,
    },
    #[error(transparent)]
    Program(#[from] ProgError),
}

/// A program of the object that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProgError {
    #[error("program {program} missing from the object")]
    Missing { program: &'static str },
    #[error("{step} {program}: {source}")]
    Program {
        program: &'static str,
        /// What was tried: "using", "loading", "attaching".
        step: &'static str,
        #[source]
        source: ProgramError,
    },
}

/// Why the kprobes' offsets could not be read from the kernel's BTF.
#[derive(Debug, thiserror::Error)]
pub enum OffsetsError {
    #[error("no kernel BTF ({path}): {source}")]
    Read {
        path: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("kernel BTF {path}: {source}")]
    Parse {
        path: &'static str,
        #[source]
        source: BtfError,
    },
    #[error("kernel BTF has no {strukt}.{member}")]
    Member {
        strukt: &'static str,
        member: &'static str,
    },
}

/// Why a netdev's TC programs could not be attached in one mode.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error(transparent)]
    Program(#[from] ProgError),
    #[error("adding clsact: {source}")]
    Clsact {
        #[source]
        source: tc::TcError,
    },
    #[error("{direction}: {source}")]
    Attach {
        direction: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("{}: {source}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pinned link {}: {source}", path.display())]
    Link {
        path: PathBuf,
        #[source]
        source: LinkError,
    },
    #[error("updating pinned link {}: {source}", path.display())]
    Update {
        path: PathBuf,
        #[source]
        source: ProgramError,
    },
    #[error("pinning {}: {chain}", path.display())]
    Pin {
        path: PathBuf,
        /// The pin error with its causes (aya keeps the errno in them).
        chain: String,
    },
}

/// A netdev the programs could not be attached to: the last mode tried and why.
#[derive(Debug, thiserror::Error)]
#[error("{interface}: {mode:?}: {source}")]
pub struct AttachError {
    pub interface: String,
    pub mode: AttachMode,
    #[source]
    pub source: HookError,
}

pub struct Engine {
    loaded: Mutex<Option<Loaded>>,
    /// Why nothing is loaded (no object, no permission, old kernel…).
    unavailable: Mutex<Option<String>>,
    pub(super) retired: Mutex<Retired>,
    pub(super) events: Mutex<FlowEvents>,
    /// Inserts the daemon made that failed, per `MAP_FULL_*` slot.
    user_full: [AtomicU64; MAP_FULL_SLOTS as usize],
    cfg: Config,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// CLOCK_MONOTONIC in ns: the clock `bpf_ktime_get_coarse_ns()` reads.
#[expect(unsafe_code, reason = "clock_gettime fills a struct we own")]
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// The ifindex of a netdev in our network namespace.
pub fn ifindex(name: &str) -> Option<u32> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return None;
    }
    std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("ifindex"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// The name of a netdev in our network namespace, by ifindex (or the number).
pub fn ifname(ifindex: u32) -> String {
    std::fs::read_dir("/sys/class/net")
        .ok()
        .and_then(|dir| {
            dir.filter_map(Result::ok).find_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (ifindex_of(&name) == Some(ifindex)).then_some(name)
            })
        })
        .unwrap_or_else(|| ifindex.to_string())
}

/// The name of the netdev with `ifindex` in the daemon's namespace, if there is one.
pub fn ifname_of(ifindex: u32) -> Option<String> {
    nix::net::if_::if_indextoname(ifindex)
        .ok()
        .map(|c| c.to_string_lossy().into_owned())
}

fn ifindex_of(name: &str) -> Option<u32> {
    ifindex(name)
}

/// Offsets for the kprobes from the kernel's BTF (and the ip_vs module's, if loaded).
pub fn kernel_offsets() -> Result<KernelOffsets, OffsetsError> {
    const VMLINUX: &str = "/sys/kernel/btf/vmlinux";
    let vmlinux = std::fs::read(VMLINUX).map_err(|source| OffsetsError::Read {
        path: VMLINUX,
        source,
    })?;
    let base = Btf::parse(&vmlinux, None).map_err(|source| OffsetsError::Parse {
        path: VMLINUX,
        source,
    })?;
    let need = |btf: &Btf, strukt: &'static str, member: &'static str| {
        btf.member_offset(strukt, member)
            .ok_or(OffsetsError::Member { strukt, member })
    };
    let mut o = KernelOffsets {
        skb_dev: need(&base, "sk_buff", "dev")?,
        dev_ifindex: need(&base, "net_device", "ifindex")?,
        skb_len: need(&base, "sk_buff", "len")?,
        ..KernelOffsets::default()
    };
    if let Ok(module) = std::fs::read("/sys/kernel/btf/ip_vs")
        && let Ok(ipvs) = Btf::parse(&module, Some(&base))
        && let (Ok(vaddr), Ok(vport), Ok(proto), Ok(af)) = (
            need(&ipvs, "ip_vs_conn_param", "vaddr"),
            need(&ipvs, "ip_vs_conn_param", "vport"),
            need(&ipvs, "ip_vs_conn_param", "protocol"),
            need(&ipvs, "ip_vs_conn_param", "af"),
        )
    {
        o.ipvs_param_vaddr = vaddr;
        o.ipvs_param_vport = vport;
        o.ipvs_param_protocol = proto;
        o.ipvs_param_af = af;
        o.ipvs_valid = 1;
    }
    Ok(o)
}

/// The drop program on `kfree_skb`: `tp_btf` where BPF tracing may attach, the raw tracepoint
/// otherwise (probed, in that order). Drops not counted is never a load failure: the reason
/// stays in `drop_hook`.
fn attach_drops(l: &mut Loaded) {
    let (vmlinux, reasons) = match super::drops::Reasons::from_kernel() {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(reason = %e, "drops not counted");
            l.drop_hook = Err(e.to_string());
            return;
        }
    };
    let cfg: DropConfig = match super::drops::drop_config(&vmlinux, &reasons) {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(reason = %e, "drops not counted");
            l.drop_hook = Err(e.to_string());
            return;
        }
    };
    drop(vmlinux);
    if let Some(m) = l.ebpf.map_mut("DROP_CONFIG")
        && let Ok(mut a) = Array::<&mut MapData, DropConfig>::try_from(m)
        && let Err(e) = a.set(0, cfg, 0)
    {
        l.drop_hook = Err(format!("DROP_CONFIG: {e}"));
        return;
    }
    l.reasons = Some((reasons, std::time::Instant::now()));
    let btf_attempt = (|| -> Result<(), String> {
        let btf = aya::Btf::from_sys_fs().map_err(|e| format!("kernel BTF: {e}"))?;
        let p: &mut BtfTracePoint = l
            .ebpf
            .program_mut("kfree_skb_btf")
            .ok_or("kfree_skb_btf missing from the object")?
            .try_into()
            .map_err(|e: ProgramError| e.to_string())?;
        p.load("kfree_skb", &btf)
            .map_err(|e| format!("loading: {}", error_chain(&e)))?;
        p.attach()
            .map_err(|e| format!("attaching: {}", error_chain(&e)))?;
        Ok(())
    })();
    let e1 = match btf_attempt {
        Ok(()) => {
            tracing::info!(hook = "tp_btf/kfree_skb", "drops counted");
            l.drop_hook = Ok("tp_btf");
            return;
        }
        Err(e) => e,
    };
    let raw_attempt = (|| -> Result<(), String> {
        let p: &mut RawTracePoint = l
            .ebpf
            .program_mut("kfree_skb_raw")
            .ok_or("kfree_skb_raw missing from the object")?
            .try_into()
            .map_err(|e: ProgramError| e.to_string())?;
        p.load()
            .map_err(|e| format!("loading: {}", error_chain(&e)))?;
        p.attach("kfree_skb")
            .map_err(|e| format!("attaching: {}", error_chain(&e)))?;
        Ok(())
    })();
    match raw_attempt {
        Ok(()) => {
            tracing::info!(hook = "raw_tp/kfree_skb", tp_btf = %e1, "drops counted");
            l.drop_hook = Ok("raw_tp");
        }
        Err(e2) => {
            tracing::info!(tp_btf = %e1, raw_tp = %e2, "drops not counted");
            l.drop_hook = Err(format!("tp_btf: {e1}; raw_tp: {e2}"));
        }
    }
}

/// Every problem attaching or reading, with the interface or map it concerns.
fn err(what: impl Into<String>, e: impl std::fmt::Display) -> EbpfError {
    EbpfError::Kernel {
        what: what.into(),
        reason: e.to_string(),
    }
}

impl Engine {
    /// Loads the programs (not yet attached anywhere).
    pub fn load(cfg: Config) -> Arc<Engine> {
        let engine = Engine {
            loaded: Mutex::new(None),
            unavailable: Mutex::new(None),
            retired: Mutex::new(Retired::default()),
            events: Mutex::new(FlowEvents::new()),
            user_full: std::array::from_fn(|_| AtomicU64::new(0)),
            cfg,
        };
        match engine.try_load() {
            Ok(l) => *lock(&engine.loaded) = Some(l),
            Err(e) => {
                tracing::info!(reason = %e, "eBPF programs not loaded");
                *lock(&engine.unavailable) = Some(e.to_string());
            }
        }
        Arc::new(engine)
    }

    fn try_load(&self) -> Result<Loaded, LoadError> {
        if OBJECT.is_empty() {
            return Err(LoadError::NoObject);
        }
        self.cfg.validate()?;
        let mut loader = EbpfLoader::new();
        let defs = pins::pinned_maps(&self.cfg);
        for def in &defs {
            loader.map_max_entries(def.name, def.max_entries);
        }
        let pin_root = match &self.cfg.pin_path {
            Some(dir) => {
                let dir = pins::prepare_dir(dir)?;
                // Before loading: aya reuses whatever is pinned under a map's name.
                pins::recreate_changed_maps(&dir, &defs);
                let gone = pins::sweep_links(&dir, None);
                if !gone.is_empty() {
                    tracing::info!(pins = ?gone, "pinned links of gone netdevs swept");
                }
                Some(dir)
            }
            None => None,
        };
        let pins: Vec<(&'static str, PathBuf)> = match &pin_root {
            Some(dir) => defs.iter().map(|d| (d.name, dir.join(d.name))).collect(),
            None => Vec::new(),
        };
        for (name, path) in &pins {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader
            .load(OBJECT)
            .map_err(|source| LoadError::Object { source })?;
        let prog_cfg = ProgConfig {
            flows: u32::from(self.cfg.flows),
            events: u32::from(self.cfg.flows),
        };
        if let Some(m) = ebpf.map_mut("CONFIG") {
            let mut a: Array<&mut MapData, ProgConfig> =
                Array::try_from(m).map_err(|source| LoadError::Map {
                    map: "CONFIG",
                    source,
                })?;
            a.set(0, prog_cfg, 0).map_err(|source| LoadError::Map {
                map: "CONFIG",
                source,
            })?;
        }
        let (ingress_prog, egress_prog) = if self.cfg.noop {
            ("noop", "noop")
        } else if self.cfg.flows {
            ("flow_ingress", "flow_egress")
        } else {
            ("port_ingress", "port_egress")
        };
        let mut names = vec![ingress_prog, egress_prog];
        names.dedup();
        for program in names {
            let p = classifier(&mut ebpf, program)?;
            p.load().map_err(|source| ProgError::Program {
                program,
                step: "loading",
                source,
            })?;
        }
        let mut loaded = Loaded {
            ebpf,
            mode: None,
            ingress_prog,
            egress_prog,
            attached: BTreeMap::new(),
            kprobes: BTreeMap::new(),
            kprobes_tried: HashSet::new(),
            pin_dir: pin_root.as_ref().map(|p| p.join("links")),
            pin_root,
            swept_unwanted: false,
            drop_hook: Err("off (--ebpf.drops=false)".to_owned()),
            reasons: None,
        };
        self.attach_kprobes(&mut loaded);
        if self.cfg.drops {
            attach_drops(&mut loaded);
        }
        Ok(loaded)
    }

    /// Kernel-datapath and IPVS hooks, each only where the kernel has it. Called at load and
    /// again from the reconcile loop: a module loaded after the daemon started (kube-proxy
    /// loads `ip_vs` when it starts) gets its hooks then; a module that is unloaded takes its
    /// kprobes with it, and they are attached again when it comes back.
    fn attach_kprobes(&self, l: &mut Loaded) {
        let loaded = |module: &str| Path::new("/sys/module").join(module).exists();
        for (prog, module) in KPROBES {
            if !loaded(module) {
                l.kprobes_tried.remove(prog);
                if let Some(id) = l.kprobes.remove(prog) {
                    if let Some(p) = l.ebpf.program_mut(prog)
                        && let Ok(p) = <&mut KProbe>::try_from(p)
                    {
                        let _ = p.detach(id);
                    }
                    if prog == "ip_vs_conn_new" {
                        // Its services went with the module: no series for them.
                        forget_ipvs(l);
                    }
                    tracing::info!(hook = prog, "module {module} unloaded: kprobe detached");
                }
            }
        }
        let todo: Vec<&'static str> = KPROBES
            .iter()
            .filter(|(prog, module)| {
                loaded(module) && !l.kprobes.contains_key(prog) && !l.kprobes_tried.contains(prog)
            })
            .map(|(prog, _)| *prog)
            .collect();
        if todo.is_empty() {
            return;
        }
        let offsets = match kernel_offsets() {
            Ok(o) => o,
            Err(e) => {
                tracing::info!(reason = %e, "kprobes not attached");
                l.kprobes_tried.extend(todo);
                return;
            }
        };
        if let Some(m) = l.ebpf.map_mut("OFFSETS")
            && let Ok(mut a) = Array::<&mut MapData, KernelOffsets>::try_from(m)
        {
            let _ = a.set(0, offsets, 0);
        }
        for prog in todo {
            l.kprobes_tried.insert(prog);
            if prog == "ip_vs_conn_new" && offsets.ipvs_valid == 0 {
                tracing::info!(hook = prog, "no BTF for ip_vs: hook unavailable");
                continue;
            }
            let result = (|| -> Result<KProbeLinkId, ProgError> {
                let program = prog;
                let step = |step| {
                    move |source| ProgError::Program {
                        program,
                        step,
                        source,
                    }
                };
                let p: &mut KProbe = l
                    .ebpf
                    .program_mut(program)
                    .ok_or(ProgError::Missing { program })?
                    .try_into()
                    .map_err(step("using"))?;
                match p.load() {
                    Ok(()) | Err(ProgramError::AlreadyLoaded) => {}
                    Err(e) => return Err(step("loading")(e)),
                }
                p.attach(program, 0).map_err(step("attaching"))
            })();
            match result {
                Ok(id) => {
                    tracing::info!(hook = prog, "kprobe attached");
                    l.kprobes_tried.remove(prog);
                    l.kprobes.insert(prog, id);
                }
                Err(e) => tracing::info!(hook = prog, reason = %e, "kprobe unavailable"),
            }
        }
    }

    /// The drop program's hook (`tp_btf`, `raw_tp`), or why drops are not counted.
    pub fn drop_hook(&self) -> Result<&'static str, String> {
        match lock(&self.loaded).as_ref() {
            Some(l) => l.drop_hook.clone(),
            None => Err("programs not loaded".to_owned()),
        }
    }

    /// Drops per key, summed over CPUs (empty when the drop program is not attached).
    pub fn drops(&self) -> Result<Vec<(DropKey, u64)>, EbpfError> {
        let guard = lock(&self.loaded);
        let Some(l) = guard.as_ref().filter(|l| l.drop_hook.is_ok()) else {
            return Ok(Vec::new());
        };
        let map = l.ebpf.map("DROPS").ok_or_else(|| err("DROPS", "missing"))?;
        let map: PerCpuHashMap<&MapData, DropKey, u64> =
            PerCpuHashMap::try_from(map).map_err(|e| err("DROPS", e))?;
        let mut out = Vec::new();
        for item in map.iter() {
            let (k, values) = item.map_err(|e| err("DROPS", e))?;
            out.push((k, values.iter().sum()));
        }
        Ok(out)
    }

    /// Deletes drop keys (of namespaces and devices that are gone).
    pub fn forget_drops(&self, keys: &[DropKey]) {
        let mut guard = lock(&self.loaded);
        let Some(l) = guard.as_mut() else { return };
        if let Some(m) = l.ebpf.map_mut("DROPS")
            && let Ok(mut map) = PerCpuHashMap::<&mut MapData, DropKey, u64>::try_from(m)
        {
            for k in keys {
                let _ = map.remove(k);
            }
        }
    }

    /// Names of the drop reasons `values`. The table is read again from BTF (at most every
    /// 30 s) when a value is not in it: a module loaded since brings its subsystem's reasons.
    pub fn drop_reasons(&self, values: &BTreeSet<u32>) -> HashMap<u32, super::drops::Reason> {
        let mut guard = lock(&self.loaded);
        let Some(l) = guard.as_mut() else {
            return HashMap::new();
        };
        let stale = match &l.reasons {
            None => true,
            Some((r, at)) => {
                values.iter().any(|v| r.get(*v).is_none()) && at.elapsed() > Duration::from_secs(30)
            }
        };
        if stale && let Ok((_, r)) = super::drops::Reasons::from_kernel() {
            l.reasons = Some((r, std::time::Instant::now()));
        }
        let Some((r, _)) = &l.reasons else {
            return HashMap::new();
        };
        values.iter().map(|v| (*v, r.name(*v))).collect()
    }

    /// Attaches kprobes whose module appeared, detaches those whose module went.
    pub fn refresh_kprobes(&self) {
        if let Some(l) = lock(&self.loaded).as_mut() {
            self.attach_kprobes(l);
        }
    }

    /// Why the programs are not loaded, if they are not.
    pub fn unavailable(&self) -> Option<String> {
        lock(&self.unavailable).clone()
    }

    pub fn mode(&self) -> Option<AttachMode> {
        lock(&self.loaded).as_ref().and_then(|l| l.mode)
    }

    pub fn kprobes(&self) -> Vec<String> {
        lock(&self.loaded)
            .as_ref()
            .map(|l| l.kprobes.keys().map(|k| (*k).to_owned()).collect())
            .unwrap_or_default()
    }

    /// Netdev names currently attached, with their ifindex.
    pub fn attached(&self) -> BTreeMap<String, u32> {
        lock(&self.loaded)
            .as_ref()
            .map(|l| {
                l.attached
                    .iter()
                    .map(|(n, a)| (n.clone(), a.ifindex))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Attaches to every netdev in `want` not yet attached (or whose ifindex changed), and
    /// detaches from the rest, dropping their map entries. Returns errors per interface.
    pub fn reconcile(&self, want: &BTreeMap<String, u32>) -> Vec<AttachError> {
        let mut guard = lock(&self.loaded);
        let Some(l) = guard.as_mut() else {
            return Vec::new();
        };
        let mut errors = Vec::new();
        if !l.swept_unwanted {
            l.swept_unwanted = true;
            if let Some(root) = &l.pin_root {
                let keep: BTreeSet<String> = want.keys().cloned().collect();
                let gone = pins::sweep_links(root, Some(&keep));
                if !gone.is_empty() {
                    tracing::info!(pins = ?gone, "pinned links of netdevs no longer in OVS swept");
                }
            }
        }
        let stale: Vec<(String, u32)> = l
            .attached
            .iter()
            .filter(|(name, a)| want.get(*name) != Some(&a.ifindex))
            .map(|(n, a)| (n.clone(), a.ifindex))
            .collect();
        for (name, ifindex) in stale {
            if let Some(a) = l.attached.remove(&name) {
                detach(l, &name, a);
            }
            forget_ifindex(l, ifindex);
            tracing::debug!(interface = %name, ifindex, "detached");
        }
        for (name, &ifindex) in want {
            if l.attached.contains_key(name) {
                continue;
            }
            // A new netdev starts from zero even if its ifindex was used before; one whose
            // pinned link survived a restart (still on this very netdev) keeps its counts.
            if !pinned_on(l, name, ifindex) {
                forget_ifindex(l, ifindex);
            }
            self.reserve_port(l, name, ifindex);
            match attach(l, name) {
                Ok(a) => {
                    tracing::debug!(interface = %name, ifindex, "attached");
                    l.attached.insert(name.clone(), Attached { ifindex, ..a });
                }
                Err((mode, source)) => errors.push(AttachError {
                    interface: name.clone(),
                    mode,
                    source,
                }),
            }
        }
        errors
    }

    /// Makes the port's PORTS entries (both directions) before its programs are attached, so
    /// a full map shows at once, in the log and on the map-full and limit counters, rather
    /// than as traffic that is silently not counted. An existing entry is kept.
    fn reserve_port(&self, l: &mut Loaded, name: &str, ifindex: u32) {
        const BPF_NOEXIST: u64 = 1;
        let Some(m) = l.ebpf.map_mut("PORTS") else {
            return;
        };
        let Ok(mut map) = PerCpuHashMap::<&mut MapData, PortKey, Counters>::try_from(m) else {
            return;
        };
        let Ok(cpus) = aya::util::nr_cpus() else {
            return;
        };
        let mut failed = Vec::new();
        for direction in [DIR_INGRESS, DIR_EGRESS] {
            let Ok(zero) = PerCpuValues::try_from(vec![Counters::default(); cpus]) else {
                return;
            };
            let key = PortKey {
                ifindex,
                direction,
                _pad: [0; 3],
            };
            match map.insert(key, zero, BPF_NOEXIST) {
                Ok(()) => {}
                Err(MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => failed.push(e.to_string()),
            }
        }
        if !failed.is_empty() {
            self.user_full[MAP_FULL_PORTS as usize]
                .fetch_add(failed.len() as u64, Ordering::Relaxed);
            crate::limits::exceeded("ebpf_max_ports");
            tracing::warn!(
                interface = %name,
                ifindex,
                max_ports = self.cfg.max_ports,
                error = %failed.join("; "),
                "PORTS map full: this port's traffic is not counted (raise --ebpf.max-ports)"
            );
        }
    }

    /// Failed inserts per map: the programs' per-CPU counts summed, plus the daemon's own.
    pub fn map_full(&self) -> Vec<(&'static str, u64)> {
        let guard = lock(&self.loaded);
        let kernel: Vec<u64> = guard
            .as_ref()
            .and_then(|l| l.ebpf.map("MAP_FULL"))
            .and_then(|m| PerCpuArray::<&MapData, u64>::try_from(m).ok())
            .map(|a| {
                (0..MAP_FULL_SLOTS)
                    .map(|i| a.get(&i, 0).map_or(0, |v| v.iter().sum()))
                    .collect()
            })
            .unwrap_or_default();
        MAP_FULL_NAMES
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let k = kernel.get(i).copied().unwrap_or(0);
                let u = self.user_full[i].load(Ordering::Relaxed);
                (*name, k + u)
            })
            .collect()
    }

    /// Detaches everything (unless `--ebpf.pin-path` keeps it) and unloads.
    pub fn shutdown(&self) {
        let mut guard = lock(&self.loaded);
        if let Some(mut l) = guard.take() {
            if self.cfg.pin_path.is_some() {
                // Pinned maps and TCX links stay (the next run picks them up); clsact
                // filters, which cannot be pinned, go with the programs.
                l.attached.clear();
                drop(l);
                tracing::info!("eBPF unloaded; pinned maps and links left in place");
                return;
            }
            let names: Vec<String> = l.attached.keys().cloned().collect();
            for name in names {
                if let Some(a) = l.attached.remove(&name) {
                    detach(&mut l, &name, a);
                }
            }
            drop(l);
            tracing::info!("eBPF programs detached and unloaded");
        }
    }

    /// Per-port counters, summed over CPUs.
    pub fn ports(&self) -> Result<HashMap<(u32, u8), Counters>, EbpfError> {
        let guard = lock(&self.loaded);
        let l = guard
            .as_ref()
            .ok_or_else(|| err("programs", "not loaded"))?;
        let map = l.ebpf.map("PORTS").ok_or_else(|| err("PORTS", "missing"))?;
        let map: PerCpuHashMap<&MapData, PortKey, Counters> =
            PerCpuHashMap::try_from(map).map_err(|e| err("PORTS", e))?;
        let mut out = HashMap::new();
        for item in map.iter() {
            let (k, values) = item.map_err(|e| err("PORTS", e))?;
            let c = values.iter().fold(Counters::default(), |a, v| Counters {
                packets: a.packets + v.packets,
                bytes: a.bytes + v.bytes,
            });
            out.insert((k.ifindex, k.direction), c);
        }
        Ok(out)
    }

    /// Live flows, summed over CPUs.
    pub fn flows(&self) -> Result<Vec<(FlowKey, FlowCounters)>, EbpfError> {
        let guard = lock(&self.loaded);
        let l = guard
            .as_ref()
            .ok_or_else(|| err("programs", "not loaded"))?;
        read_flows(&l.ebpf)
    }

    /// Kernel-datapath counters per vport ifindex.
    pub fn vports(&self) -> Result<HashMap<u32, VportCounters>, EbpfError> {
        let guard = lock(&self.loaded);
        let l = guard
            .as_ref()
            .ok_or_else(|| err("programs", "not loaded"))?;
        let map = l
            .ebpf
            .map("VPORTS")
            .ok_or_else(|| err("VPORTS", "missing"))?;
        let map: PerCpuHashMap<&MapData, u32, VportCounters> =
            PerCpuHashMap::try_from(map).map_err(|e| err("VPORTS", e))?;
        let mut out = HashMap::new();
        for item in map.iter() {
            let (k, values) = item.map_err(|e| err("VPORTS", e))?;
            let c = values
                .iter()
                .fold(VportCounters::default(), |a, v| VportCounters {
                    received: a.received + v.received,
                    upcalls: a.upcalls + v.upcalls,
                });
            out.insert(k, c);
        }
        Ok(out)
    }

    /// New IPVS connections per (service, real server).
    pub fn ipvs_conns(&self) -> Result<Vec<(IpvsConnKey, u64)>, EbpfError> {
        let guard = lock(&self.loaded);
        let l = guard
            .as_ref()
            .ok_or_else(|| err("programs", "not loaded"))?;
        let map = l
            .ebpf
            .map("IPVS_CONNS")
            .ok_or_else(|| err("IPVS_CONNS", "missing"))?;
        let map: PerCpuHashMap<&MapData, IpvsConnKey, u64> =
            PerCpuHashMap::try_from(map).map_err(|e| err("IPVS_CONNS", e))?;
        let mut out = Vec::new();
        for item in map.iter() {
            let (k, values) = item.map_err(|e| err("IPVS_CONNS", e))?;
            out.push((k, values.iter().sum()));
        }
        Ok(out)
    }

    /// Moves flows idle longer than `idle` (or ended) out of the map into per-port totals, so
    /// that neither the map's LRU eviction nor its size loses their counts.
    pub fn retire_idle(&self, idle: Duration) -> Result<usize, EbpfError> {
        let mut guard = lock(&self.loaded);
        let l = guard
            .as_mut()
            .ok_or_else(|| err("programs", "not loaded"))?;
        let now = monotonic_ns();
        let cutoff = now.saturating_sub(idle.as_nanos() as u64);
        let flows = read_flows(&l.ebpf)?;
        let old: Vec<(FlowKey, FlowCounters)> = flows
            .into_iter()
            .filter(|(_, c)| c.last_ns < cutoff)
            .collect();
        if old.is_empty() {
            return Ok(0);
        }
        let map = l
            .ebpf
            .map_mut("FLOWS")
            .ok_or_else(|| err("FLOWS", "missing"))?;
        let mut map: PerCpuHashMap<&mut MapData, FlowKey, FlowCounters> =
            PerCpuHashMap::try_from(map).map_err(|e| err("FLOWS", e))?;
        let mut retired = lock(&self.retired);
        let mut n = 0;
        for (k, _) in old {
            // Read again right before removing: counts between the scan and now are kept.
            let Ok(values) = map.get(&k, 0) else { continue };
            let c = sum_flow(&values);
            if c.last_ns >= cutoff {
                continue;
            }
            if map.remove(&k).is_ok() {
                let e = retired.totals.entry((k.ifindex, k.direction)).or_default();
                e.packets += c.packets;
                e.bytes += c.bytes;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Takes the ring buffer out of the object, for the event reader.
    pub fn take_events(&self) -> Option<RingBuf<aya::maps::MapData>> {
        let mut guard = lock(&self.loaded);
        let l = guard.as_mut()?;
        let m = l.ebpf.take_map("EVENTS")?;
        RingBuf::try_from(m).ok()
    }

    /// Counts one ring-buffer event.
    pub fn record_event(&self, bytes: &[u8]) {
        let Some(ev) = bytes
            .get(..std::mem::size_of::<FlowEvent>())
            .and_then(|b| bytemuck::try_pod_read_unaligned::<FlowEvent>(b).ok())
        else {
            return;
        };
        let mut events = lock(&self.events);
        let e = events.entry(ev.key.ifindex).or_default();
        match ev.kind {
            EVENT_FLOW_START => e.0 += 1,
            EVENT_FLOW_END => e.1 += 1,
            _ => {}
        }
    }

    /// Per-port traffic for the snapshot (counters from the map).
    pub fn port_traffic(&self) -> Result<HashMap<u32, PortTraffic>, EbpfError> {
        let mut out: HashMap<u32, PortTraffic> = HashMap::new();
        for ((ifindex, dir), c) in self.ports()? {
            let t = out.entry(ifindex).or_default();
            match dir {
                DIR_INGRESS => t.rx = c,
                DIR_EGRESS => t.tx = c,
                _ => {}
            }
        }
        Ok(out)
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }
}

fn sum_flow(values: &[FlowCounters]) -> FlowCounters {
    values
        .iter()
        .fold(FlowCounters::default(), |a, v| FlowCounters {
            packets: a.packets + v.packets,
            bytes: a.bytes + v.bytes,
            first_ns: match (a.first_ns, v.first_ns) {
                (0, x) | (x, 0) => x,
                (x, y) => x.min(y),
            },
            last_ns: a.last_ns.max(v.last_ns),
        })
}

fn read_flows(ebpf: &Ebpf) -> Result<Vec<(FlowKey, FlowCounters)>, EbpfError> {
    let map = ebpf.map("FLOWS").ok_or_else(|| err("FLOWS", "missing"))?;
    let map: PerCpuHashMap<&MapData, FlowKey, FlowCounters> =
        PerCpuHashMap::try_from(map).map_err(|e| err("FLOWS", e))?;
    let mut out = Vec::new();
    for item in map.iter() {
        // An entry deleted between key and value lookups is skipped, not an error.
        let Ok((k, values)) = item else { continue };
        out.push((k, sum_flow(&values)));
    }
    Ok(out)
}

/// Removes every map entry of a netdev that went away (or a new one reusing its ifindex).
fn forget_ifindex(l: &mut Loaded, ifindex: u32) {
    if let Some(m) = l.ebpf.map_mut("PORTS")
        && let Ok(mut map) = PerCpuHashMap::<&mut MapData, PortKey, Counters>::try_from(m)
    {
        for direction in [DIR_INGRESS, DIR_EGRESS] {
            let _ = map.remove(&PortKey {
                ifindex,
                direction,
                _pad: [0; 3],
            });
        }
    }
    if let Some(m) = l.ebpf.map_mut("FLOWS")
        && let Ok(mut map) = PerCpuHashMap::<&mut MapData, FlowKey, FlowCounters>::try_from(m)
    {
        let keys: Vec<FlowKey> = map
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.ifindex == ifindex)
            .collect();
        for k in keys {
            let _ = map.remove(&k);
        }
    }
    if let Some(m) = l.ebpf.map_mut("VPORTS")
        && let Ok(mut map) = PerCpuHashMap::<&mut MapData, u32, VportCounters>::try_from(m)
    {
        let _ = map.remove(&ifindex);
    }
}

/// Empties the IPVS connection counts.
fn forget_ipvs(l: &mut Loaded) {
    if let Some(m) = l.ebpf.map_mut("IPVS_CONNS")
        && let Ok(mut map) = PerCpuHashMap::<&mut MapData, IpvsConnKey, u64>::try_from(m)
    {
        let keys: Vec<IpvsConnKey> = map.keys().filter_map(Result::ok).collect();
        for k in keys {
            let _ = map.remove(&k);
        }
    }
}

fn classifier<'a>(
    ebpf: &'a mut Ebpf,
    program: &'static str,
) -> Result<&'a mut SchedClassifier, ProgError> {
    ebpf.program_mut(program)
        .ok_or(ProgError::Missing { program })?
        .try_into()
        .map_err(|source| ProgError::Program {
            program,
            step: "using",
            source,
        })
}

fn prog<'a>(
    l: &'a mut Loaded,
    program: &'static str,
) -> Result<&'a mut SchedClassifier, ProgError> {
    classifier(&mut l.ebpf, program)
}

/// Attaches both directions, finding out on the first interface whether TCX works here.
/// On failure: the last mode tried and why.
fn attach(l: &mut Loaded, name: &str) -> Result<Attached, (AttachMode, HookError)> {
    let modes: &[AttachMode] = match &l.mode {
        Some(AttachMode::Tcx) => &[AttachMode::Tcx],
        Some(AttachMode::Clsact) => &[AttachMode::Clsact],
        None => &[AttachMode::Tcx, AttachMode::Clsact],
    };
    let mut last_err: Option<(AttachMode, HookError)> = None;
    for &mode in modes {
        match attach_with(l, name, mode) {
            Ok(a) => {
                if l.mode.is_none() {
                    match &last_err {
                        None => tracing::info!(mode = ?mode, "TC attachment mode"),
                        // Not silent: with clsact, links are not pinned across restarts.
                        Some((_, e)) => {
                            tracing::warn!(mode = ?mode, tcx_error = %e, "TC attachment mode (TCX failed)")
                        }
                    }
                    l.mode = Some(mode);
                }
                return Ok(a);
            }
            Err(e) => {
                tracing::debug!(interface = %name, mode = ?mode, error = %e, "attach failed");
                last_err = Some((mode, e));
            }
        }
    }
    Err(last_err.unwrap_or((
        AttachMode::Clsact,
        HookError::Program(ProgError::Missing {
            program: l.ingress_prog,
        }),
    )))
}

fn attach_with(l: &mut Loaded, name: &str, mode: AttachMode) -> Result<Attached, HookError> {
    if mode == AttachMode::Clsact {
        // EEXIST is fine: the qdisc is already there.
        if let Err(e) = tc::qdisc_add_clsact(name)
            && !e.to_string().contains("exists")
        {
            return Err(HookError::Clsact { source: e });
        }
    }
    let options = || match mode {
        AttachMode::Tcx => TcAttachOptions::TcxOrder(LinkOrder::default()),
        AttachMode::Clsact => TcAttachOptions::Netlink(tc::NlOptions::default()),
    };
    let (ing, eg) = (l.ingress_prog, l.egress_prog);
    if mode == AttachMode::Tcx
        && let Some(dir) = l.pin_dir.clone()
    {
        std::fs::create_dir_all(&dir).map_err(|source| HookError::Dir {
            path: dir.clone(),
            source,
        })?;
        let mut pins = Vec::new();
        for (p, t, suffix) in [
            (ing, TcAttachType::Ingress, "ingress"),
            (eg, TcAttachType::Egress, "egress"),
        ] {
            let pin = dir.join(pins::link_pin_file(name, suffix));
            attach_pinned(l, p, name, t, &pin)?;
            pins.push(pin);
        }
        return Ok(Attached {
            ifindex: 0,
            ingress: None,
            egress: None,
            pins,
        });
    }
    let ingress = prog(l, ing)?
        .attach_with_options(name, TcAttachType::Ingress, options())
        .map_err(|source| HookError::Attach {
            direction: "ingress",
            source,
        })?;
    let egress = match prog(l, eg)?.attach_with_options(name, TcAttachType::Egress, options()) {
        Ok(id) => id,
        Err(e) => {
            if let Ok(p) = prog(l, ing) {
                let _ = p.detach(ingress);
            }
            return Err(HookError::Attach {
                direction: "egress",
                source: e,
            });
        }
    };
    Ok(Attached {
        ifindex: 0,
        ingress: Some(ingress),
        egress: Some(egress),
        pins: Vec::new(),
    })
}

/// A TCX link pinned at `pin`: an existing pin (from an earlier run) is updated to this
/// program in place, so counting never stops across a restart or upgrade.
fn attach_pinned(
    l: &mut Loaded,
    prog_name: &'static str,
    name: &str,
    t: TcAttachType,
    pin: &Path,
) -> Result<(), HookError> {
    use aya::programs::links::{FdLink, PinnedLink};
    use aya::programs::tc::SchedClassifierLink;
    // A link whose netdev went (defunct: updating it fails) or that sits on another netdev
    // is replaced, not updated.
    if pin.exists() && ifindex(name).is_none_or(|i| pins::tcx_link_ifindex(pin) != Some(i)) {
        tracing::info!(pin = %pin.display(), "stale pinned link replaced");
        let _ = std::fs::remove_file(pin);
    }
    let p = prog(l, prog_name)?;
    let existing = PinnedLink::from_pin(pin).ok();
    let had_pin = existing.is_some();
    let id = match existing {
        Some(old) => {
            let link = SchedClassifierLink::try_from(FdLink::from(old)).map_err(|source| {
                HookError::Link {
                    path: pin.to_owned(),
                    source,
                }
            })?;
            p.attach_to_link(link).map_err(|source| HookError::Update {
                path: pin.to_owned(),
                source,
            })?
        }
        None => p
            .attach_with_options(name, t, TcAttachOptions::TcxOrder(LinkOrder::default()))
            .map_err(|source| HookError::Attach {
                direction: direction_name(t),
                source,
            })?,
    };
    let link = p.take_link(id).map_err(|source| HookError::Attach {
        direction: direction_name(t),
        source,
    })?;
    let fd = FdLink::try_from(link).map_err(|source| HookError::Link {
        path: pin.to_owned(),
        source,
    })?;
    if !had_pin {
        fd.pin(pin).map_err(|e| HookError::Pin {
            path: pin.to_owned(),
            chain: error_chain(&e),
        })?;
    }
    Ok(())
}

fn direction_name(t: TcAttachType) -> &'static str {
    match t {
        TcAttachType::Ingress => "ingress",
        TcAttachType::Egress => "egress",
        TcAttachType::Custom(_) => "custom",
    }
}

/// An error with its sources (aya's errors keep the errno in theirs).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Whether `name`'s pinned ingress link (from an earlier run) is on this very netdev.
fn pinned_on(l: &Loaded, name: &str, ifindex: u32) -> bool {
    l.pin_dir.as_ref().is_some_and(|dir| {
        pins::tcx_link_ifindex(&dir.join(pins::link_pin_file(name, "ingress"))) == Some(ifindex)
    })
}

fn detach(l: &mut Loaded, name: &str, a: Attached) {
    for pin in &a.pins {
        if let Ok(link) = aya::programs::links::PinnedLink::from_pin(pin) {
            // Unpinned and dropped: the link goes.
            let _ = link.unpin();
        }
        let _ = std::fs::remove_file(pin);
    }
    let (ing, eg) = (l.ingress_prog, l.egress_prog);
    for (p, id) in [(ing, a.ingress), (eg, a.egress)] {
        if let (Ok(p), Some(id)) = (prog(l, p), id) {
            // The netdev may be gone already, taking its hooks with it.
            if let Err(e) = p.detach(id) {
                tracing::debug!(interface = %name, error = %e, "detach");
            }
        }
    }
}

/// Which of `names` exist as netdevs here, with their ifindex.
pub fn netdevs(names: &HashSet<String>) -> BTreeMap<String, u32> {
    names
        .iter()
        .filter_map(|n| ifindex(n).map(|i| (n.clone(), i)))
        .collect()
}
