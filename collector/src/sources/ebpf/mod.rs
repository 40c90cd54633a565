//! The `ebpf` source: counters from the project's own eBPF programs (`collector-ebpf`).
//!
//! - TC programs on every OVS vport netdev (the list comes from OVSDB), both directions:
//!   per-port packets and bytes, and per-flow counters (5-tuple, port, direction) in an LRU map.
//!   Programs attach when a vport appears and detach when it goes; everything is detached on
//!   shutdown unless `--ebpf.pin-path` pins maps and links, so counters survive a restart.
//! - Kprobes on the kernel datapath (`ovs_vport_receive`, `ovs_dp_upcall`) and IPVS
//!   (`ip_vs_conn_new`), where the kernel has them.
//!
//! Flows idle past `--ebpf.flow-idle-timeout` are moved out of the map into per-port totals by
//! a background task, so short flows are counted even if no scrape saw them.

pub mod btf;
pub mod classify;
pub mod drops;
pub mod encode;
pub mod engine;
pub mod flags;
pub mod pins;

use crate::exposition::Writer;
use crate::ovsdb::Handle;
use crate::registry::{ScrapeRequest, Source, SourceError, Status};
use crate::sources::ovsdb::attribution::{Attributor, PodRef};
use collector_common::{Counters, DropKey, FlowCounters, FlowKey, IpvsConnKey};
use engine::Engine;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Settings, from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// Count per flow (else per port only: cheaper).
    pub flows: bool,
    /// Attach the no-op program instead (benchmarks: the cost of TC itself).
    pub noop: bool,
    /// Size of the flow map (`--ebpf.max-flows`).
    pub max_flows: u32,
    /// Netdevs the per-port maps hold (`--ebpf.max-ports`): PORTS has two entries per port
    /// (both directions), VPORTS one.
    pub max_ports: u32,
    /// Size of the IPVS (service, real server) map (`--ebpf.max-ipvs-conns`, LRU).
    pub max_ipvs_conns: u32,
    /// Flows with series of their own (the most bytes); the rest are folded per port.
    pub max_flow_series: usize,
    /// Count the kernel's drops (`--ebpf.drops`).
    pub drops: bool,
    /// Size of the drop map (`--ebpf.max-drop-entries`).
    pub max_drop_entries: u32,
    /// Drop series of their own; the rest are folded per reason (0: all).
    pub max_drop_series: usize,
    /// Pin maps and links here (bpffs), so counters survive restarts.
    pub pin_path: Option<PathBuf>,
    /// Flows idle this long leave the map for the per-port totals.
    pub idle_timeout: Duration,
    /// Where the bridges' OpenFlow sockets are (for cookie classification).
    pub rundir: PathBuf,
}

/// `--ebpf.max-ports`: at least one port, at most 2^18 (PORTS then holds 2^19 entries).
pub const MAX_PORTS_RANGE: std::ops::RangeInclusive<i64> = 1..=262_144;
/// `--ebpf.max-flows`: LRU maps smaller than this evict in batches bigger than they are.
pub const MAX_FLOWS_RANGE: std::ops::RangeInclusive<i64> = 1024..=16_777_216;
/// `--ebpf.max-ipvs-conns`: an LRU map too, as for the flows.
pub const MAX_IPVS_CONNS_RANGE: std::ops::RangeInclusive<i64> = 1024..=16_777_216;
/// `--ebpf.max-drop-entries`.
pub const MAX_DROP_ENTRIES_RANGE: std::ops::RangeInclusive<i64> = 256..=1_048_576;
/// Default `--ebpf.max-ports` (PORTS keeps its former 8192 entries).
pub const DEFAULT_MAX_PORTS: u32 = 4096;
/// Default `--ebpf.max-ipvs-conns`.
pub const DEFAULT_MAX_IPVS_CONNS: u32 = 65_536;

/// PORTS entries for `max_ports` netdevs: one per direction.
pub fn ports_map_entries(max_ports: u32) -> u32 {
    max_ports.saturating_mul(2)
}

/// A map size outside what the kernel and the daemon's memory allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{flag}={value} is out of range {min}..={max}")]
    OutOfRange {
        flag: &'static str,
        value: u32,
        min: i64,
        max: i64,
    },
}

