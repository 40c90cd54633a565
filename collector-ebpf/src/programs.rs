//! The programs. TC (TCX or clsact) on every OVS vport netdev, both directions:
//! - `port_ingress`/`port_egress`: per-port packets and bytes (per-CPU hash, no atomics);
//! - `flow_ingress`/`flow_egress`: the same, plus per-flow counters keyed by 5-tuple, port and
//!   direction in an LRU per-CPU hash, and a ring-buffer event when a flow starts or a TCP
//!   segment carries FIN or RST.
//!
//! Kprobes on the kernel datapath, where the kernel has them:
//! - `ovs_vport_receive`: packets each vport hands to the kernel datapath;
//! - `ovs_dp_upcall`: packets sent up to ovs-vswitchd (the slow path), per input vport;
//! - `ip_vs_conn_new`: new IPVS connections per service and real server.
//!
//! The `kfree_skb` tracepoint (`tp_btf`, or the raw tracepoint where BTF tracing is not
//! allowed; the daemon probes): drops per (reason, netns, ifindex, protocol, direction),
//! skipping packets that were consumed, not dropped.
//!
//! Field offsets inside kernel structures come from the `OFFSETS` map, which the daemon fills
//! from the running kernel's BTF: one object fits every kernel, no CO-RE toolchain needed.
//!
//! Every program returns "continue" (TC_ACT_UNSPEC, which is TCX_NEXT under TCX): counting
//! never changes what happens to a packet.

use aya_ebpf::bindings::TC_ACT_UNSPEC;
use aya_ebpf::helpers::{bpf_ktime_get_coarse_ns, bpf_probe_read_kernel};
use aya_ebpf::macros::{btf_tracepoint, classifier, kprobe, map, raw_tracepoint};
use aya_ebpf::maps::{Array, LruPerCpuHashMap, PerCpuArray, PerCpuHashMap, RingBuf};
use aya_ebpf::programs::{BtfTracePointContext, ProbeContext, RawTracePointContext, TcContext};
use collector_common::{
    Config, Counters, DIR_EGRESS, DIR_INGRESS, DropConfig, DropKey, EVENT_FLOW_END,
    EVENT_FLOW_START, FAMILY_IPV4, FAMILY_IPV6, FlowCounters, FlowEvent, FlowKey, IpvsConnKey,
    KernelOffsets, MAP_FULL_DROPS, MAP_FULL_EVENTS, MAP_FULL_FLOWS, MAP_FULL_IPVS_CONNS,
    MAP_FULL_PORTS, MAP_FULL_SLOTS, MAP_FULL_VPORTS, PortKey, VportCounters,
};
use core::mem::size_of;

/// Settings from the daemon (one entry).
#[map]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// Per-port counters, per CPU; the daemon sets the size (2 × `--ebpf.max-ports`: both
/// directions) at load time.
#[map]
static PORTS: PerCpuHashMap<PortKey, Counters> = PerCpuHashMap::with_max_entries(8192, 0);

/// Per-flow counters, per CPU; the daemon sets the size (`--ebpf.max-flows`) at load time.
#[map]
static FLOWS: LruPerCpuHashMap<FlowKey, FlowCounters> =
    LruPerCpuHashMap::with_max_entries(65536, 0);

/// Flow start/end events.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Kernel structure offsets, from BTF (one entry).
#[map]
static OFFSETS: Array<KernelOffsets> = Array::with_max_entries(1, 0);

/// Kernel datapath counters per vport ifindex (size: `--ebpf.max-ports`).
#[map]
static VPORTS: PerCpuHashMap<u32, VportCounters> = PerCpuHashMap::with_max_entries(8192, 0);

/// New IPVS connections per (service, real server). LRU (size: `--ebpf.max-ipvs-conns`):
/// services and real servers that went away are never deleted by anyone, so the pairs not
/// seen for the longest make room for new ones instead of filling the map for good.
#[map]
static IPVS_CONNS: LruPerCpuHashMap<IpvsConnKey, u64> =
    LruPerCpuHashMap::with_max_entries(65536, 0);

/// What the drop program needs from the kernel's BTF (one entry).
#[map]
static DROP_CONFIG: Array<DropConfig> = Array::with_max_entries(1, 0);

/// Drops, per CPU; the daemon sets the size (`--ebpf.max-drop-entries`) and deletes the
/// entries of network namespaces and devices that are gone.
#[map]
static DROPS: PerCpuHashMap<DropKey, u64> = PerCpuHashMap::with_max_entries(16384, 0);

/// Failed inserts per map (slots `MAP_FULL_*`), per CPU.
#[map]
static MAP_FULL: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAP_FULL_SLOTS, 0);

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_SCTP: u8 = 132;

