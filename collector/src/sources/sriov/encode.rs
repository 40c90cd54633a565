//! Metrics of the SR-IOV sources. `docs/sriov.md` maps them to the SR-IOV Network Metrics
//! Exporter's names: ours are the seed's with `_total` on counters, and the same labels
//! (`pf`, `vf`, `pciAddr`, `numa_node`; `pciAddr`, `dev_type`, `pod`, `namespace`, `container`),
//! so the seed's PromQL join works with the new names.

use super::cpu::CpuSnapshot;
use super::podresources::DeviceSnapshot;
use super::sysfs::VfCounters;
use super::{StatsOrigin, VfStatsSnapshot};
use crate::exposition::{MetricType, Writer};

type Counter = (&'static str, &'static str, fn(&VfCounters) -> Option<u64>);

/// Every VF counter: name, help, field.
pub const VF_COUNTERS: &[Counter] = &[
    (
        "sriov_vf_rx_bytes_total",
        "Bytes received by the virtual function.",
        |c| c.rx_bytes,
    ),
    (
        "sriov_vf_tx_bytes_total",
        "Bytes transmitted by the virtual function.",
        |c| c.tx_bytes,
    ),
    (
        "sriov_vf_rx_packets_total",
        "Packets received by the virtual function.",
        |c| c.rx_packets,
    ),
    (
        "sriov_vf_tx_packets_total",
        "Packets transmitted by the virtual function.",
        |c| c.tx_packets,
    ),
    (
        "sriov_vf_rx_broadcast_total",
        "Broadcast packets received by the virtual function.",
        |c| c.rx_broadcast,
    ),
    (
        "sriov_vf_rx_multicast_total",
        "Multicast packets received by the virtual function.",
        |c| c.rx_multicast,
    ),
    (
        "sriov_vf_tx_broadcast_total",
        "Broadcast packets transmitted by the virtual function (i40e sysfs only).",
        |c| c.tx_broadcast,
    ),
    (
        "sriov_vf_tx_multicast_total",
        "Multicast packets transmitted by the virtual function (i40e sysfs only).",
        |c| c.tx_multicast,
    ),
    (
        "sriov_vf_rx_dropped_total",
        "Packets dropped on receipt by the virtual function.",
        |c| c.rx_dropped,
    ),
    (
        "sriov_vf_tx_dropped_total",
        "Packets dropped on transmit by the virtual function.",
        |c| c.tx_dropped,
    ),
    (
        "sriov_vf_tx_errors_total",
        "Transmit errors of the virtual function (i40e sysfs only).",
        |c| c.tx_errors,
    ),
];

pub fn encode_vfstats(s: &VfStatsSnapshot, w: &mut Writer) {
    w.family(
        "sriov_pf_vfs",
        "Virtual functions enabled on the SR-IOV physical function (sriov_numvfs).",
        MetricType::Gauge,
    );
    for p in &s.pfs {
        if let Some(n) = p.pf.num_vfs {
            w.sample("sriov_pf_vfs")
                .label("pf", &p.pf.name)
                .label("pciAddr", &p.pf.pci_addr)
                .label("numa_node", &p.pf.numa_node)
                .value_u64(n);
        }
    }
    w.family(
        "sriov_pf_vfs_max",
        "Virtual functions the SR-IOV physical function supports (sriov_totalvfs).",
        MetricType::Gauge,
    );
    for p in &s.pfs {
        if let Some(n) = p.pf.total_vfs {
            w.sample("sriov_pf_vfs_max")
                .label("pf", &p.pf.name)
                .label("pciAddr", &p.pf.pci_addr)
                .label("numa_node", &p.pf.numa_node)
                .value_u64(n);
        }
    }
    w.family(
        "sriov_pf_stats_source",
        "Where the VF counters of the physical function came from in this scrape (netlink, sysfs or none), with its driver; always 1.",
        MetricType::Gauge,
    );
    for p in &s.pfs {
        let source = match p.origin {
            StatsOrigin::Netlink => "netlink",
            StatsOrigin::Sysfs => "sysfs",
            StatsOrigin::None => "none",
        };
        w.sample("sriov_pf_stats_source")
            .label("pf", &p.pf.name)
            .label("pciAddr", &p.pf.pci_addr)
            .label("driver", p.pf.driver.as_deref().unwrap_or_default())
            .label("source", source)
            .value_u64(1);
    }
    for (name, help, get) in VF_COUNTERS {
        if !s
            .pfs
            .iter()
            .flat_map(|p| &p.vfs)
            .any(|(_, c)| get(c).is_some())
        {
            continue;
        }
        w.family(name, help, MetricType::Counter);
        for p in &s.pfs {
            for (vf, c) in &p.vfs {
                if let Some(v) = get(c) {
                    w.sample(name)
                        .label("pf", &p.pf.name)
                        .label_u64("vf", u64::from(vf.id))
                        .label("pciAddr", &vf.pci_addr)
                        .label("numa_node", &p.pf.numa_node)
                        .value_u64(v);
                }
            }
        }
    }
}

pub fn encode_devices(s: &DeviceSnapshot, w: &mut Writer) {
    w.family(
        "sriov_kubepoddevice",
        "A PCI device (SR-IOV VF) the kubelet assigned to a pod's container; always 1. Join on pciAddr.",
        MetricType::Gauge,
    );
    for d in &s.assigned {
        w.sample("sriov_kubepoddevice")
            .label("pciAddr", &d.pci_addr)
            .label("dev_type", &d.resource)
            .label("pod", &d.pod)
            .label("namespace", &d.namespace)
            .label("container", &d.container)
            .value_u64(1);
    }
    if let Some(alloc) = &s.allocatable {
        w.family(
            "sriov_kubelet_allocatable_device",
            "A PCI device (SR-IOV VF) the kubelet can assign to pods (GetAllocatableResources); always 1.",
            MetricType::Gauge,
        );
        for d in alloc {
            w.sample("sriov_kubelet_allocatable_device")
                .label("pciAddr", &d.pci_addr)
                .label("dev_type", &d.resource)
                .label("numa_node", &d.numa_node)
                .value_u64(1);
        }
    }
}

pub fn encode_cpus(s: &CpuSnapshot, w: &mut Writer) {
    w.family(
        "sriov_cpu_info",
        "A CPU of the node and its NUMA node; always 1.",
        MetricType::Gauge,
    );
    for (cpu, numa) in &s.cpus {
        w.sample("sriov_cpu_info")
            .label("cpu", &format!("cpu{cpu}"))
            .label("numa_node", numa)
            .value_u64(1);
    }
    w.family(
        "sriov_kubepodcpu",
        "A CPU a container of a Guaranteed pod owns exclusively (CPU manager static policy); always 1.",
        MetricType::Gauge,
    );
    for l in &s.links {
        w.sample("sriov_kubepodcpu")
            .label_u64("cpu_id", u64::from(l.cpu))
            .label(
                "numa_node",
                s.cpus.get(&l.cpu).map(String::as_str).unwrap_or_default(),
            )
            .label("uid", &l.pod_uid)
            .label("container_id", &l.container_id)
            .value_u64(1);
    }
}
