//! Types shared by the eBPF programs (`collector-ebpf`, kernel side) and the daemon (user side):
//! map keys and values, ring-buffer events and configuration. Every type is `#[repr(C)]` with
//! explicit padding fields (no implicit padding: the verifier and `bytemuck::Pod` both care), and
//! `Pod` on both sides; the daemon's `aya::Pod` impls come with the `user` feature.

#![no_std]

use bytemuck::{Pod, Zeroable};

/// Traffic direction, as seen from the switch port: `INGRESS` is what the port receives (a
/// pod's egress traffic enters the switch here).
pub const DIR_INGRESS: u8 = 0;
pub const DIR_EGRESS: u8 = 1;

/// Per-port counters key: the netdev's ifindex and the direction.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct PortKey {
    pub ifindex: u32,
    pub direction: u8,
    pub _pad: [u8; 3],
}

/// Packets and bytes (bytes as the netdev counts them: from the Ethernet header).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
}

/// Address family of a flow key.
pub const FAMILY_IPV4: u8 = 4;
pub const FAMILY_IPV6: u8 = 6;

/// A 5-tuple on a port, in a direction. IPv4 addresses occupy the first 4 bytes of `src`/`dst`
/// (the rest zero); ports are in host byte order; ICMP puts type and code in `src_port` and
/// `dst_port`; `vlan` is the outermost VLAN ID (0 for untagged).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct FlowKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
    pub ifindex: u32,
    pub vlan: u16,
    pub protocol: u8,
    pub family: u8,
    pub direction: u8,
    pub _pad: [u8; 3],
}

/// A flow's counters (per CPU in the map; the daemon sums them).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct FlowCounters {
    pub packets: u64,
    pub bytes: u64,
    /// `bpf_ktime_get_ns()` of the first and last packet seen on this CPU.
    pub first_ns: u64,
    pub last_ns: u64,
}

/// Ring-buffer event kinds.
pub const EVENT_FLOW_START: u32 = 1;
/// A TCP segment with FIN or RST: the flow is ending.
pub const EVENT_FLOW_END: u32 = 2;

/// A flow event pushed to the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct FlowEvent {
    pub key: FlowKey,
    pub kind: u32,
    pub _pad: u32,
    pub ts_ns: u64,
}

/// Settings the daemon writes into the `CONFIG` array before traffic is counted.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Config {
    /// 1 to keep per-flow counters (else per-port only).
    pub flows: u32,
    /// 1 to push flow start/end events.
    pub events: u32,
}

/// Per-vport counters of the kernel datapath hooks (kprobes on `ovs_vport_receive` and
/// `ovs_dp_upcall`), keyed by the vport's netdev ifindex.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct VportCounters {
    pub received: u64,
    pub upcalls: u64,
}

/// Field offsets the kprobe programs need, read by the daemon from the running kernel's BTF
/// (`/sys/kernel/btf/vmlinux` and the modules' BTF), so one object fits every kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct KernelOffsets {
    /// `sk_buff.dev`, `net_device.ifindex`, `sk_buff.len`.
    pub skb_dev: u32,
    pub dev_ifindex: u32,
    pub skb_len: u32,
    /// `ip_vs_conn_param.vaddr`, `.vport`, `.protocol`, `.af`.
    pub ipvs_param_vaddr: u32,
    pub ipvs_param_vport: u32,
    pub ipvs_param_protocol: u32,
    pub ipvs_param_af: u32,
    /// 1 when the IPVS offsets are valid.
    pub ipvs_valid: u32,
}

/// A new IPVS connection's service and real server.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct IpvsConnKey {
    pub vaddr: [u8; 16],
    pub daddr: [u8; 16],
    /// Host byte order.
    pub vport: u16,
    pub dport: u16,
    pub protocol: u16,
    /// AF_INET (2) or AF_INET6 (10), of the service and of the destination.
    pub af: u8,
    pub dest_af: u8,
}

/// A packet the kernel freed without delivering it (the `kfree_skb` tracepoint): why, where
/// and what. `netns` is the inode number of `skb->dev`'s network namespace and `ifindex` the
/// device's index there (both 0 when the packet had no device); `protocol` is `skb->protocol`
/// in host byte order (an `ETH_P_*`), `ip_proto` the IPv4/IPv6 next header (0 for other
/// protocols); `direction` is `DIR_INGRESS` when the device is the one the packet arrived on
/// (`skb->skb_iif`), else `DIR_EGRESS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct DropKey {
    /// `enum skb_drop_reason`; a subsystem's reasons carry its number in the high 16 bits
    /// (`SKB_DROP_REASON_SUBSYS_SHIFT`).
    pub reason: u32,
    pub netns: u32,
    pub ifindex: u32,
    pub protocol: u16,
    pub ip_proto: u8,
    pub direction: u8,
}

