//! Data sources. Each has the same shape: `fetch` (I/O) → typed snapshot → `encode`, and each
//! folder declares its source in a [`build::Descriptor`] (name, default, flags, HTTP routes,
//! constructor). Adding a source is its folder and one line in [`ALL`].

pub mod build;
pub mod conntrack;
pub mod datapath;
pub mod ebpf;
pub mod ipvs;
pub mod openflow;
pub mod ovsdb;
pub mod ovsprocess;
pub mod sriov;
pub mod vswitchd;

/// Every source this build knows, in the order they are encoded.
pub const ALL: &[build::Descriptor] = &[
    openflow::flags::DESCRIPTOR,
    ovsdb::flags::DESCRIPTOR,
    ebpf::flags::DESCRIPTOR,
    ipvs::flags::DESCRIPTOR,
    sriov::flags::VFSTATS,
    sriov::flags::KUBEPODDEVICE,
    sriov::flags::KUBEPODCPU,
    datapath::flags::DESCRIPTOR,
    vswitchd::flags::DESCRIPTOR,
    ovsprocess::flags::DESCRIPTOR,
    conntrack::flags::DESCRIPTOR,
];