impl Config {
    /// Checks the map sizes against their ranges (the command line already did; this is for
    /// other callers of [`engine::Engine::load`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (flag, value, range) in [
            ("--ebpf.max-ports", self.max_ports, MAX_PORTS_RANGE),
            ("--ebpf.max-flows", self.max_flows, MAX_FLOWS_RANGE),
            (
                "--ebpf.max-ipvs-conns",
                self.max_ipvs_conns,
                MAX_IPVS_CONNS_RANGE,
            ),
            (
                "--ebpf.max-drop-entries",
                self.max_drop_entries,
                MAX_DROP_ENTRIES_RANGE,
            ),
        ] {
            if !range.contains(&i64::from(value)) {
                return Err(ConfigError::OutOfRange {
                    flag,
                    value,
                    min: *range.start(),
                    max: *range.end(),
                });
            }
        }
        Ok(())
    }

    /// Defaults for tests and tools (no pinning, default sizes).
    pub fn for_tests() -> Config {
        Config {
            flows: true,
            noop: false,
            max_flows: 65_536,
            max_ports: DEFAULT_MAX_PORTS,
            max_ipvs_conns: DEFAULT_MAX_IPVS_CONNS,
            max_flow_series: 0,
            drops: true,
            max_drop_entries: 16_384,
            max_drop_series: 0,
            pin_path: None,
            idle_timeout: Duration::from_secs(30),
            rundir: "/nonexistent".into(),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EbpfError {
    #[error("eBPF unavailable: {reason}")]
    Unavailable { reason: String },
    #[error("{what}: {reason}")]
    Kernel { what: String, reason: String },
}

impl SourceError for EbpfError {
    fn is_unavailable(&self) -> bool {
        matches!(self, EbpfError::Unavailable { .. })
    }
}

/// A port's two directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortTraffic {
    /// What the port received (the pod sent).
    pub rx: Counters,
    /// What the port transmitted (the pod received).
    pub tx: Counters,
}

/// Who a netdev is: its bridge, OVS port name and pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortInfo {
    pub bridge: String,
    pub port: String,
    pub ofport: Option<u16>,
    pub pod: Option<PodRef>,
}

/// One flow with its series.
#[derive(Debug, Clone)]
pub struct FlowRow {
    pub key: FlowKey,
    pub counters: FlowCounters,
    pub cookie: Option<u64>,
}