/// `SKB_DROP_REASON_SUBSYS_SHIFT`: a drop reason's subsystem is `reason >> 16`.
pub const DROP_REASON_SUBSYS_SHIFT: u32 = 16;

/// What the drop program needs, read by the daemon from the running kernel's BTF: field
/// offsets (bytes) and the reason values that are not drops.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct DropConfig {
    /// `sk_buff.dev`, `.skb_iif`, `.protocol`, `.head`, `.network_header`.
    pub skb_dev: u32,
    pub skb_iif: u32,
    pub skb_protocol: u32,
    pub skb_head: u32,
    pub skb_network_header: u32,
    /// `net_device.ifindex`, `net_device.nd_net` (a `possible_net_t`: the `struct net *` is
    /// its first member), and `net.ns` + `ns_common.inum`.
    pub dev_ifindex: u32,
    pub dev_nd_net: u32,
    pub net_ns_inum: u32,
    /// `SKB_NOT_DROPPED_YET` and `SKB_CONSUMED`: freed packets that were not dropped.
    pub not_dropped_yet: u32,
    pub consumed: u32,
    /// 1 once the daemon has filled this in (the program counts nothing before).
    pub enabled: u32,
    pub _pad: u32,
}

/// Slots of the `MAP_FULL` per-CPU array of `u64` counters: one per map the programs insert
/// into (and the event ring buffer). A program whose insert fails (`-E2BIG` on a full hash map,
/// `-ENOMEM`, a full ring buffer) adds one to its map's slot; the daemon sums the CPUs and
/// exposes `dataplane_collector_ebpf_map_full_total{map}`.
pub const MAP_FULL_PORTS: u32 = 0;
pub const MAP_FULL_FLOWS: u32 = 1;
pub const MAP_FULL_VPORTS: u32 = 2;
pub const MAP_FULL_IPVS_CONNS: u32 = 3;
pub const MAP_FULL_EVENTS: u32 = 4;
pub const MAP_FULL_DROPS: u32 = 5;
/// Number of slots in `MAP_FULL`.
pub const MAP_FULL_SLOTS: u32 = 6;
/// The map each slot counts for, by index (the kernel's map names).
pub const MAP_FULL_NAMES: [&str; MAP_FULL_SLOTS as usize] =
    ["PORTS", "FLOWS", "VPORTS", "IPVS_CONNS", "EVENTS", "DROPS"];

#[cfg(feature = "user")]
#[expect(unsafe_code, reason = "aya::Pod is an unsafe marker trait")]
mod user {
    use super::*;
    // SAFETY (all): the types are `#[repr(C)]`, `Copy`, without implicit padding, and valid for
    // every bit pattern; `bytemuck::Pod` checks the same at compile time.
    unsafe impl aya::Pod for PortKey {}
    unsafe impl aya::Pod for Counters {}
    unsafe impl aya::Pod for FlowKey {}
    unsafe impl aya::Pod for FlowCounters {}
    unsafe impl aya::Pod for FlowEvent {}
    unsafe impl aya::Pod for Config {}
    unsafe impl aya::Pod for VportCounters {}
    unsafe impl aya::Pod for KernelOffsets {}
    unsafe impl aya::Pod for IpvsConnKey {}
    unsafe impl aya::Pod for DropKey {}
    unsafe impl aya::Pod for DropConfig {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_have_no_implicit_padding() {
        // bytemuck's derive already refuses padding; the sizes are part of the ABI.
        assert_eq!(size_of::<PortKey>(), 8);
        assert_eq!(size_of::<Counters>(), 16);
        assert_eq!(size_of::<FlowKey>(), 48);
        assert_eq!(size_of::<FlowCounters>(), 32);
        assert_eq!(size_of::<FlowEvent>(), 64);
        assert_eq!(size_of::<Config>(), 8);
        assert_eq!(size_of::<KernelOffsets>(), 32);
        assert_eq!(size_of::<IpvsConnKey>(), 40);
        assert_eq!(size_of::<DropKey>(), 16);
        assert_eq!(size_of::<DropConfig>(), 48);
    }

    #[test]
    fn map_full_slots_are_named_in_order() {
        assert_eq!(MAP_FULL_NAMES[MAP_FULL_PORTS as usize], "PORTS");
        assert_eq!(MAP_FULL_NAMES[MAP_FULL_FLOWS as usize], "FLOWS");
        assert_eq!(MAP_FULL_NAMES[MAP_FULL_VPORTS as usize], "VPORTS");
        assert_eq!(MAP_FULL_NAMES[MAP_FULL_IPVS_CONNS as usize], "IPVS_CONNS");
        assert_eq!(MAP_FULL_NAMES[MAP_FULL_EVENTS as usize], "EVENTS");
        assert_eq!(MAP_FULL_NAMES[MAP_FULL_DROPS as usize], "DROPS");
    }
}