/// Counts an insert into the map of `slot` that the kernel refused.
#[inline(always)]
fn map_full(slot: u32) {
    if let Some(c) = MAP_FULL.get_ptr_mut(slot) {
        // SAFETY: per-CPU value, nobody else writes it while we run.
        unsafe { *c += 1 };
    }
}

#[inline(always)]
fn count_port(ctx: &TcContext, direction: u8) {
    // SAFETY: the context pointer is valid for the program's run.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let key = PortKey {
        ifindex,
        direction,
        _pad: [0; 3],
    };
    let len = u64::from(ctx.len());
    match PORTS.get_ptr_mut(&key) {
        // SAFETY: per-CPU value, nobody else writes it while we run.
        Some(c) => unsafe {
            (*c).packets += 1;
            (*c).bytes += len;
        },
        None => {
            let v = Counters {
                packets: 1,
                bytes: len,
            };
            if PORTS.insert(&key, &v, 0).is_err() {
                map_full(MAP_FULL_PORTS);
            }
        }
    }
}

#[classifier]
pub fn port_ingress(ctx: TcContext) -> i32 {
    count_port(&ctx, DIR_INGRESS);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn port_egress(ctx: TcContext) -> i32 {
    count_port(&ctx, DIR_EGRESS);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn flow_ingress(ctx: TcContext) -> i32 {
    count_port(&ctx, DIR_INGRESS);
    count_flow(&ctx, DIR_INGRESS);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn flow_egress(ctx: TcContext) -> i32 {
    count_port(&ctx, DIR_EGRESS);
    count_flow(&ctx, DIR_EGRESS);
    TC_ACT_UNSPEC
}

/// A bounds-checked pointer into the packet (direct packet access).
#[inline(always)]
fn ptr_at<T>(ctx: &TcContext, offset: usize) -> Option<*const T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *const T)
}

#[inline(always)]
fn be16(ctx: &TcContext, offset: usize) -> Option<u16> {
    // SAFETY: ptr_at checked the bounds; packet data may be unaligned.
    ptr_at::<[u8; 2]>(ctx, offset).map(|p| u16::from_be_bytes(unsafe { *p }))
}

#[inline(always)]
fn count_flow(ctx: &TcContext, direction: u8) {
    let Some(cfg) = CONFIG.get(0) else { return };
    if cfg.flows == 0 {
        return;
    }
    let mut key = FlowKey {
        direction,
        // SAFETY: as above.
        ifindex: unsafe { (*ctx.skb.skb).ifindex },
        ..FlowKey::default()
    };
    let Some(mut ethertype) = be16(ctx, 12) else {
        return;
    };
    let mut off = ETH_HLEN;
    // A tag the NIC or veth moved into the skb comes first; then up to two in the packet.
    // SAFETY: as above.
    let (present, tci) = unsafe { ((*ctx.skb.skb).vlan_present, (*ctx.skb.skb).vlan_tci) };
    if present != 0 {
        key.vlan = (tci & 0x0fff) as u16;
    }
    for _ in 0..2 {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        let Some(tag) = be16(ctx, off) else { return };
        if key.vlan == 0 {
            key.vlan = tag & 0x0fff;
        }
        let Some(inner) = be16(ctx, off + 2) else {
            return;
        };
        ethertype = inner;
        off += 4;
    }
    let mut tcp_end = false;
    let l4 = match ethertype {
        ETH_P_IP => {
            let Some(ip) = ptr_at::<[u8; 20]>(ctx, off) else {
                return;
            };
            // SAFETY: bounds checked by ptr_at.
            let ip = unsafe { *ip };
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            if ihl < 20 {
                return;
            }
            key.family = FAMILY_IPV4;
            key.protocol = ip[9];
            key.src[..4].copy_from_slice(&ip[12..16]);
            key.dst[..4].copy_from_slice(&ip[16..20]);
            // Later fragments carry no L4 header.
            let frag = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
            if frag != 0 { None } else { Some(off + ihl) }
        }
        ETH_P_IPV6 => {
            let Some(ip) = ptr_at::<[u8; 40]>(ctx, off) else {
                return;
            };
            // SAFETY: bounds checked by ptr_at.
            let ip = unsafe { *ip };
            key.family = FAMILY_IPV6;
            key.protocol = ip[6];
            key.src.copy_from_slice(&ip[8..24]);
            key.dst.copy_from_slice(&ip[24..40]);
            // Extension headers are not walked: ports stay 0 behind them.
            Some(off + 40)
        }
        _ => return,
    };
    if let Some(l4) = l4 {
        match key.protocol {
            IPPROTO_TCP => {
                if let (Some(s), Some(d), Some(flags)) =
                    (be16(ctx, l4), be16(ctx, l4 + 2), be16(ctx, l4 + 12))
                {
                    key.src_port = s;
                    key.dst_port = d;
                    // FIN (0x01) or RST (0x04).
                    tcp_end = flags & 0x0005 != 0;
                }
            }
            IPPROTO_UDP | IPPROTO_SCTP => {
                if let (Some(s), Some(d)) = (be16(ctx, l4), be16(ctx, l4 + 2)) {
                    key.src_port = s;
                    key.dst_port = d;
                }
            }
            IPPROTO_ICMP | IPPROTO_ICMPV6 => {
                if let Some(tc) = ptr_at::<[u8; 2]>(ctx, l4) {
                    // SAFETY: bounds checked by ptr_at.
                    let tc = unsafe { *tc };
                    key.src_port = u16::from(tc[0]);
                    key.dst_port = u16::from(tc[1]);
                }
            }
            _ => {}
        }
    }

    let len = u64::from(ctx.len());
    // SAFETY: a plain helper call.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    match FLOWS.get_ptr_mut(&key) {
        // SAFETY: per-CPU value.
        Some(c) => unsafe {
            (*c).packets += 1;
            (*c).bytes += len;
            (*c).last_ns = now;
            if (*c).first_ns == 0 {
                (*c).first_ns = now;
            }
        },
        None => {
            let v = FlowCounters {
                packets: 1,
                bytes: len,
                first_ns: now,
                last_ns: now,
            };
            if FLOWS.insert(&key, &v, 0).is_err() {
                map_full(MAP_FULL_FLOWS);
            }
            event(cfg, &key, EVENT_FLOW_START, now);
        }
    }
    if tcp_end {
        event(cfg, &key, EVENT_FLOW_END, now);
    }
}