/// What one scrape read.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub ports: BTreeMap<u32, (PortInfo, PortTraffic)>,
    pub flows: Vec<FlowRow>,
    /// Per (ifindex, direction): flows without their own series (live past the limit, plus
    /// retired ones).
    pub folded: BTreeMap<(u32, u8), Counters>,
    pub folded_live: u64,
    pub active: BTreeMap<u32, u64>,
    pub events: BTreeMap<u32, (u64, u64)>,
    pub vports: BTreeMap<u32, collector_common::VportCounters>,
    pub ipvs: Vec<(IpvsConnKey, u64)>,
    pub hooks: Vec<(&'static str, bool)>,
    pub mode: Option<engine::AttachMode>,
    /// Failed inserts per map, kernel and daemon side (`MAP_FULL_NAMES` order).
    pub map_full: Vec<(&'static str, u64)>,
    /// `ebpf_drops_total`, and how many series were folded.
    pub drops: Vec<drops::DropRow>,
    pub drops_folded: u64,
}

/// What one scrape reads from the programs' maps, and from the engine's record of what it
/// attached, retired and saw on the ring buffer, before it is joined with OVSDB and folded
/// into a [`Snapshot`].
#[derive(Debug, Clone, Default)]
pub struct MapSnapshot {
    pub mode: Option<engine::AttachMode>,
    /// Netdev name → ifindex of every netdev the TC programs are attached to.
    pub attached: BTreeMap<String, u32>,
    /// PORTS, per ifindex.
    pub traffic: HashMap<u32, PortTraffic>,
    /// FLOWS (empty when per-flow counting is off).
    pub flows: Vec<(FlowKey, FlowCounters)>,
    /// Flows retired from the map, per (ifindex, direction).
    pub retired: HashMap<(u32, u8), Counters>,
    /// Flow starts and ends seen on the ring buffer, per ifindex.
    pub events: engine::FlowEvents,
    /// Failed inserts per map (`MAP_FULL_NAMES` order).
    pub map_full: Vec<(&'static str, u64)>,
    /// The kprobes attached.
    pub kprobes: Vec<String>,
    /// VPORTS (read when an `ovs_*` kprobe is attached).
    pub vports: HashMap<u32, collector_common::VportCounters>,
    /// IPVS_CONNS (read when `ip_vs_conn_new` is attached).
    pub ipvs: Vec<(IpvsConnKey, u64)>,
    /// The drop program's hook (`tp_btf`, `raw_tp`), if it is attached.
    pub drop_hook: Option<String>,
    /// DROPS, summed over CPUs.
    pub drops: Vec<(DropKey, u64)>,
    /// The names of the reasons in `drops`.
    pub drop_reasons: HashMap<u32, drops::Reason>,
}

/// Where the source reads its maps: the loaded [`Engine`] in the daemon; a [`MapSnapshot`]
/// in tests, where programs cannot be loaded, given through
/// [`crate::sources::build::Readers`] as an `Arc<dyn Maps>`.
pub trait Maps: Send + Sync + 'static {
    /// Why there is nothing to read (no eBPF object, no privilege, an old kernel), if so.
    fn unavailable(&self) -> Option<String>;
    /// Reads the maps; `flows`: FLOWS too. Blocking: called on a blocking-pool thread.
    fn read(&self, flows: bool) -> Result<MapSnapshot, EbpfError>;
    /// Deletes drop keys whose namespace or device is gone.
    fn forget_drops(&self, _keys: &[DropKey]) {}
}

impl Maps for Engine {
    fn unavailable(&self) -> Option<String> {
        Engine::unavailable(self)
    }

    fn read(&self, flows: bool) -> Result<MapSnapshot, EbpfError> {
        let kprobes = self.kprobes();
        let drops = self.drops()?;
        let values: std::collections::BTreeSet<u32> = drops.iter().map(|(k, _)| k.reason).collect();
        Ok(MapSnapshot {
            drop_hook: self.drop_hook().ok().map(str::to_owned),
            drop_reasons: self.drop_reasons(&values),
            drops,
            mode: self.mode(),
            attached: self.attached(),
            traffic: self.port_traffic()?,
            flows: if flows { self.flows()? } else { Vec::new() },
            retired: self
                .retired
                .lock()
                .map(|r| r.totals.clone())
                .unwrap_or_default(),
            events: self.events.lock().map(|e| e.clone()).unwrap_or_default(),
            map_full: self.map_full(),
            vports: if kprobes.iter().any(|k| k.starts_with("ovs_")) {
                self.vports()?
            } else {
                HashMap::new()
            },
            ipvs: if kprobes.iter().any(|k| k == "ip_vs_conn_new") {
                self.ipvs_conns()?
            } else {
                Vec::new()
            },
            kprobes,
        })
    }

    fn forget_drops(&self, keys: &[DropKey]) {
        Engine::forget_drops(self, keys);
    }
}

/// A snapshot read as it is (a fixture).
impl Maps for MapSnapshot {
    fn unavailable(&self) -> Option<String> {
        None
    }

    fn read(&self, flows: bool) -> Result<MapSnapshot, EbpfError> {
        let mut snap = self.clone();
        if !flows {
            snap.flows.clear();
        }
        Ok(snap)
    }
}

pub struct EbpfSource {
    /// The programs this source loaded (`None` when it reads a given [`Maps`]).
    engine: Option<Arc<Engine>>,
    maps: Arc<dyn Maps>,
    flows: bool,
    max_flow_series: usize,
    ovsdb: Option<Arc<Handle>>,
    attributor: Arc<Attributor>,
    classifier: classify::Cache,
    max_drop_series: usize,
    netns: Arc<std::sync::Mutex<drops::Netns>>,
}

impl EbpfSource {
    /// Loads the programs and starts the tasks that attach them and retire idle flows.
    pub fn start(
        cfg: Config,
        ovsdb: Option<Arc<Handle>>,
        attributor: Arc<Attributor>,
    ) -> Arc<EbpfSource> {
        let rundir = cfg.rundir.clone();
        let idle = cfg.idle_timeout;
        let (flows, max_flow_series) = (cfg.flows, cfg.max_flow_series);
        let max_drop_series = cfg.max_drop_series;
        let engine = Engine::load(cfg);
        if engine.unavailable().is_none() {
            tokio::spawn(reconcile_loop(Arc::downgrade(&engine), ovsdb.clone()));
            tokio::spawn(retire_loop(Arc::downgrade(&engine), idle));
            if let Some(ring) = engine.take_events() {
                tokio::spawn(event_loop(Arc::downgrade(&engine), ring));
            }
        }
        Arc::new(EbpfSource {
            engine: Some(engine.clone()),
            maps: engine,
            flows,
            max_flow_series,
            ovsdb,
            attributor,
            classifier: classify::Cache::new(rundir),
            max_drop_series,
            netns: Arc::default(),
        })
    }

    /// Reads `maps` instead of loading programs (nothing is attached, retired or pinned):
    /// the rest (OVSDB, cookies, folding, encoding) as [`EbpfSource::start`]'s.
    pub fn with_maps(
        cfg: &Config,
        maps: Arc<dyn Maps>,
        ovsdb: Option<Arc<Handle>>,
        attributor: Arc<Attributor>,
    ) -> Arc<EbpfSource> {
        Arc::new(EbpfSource {
            engine: None,
            maps,
            flows: cfg.flows,
            max_flow_series: cfg.max_flow_series,
            ovsdb,
            attributor,
            classifier: classify::Cache::new(cfg.rundir.clone()),
            max_drop_series: cfg.max_drop_series,
            netns: Arc::default(),
        })
    }

    /// Detaches and unloads (SIGTERM), unless pinned.
    pub fn shutdown(&self) {
        if let Some(engine) = &self.engine {
            engine.shutdown();
        }
    }

    /// The programs this source loaded, if it did.
    pub fn engine(&self) -> Option<&Arc<Engine>> {
        self.engine.as_ref()
    }
}

/// The netdevs to attach to: every OVS interface that is a netdev in our namespace.
fn wanted(replica: &crate::ovsdb::Replica) -> BTreeMap<String, u32> {
    let names: HashSet<String> = replica
        .interfaces()
        .into_iter()
        .filter(|v| matches!(v.iface.kind.as_str(), "" | "system" | "internal" | "tap"))
        .map(|v| v.iface.name.clone())
        .collect();
    engine::netdevs(&names)
}

async fn reconcile_loop(engine: std::sync::Weak<Engine>, ovsdb: Option<Arc<Handle>>) {
    let mut reported: HashSet<String> = HashSet::new();
    loop {
        let Some(e) = engine.upgrade() else { return };
        let e2 = e.clone();
        let _ = tokio::task::spawn_blocking(move || e2.refresh_kprobes()).await;
        if let Some(h) = &ovsdb {
            let state = h.state();
            // While the database is down, keep what is attached.
            if state.connected {
                let want = wanted(&state.replica);
                let e2 = e.clone();
                let errors = tokio::task::spawn_blocking(move || e2.reconcile(&want))
                    .await
                    .unwrap_or_default();
                for err in errors {
                    let err = err.to_string();
                    if reported.insert(err.clone()) {
                        tracing::warn!(error = %err, "cannot attach eBPF programs");
                    }
                }
            }
        }
        drop(e);
        let wait = tokio::time::sleep(Duration::from_secs(2));
        match &ovsdb {
            Some(h) => {
                tokio::select! {
                    () = wait => {},
                    () = h.changed() => {},
                }
            }
            None => wait.await,
        }
    }
}

async fn retire_loop(engine: std::sync::Weak<Engine>, idle: Duration) {
    let period = (idle / 4).clamp(Duration::from_millis(500), Duration::from_secs(5));
    loop {
        tokio::time::sleep(period).await;
        let Some(e) = engine.upgrade() else { return };
        let r = tokio::task::spawn_blocking(move || e.retire_idle(idle)).await;
        if let Ok(Err(err)) = r {
            tracing::debug!(error = %err, "retiring idle flows");
        }
    }
}

#[expect(
    unsafe_code,
    reason = "AsyncFd::register's contract is about the fd's lifetime"
)]
async fn event_loop(engine: std::sync::Weak<Engine>, ring: aya::maps::RingBuf<aya::maps::MapData>) {
    // SAFETY: the ring buffer owns its map fd, which stays open and the same for as long as
    // the AsyncFd owns the ring buffer.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE)
    };
    let mut fd = match registered {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the flow event ring buffer");
            return;
        }
    };
    loop {
        let Ok(mut guard) = fd.readable_mut().await else {
            return;
        };
        let Some(e) = engine.upgrade() else { return };
        let ring = guard.get_inner_mut();
        while let Some(item) = ring.next() {
            e.record_event(&item);
        }
        guard.clear_ready();
    }
}

/// Maps ifindex → who it is, from OVSDB.
fn port_infos(
    ovsdb: &Option<Arc<Handle>>,
    attributor: &Attributor,
    attached: &BTreeMap<String, u32>,
) -> HashMap<u32, PortInfo> {
    let mut out: HashMap<u32, PortInfo> = attached
        .iter()
        .map(|(name, &ifindex)| {
            (
                ifindex,
                PortInfo {
                    port: name.clone(),
                    ..PortInfo::default()
                },
            )
        })
        .collect();
    if let Some(h) = ovsdb {
        let state = h.state();
        for v in state.replica.interfaces() {
            if let Some(&ifindex) = attached.get(&v.iface.name)
                && let Some(info) = out.get_mut(&ifindex)
            {
                info.bridge = v.bridge.to_owned();
                info.port = v.port.to_owned();
                info.ofport = v.iface.ofport.and_then(|o| u16::try_from(o).ok());
                info.pod = attributor
                    .attribute(&v.iface.external_ids, v.port_external_ids)
                    .pod;
            }
        }
    }
    out
}

/// Names and attributes the drop keys: the namespace and device of each, the OVS port it is
/// (or is the veth peer of) and that port's pod. Keys of namespaces and devices that are gone
/// are deleted from the map.
fn attribute_drops(
    read: &mut MapSnapshot,
    ovsdb: &Option<Arc<Handle>>,
    attributor: &Attributor,
    netns: &std::sync::Mutex<drops::Netns>,
    maps: &dyn Maps,
    max_series: usize,
) -> (Vec<drops::DropRow>, u64) {
    if read.drops.is_empty() {
        return (Vec::new(), 0);
    }
    // Every OVS netdev of this namespace, attached or not (drops-only runs attach nothing).
    let mut names = read.attached.clone();
    if let Some(h) = ovsdb {
        names.extend(wanted(&h.state().replica));
    }
    let by_index: HashMap<u32, &String> = names.iter().map(|(n, i)| (*i, n)).collect();
    let infos = port_infos(ovsdb, attributor, &names);
    let keys: HashSet<(u32, u32)> = read
        .drops
        .iter()
        .map(|(k, _)| (k.netns, k.ifindex))
        .collect();
    let exists =
        |ifindex: u32| by_index.contains_key(&ifindex) || engine::ifname_of(ifindex).is_some();
    let places = match netns.lock() {
        Ok(mut n) => n.places(&keys, &exists),
        Err(_) => return (Vec::new(), 0),
    };
    let mut gone = Vec::new();
    let mut items = Vec::with_capacity(read.drops.len());
    for (k, count) in read.drops.drain(..) {
        let host = |ifindex: u32| infos.get(&ifindex).cloned().unwrap_or_default();
        let (device, info) = match places.get(&(k.netns, k.ifindex)) {
            Some(drops::Place::Gone) => {
                gone.push(k);
                continue;
            }
            Some(drops::Place::Own { ifindex }) => {
                let device = match by_index.get(ifindex) {
                    Some(n) => (*n).clone(),
                    None if *ifindex == 0 => String::new(),
                    None => engine::ifname_of(*ifindex).unwrap_or_default(),
                };
                (device, host(*ifindex))
            }
            Some(drops::Place::Other {
                device,
                host_ifindex,
            }) => (device.clone(), host_ifindex.map(host).unwrap_or_default()),
            Some(drops::Place::Unknown) | None => (String::new(), PortInfo::default()),
        };
        let reason = read
            .drop_reasons
            .get(&k.reason)
            .cloned()
            .unwrap_or_else(|| drops::Reason {
                subsystem: "unknown".to_owned(),
                name: k.reason.to_string(),
            });
        items.push(drops::Attributed {
            reason,
            device,
            info,
            protocol: drops::protocol_label(k.protocol, k.ip_proto),
            direction: k.direction,
            count,
        });
    }
    if !gone.is_empty() {
        maps.forget_drops(&gone);
    }
    drops::fold(items, max_series)
}