#[inline(always)]
fn event(cfg: &Config, key: &FlowKey, kind: u32, now: u64) {
    if cfg.events == 0 {
        return;
    }
    if let Some(mut e) = EVENTS.reserve::<FlowEvent>(0) {
        e.write(FlowEvent {
            key: *key,
            kind,
            _pad: 0,
            ts_ns: now,
        });
        e.submit(0);
    } else {
        map_full(MAP_FULL_EVENTS);
    }
}

/// Reads a `T` at `base + offset` in kernel memory.
#[inline(always)]
fn read_at<T>(base: u64, offset: u32) -> Option<T> {
    if base == 0 {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel faults safely on bad addresses.
    unsafe { bpf_probe_read_kernel((base + u64::from(offset)) as *const T).ok() }
}

/// The ifindex of `skb->dev`.
#[inline(always)]
fn skb_ifindex(offsets: &KernelOffsets, skb: u64) -> Option<u32> {
    let dev: u64 = read_at(skb, offsets.skb_dev)?;
    let ifindex: i32 = read_at(dev, offsets.dev_ifindex)?;
    u32::try_from(ifindex).ok()
}

#[inline(always)]
fn bump_vport(ifindex: u32, upcall: bool) {
    match VPORTS.get_ptr_mut(&ifindex) {
        // SAFETY: per-CPU value.
        Some(c) => unsafe {
            if upcall {
                (*c).upcalls += 1;
            } else {
                (*c).received += 1;
            }
        },
        None => {
            let v = VportCounters {
                received: u64::from(!upcall),
                upcalls: u64::from(upcall),
            };
            if VPORTS.insert(&ifindex, &v, 0).is_err() {
                map_full(MAP_FULL_VPORTS);
            }
        }
    }
}

/// `int ovs_vport_receive(struct vport *vport, struct sk_buff *skb, const struct ip_tunnel_info *)`
#[kprobe]
pub fn ovs_vport_receive(ctx: ProbeContext) -> u32 {
    let Some(offsets) = OFFSETS.get(0) else {
        return 0;
    };
    let Some(skb) = ctx.arg::<u64>(1) else {
        return 0;
    };
    if let Some(ifindex) = skb_ifindex(offsets, skb) {
        bump_vport(ifindex, false);
    }
    0
}

/// `int ovs_dp_upcall(struct datapath *, struct sk_buff *skb, const struct sw_flow_key *,
/// const struct dp_upcall_info *, uint32_t cutlen)`
#[kprobe]
pub fn ovs_dp_upcall(ctx: ProbeContext) -> u32 {
    let Some(offsets) = OFFSETS.get(0) else {
        return 0;
    };
    let Some(skb) = ctx.arg::<u64>(1) else {
        return 0;
    };
    if let Some(ifindex) = skb_ifindex(offsets, skb) {
        bump_vport(ifindex, true);
    }
    0
}

/// `struct ip_vs_conn *ip_vs_conn_new(const struct ip_vs_conn_param *p, int dest_af,
/// const union nf_inet_addr *daddr, __be16 dport, unsigned int flags, struct ip_vs_dest *dest,
/// __u32 fwmark)`
#[kprobe]
pub fn ip_vs_conn_new(ctx: ProbeContext) -> u32 {
    let Some(offsets) = OFFSETS.get(0) else {
        return 0;
    };
    if offsets.ipvs_valid == 0 {
        return 0;
    }
    let (Some(p), Some(dest_af), Some(daddr), Some(dport)) = (
        ctx.arg::<u64>(0),
        ctx.arg::<u64>(1),
        ctx.arg::<u64>(2),
        ctx.arg::<u64>(3),
    ) else {
        return 0;
    };
    let mut key = IpvsConnKey {
        dport: u16::from_be(dport as u16),
        dest_af: dest_af as u8,
        ..IpvsConnKey::default()
    };
    let vaddr_ptr: u64 = match read_at(p, offsets.ipvs_param_vaddr) {
        Some(v) => v,
        None => return 0,
    };
    if let Some(v) = read_at::<[u8; 16]>(vaddr_ptr, 0) {
        key.vaddr = v;
    }
    if let Some(d) = read_at::<[u8; 16]>(daddr, 0) {
        key.daddr = d;
    }
    if let Some(vport) = read_at::<u16>(p, offsets.ipvs_param_vport) {
        key.vport = u16::from_be(vport);
    }
    if let Some(proto) = read_at::<u16>(p, offsets.ipvs_param_protocol) {
        key.protocol = proto;
    }
    if let Some(af) = read_at::<u16>(p, offsets.ipvs_param_af) {
        key.af = af as u8;
    }
    match IPVS_CONNS.get_ptr_mut(&key) {
        // SAFETY: per-CPU value.
        Some(c) => unsafe { *c += 1 },
        None => {
            if IPVS_CONNS.insert(&key, &1u64, 0).is_err() {
                map_full(MAP_FULL_IPVS_CONNS);
            }
        }
    }
    0
}

/// Counts one drop: `skb` freed for `reason`.
#[inline(always)]
fn count_drop(skb: u64, reason: u32) {
    let Some(cfg) = DROP_CONFIG.get(0) else {
        return;
    };
    if cfg.enabled == 0 || reason == cfg.consumed || reason == cfg.not_dropped_yet {
        return;
    }
    let mut key = DropKey {
        reason,
        ..DropKey::default()
    };
    if let Some(dev) = read_at::<u64>(skb, cfg.skb_dev)
        && dev != 0
    {
        let ifindex = read_at::<i32>(dev, cfg.dev_ifindex).unwrap_or(0);
        key.ifindex = ifindex as u32;
        if let Some(net) = read_at::<u64>(dev, cfg.dev_nd_net) {
            key.netns = read_at::<u32>(net, cfg.net_ns_inum).unwrap_or(0);
        }
        let iif = read_at::<i32>(skb, cfg.skb_iif).unwrap_or(0);
        key.direction = if iif == ifindex && iif != 0 {
            DIR_INGRESS
        } else {
            DIR_EGRESS
        };
    }
    key.protocol = u16::from_be(read_at::<u16>(skb, cfg.skb_protocol).unwrap_or(0));
    let next_header_at = match key.protocol {
        ETH_P_IP => 9,
        ETH_P_IPV6 => 6,
        _ => 0,
    };
    if next_header_at != 0
        && let (Some(head), Some(nh)) = (
            read_at::<u64>(skb, cfg.skb_head),
            read_at::<u16>(skb, cfg.skb_network_header),
        )
        && nh != 0xffff
    {
        key.ip_proto = read_at::<u8>(head, u32::from(nh) + next_header_at).unwrap_or(0);
    }
    match DROPS.get_ptr_mut(&key) {
        // SAFETY: per-CPU value, nobody else writes it while we run.
        Some(c) => unsafe { *c += 1 },
        None => {
            if DROPS.insert(&key, &1u64, 0).is_err() {
                map_full(MAP_FULL_DROPS);
            }
        }
    }
}

/// `trace_kfree_skb(struct sk_buff *skb, void *location, enum skb_drop_reason reason, ...)`,
/// as a BTF-typed tracepoint.
#[btf_tracepoint(function = "kfree_skb")]
pub fn kfree_skb_btf(ctx: BtfTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    let reason: u64 = ctx.arg(2);
    count_drop(skb, reason as u32);
    0
}

/// The same, as a raw tracepoint (kernels or sandboxes where `tp_btf` cannot attach).
#[raw_tracepoint(tracepoint = "kfree_skb")]
pub fn kfree_skb_raw(ctx: RawTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    let reason: u64 = ctx.arg(2);
    count_drop(skb, reason as u32);
    0
}

/// Does nothing: the baseline for the per-packet cost measurements (TC invocation and the
/// kernel's own accounting).
#[classifier]
pub fn noop(_ctx: TcContext) -> i32 {
    TC_ACT_UNSPEC
}