impl Source for EbpfSource {
    type Snapshot = Snapshot;
    type Error = EbpfError;

    fn name(&self) -> &'static str {
        "ebpf"
    }

    async fn fetch(&self, req: &ScrapeRequest) -> Result<Snapshot, EbpfError> {
        if let Some(reason) = self.maps.unavailable() {
            return Err(EbpfError::Unavailable { reason });
        }
        let maps = self.maps.clone();
        let ovsdb = self.ovsdb.clone();
        let attributor = self.attributor.clone();
        let (read_flows, max_series) = (self.flows, self.max_flow_series);
        let (netns, max_drop_series) = (self.netns.clone(), self.max_drop_series);
        let mut snap = tokio::task::spawn_blocking(move || -> Result<Snapshot, EbpfError> {
            let mut read = maps.read(read_flows)?;
            let drop_rows = attribute_drops(
                &mut read,
                &ovsdb,
                &attributor,
                &netns,
                maps.as_ref(),
                max_drop_series,
            );
            let attached = &read.attached;
            let infos = port_infos(&ovsdb, &attributor, attached);
            let traffic = &read.traffic;
            let mut snap = Snapshot {
                mode: read.mode,
                ..Snapshot::default()
            };
            for (name, ifindex) in attached {
                let info = infos.get(ifindex).cloned().unwrap_or_else(|| PortInfo {
                    port: name.clone(),
                    ..PortInfo::default()
                });
                let t = traffic.get(ifindex).copied().unwrap_or_default();
                snap.ports.insert(*ifindex, (info, t));
            }
            let mut flows = read.flows;
            flows.retain(|(k, _)| snap.ports.contains_key(&k.ifindex));
            for (k, _) in &flows {
                *snap.active.entry(k.ifindex).or_default() += 1;
            }
            // The most bytes first; ties broken by the key, so the choice is stable.
            flows.sort_by(|(ka, a), (kb, b)| {
                b.bytes
                    .cmp(&a.bytes)
                    .then_with(|| bytemuck::bytes_of(ka).cmp(bytemuck::bytes_of(kb)))
            });
            let keep = if max_series == 0 {
                flows.len()
            } else {
                max_series.min(flows.len())
            };
            for (k, c) in flows.drain(keep..) {
                let e = snap.folded.entry((k.ifindex, k.direction)).or_default();
                e.packets += c.packets;
                e.bytes += c.bytes;
                snap.folded_live += 1;
            }
            for ((ifindex, dir), c) in read.retired {
                if snap.ports.contains_key(&ifindex) {
                    let e = snap.folded.entry((ifindex, dir)).or_default();
                    e.packets += c.packets;
                    e.bytes += c.bytes;
                }
            }
            snap.flows = flows
                .into_iter()
                .map(|(key, counters)| FlowRow {
                    key,
                    counters,
                    cookie: None,
                })
                .collect();
            snap.events = read
                .events
                .iter()
                .filter(|(i, _)| snap.ports.contains_key(i))
                .map(|(i, e)| (*i, *e))
                .collect();
            snap.map_full = read.map_full;
            let kprobes = read.kprobes;
            snap.vports = read.vports.into_iter().collect();
            snap.ipvs = read.ipvs;
            (snap.drops, snap.drops_folded) = drop_rows;
            snap.hooks = vec![
                ("tc", snap.mode.is_some() || !attached.is_empty()),
                ("kfree_skb", read.drop_hook.is_some()),
                (
                    "ovs_vport_receive",
                    kprobes.iter().any(|k| k == "ovs_vport_receive"),
                ),
                (
                    "ovs_dp_upcall",
                    kprobes.iter().any(|k| k == "ovs_dp_upcall"),
                ),
                (
                    "ip_vs_conn_new",
                    kprobes.iter().any(|k| k == "ip_vs_conn_new"),
                ),
            ];
            Ok(snap)
        })
        .await
        .map_err(|e| EbpfError::Kernel {
            what: "reading maps".to_owned(),
            reason: e.to_string(),
        })??;
        // The OpenFlow rule that decides each flow.
        if !snap.flows.is_empty() {
            self.classifier.assign(&mut snap, req.deadline).await;
        }
        Ok(snap)
    }

    fn encode(&self, snapshot: &Snapshot, w: &mut Writer) {
        encode::encode(snapshot, w);
    }

    fn status(&self, _snapshot: &Snapshot) -> Status {
        Status::Ok
    }
}
