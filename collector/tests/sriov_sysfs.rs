//! SR-IOV discovery and the i40e sysfs fallback on a stored sysfs tree
//! (`fixtures/sriov/sys.tree`): two i40e PFs with VFs on NUMA nodes 0 and 1, one with the
//! `sriov/<vf>/stats` directory and one without; an mlx5 PF with no VFs and no NUMA node; a NIC
//! without SR-IOV and an NVMe drive with SR-IOV, both to be ignored.

use dataplane_collector::exposition::Writer;
use dataplane_collector::registry::{ScrapeRequest, Source, SourceError, Status};
use dataplane_collector::sources::sriov::netlink::{Link, VfInfo, VfParseError};
use dataplane_collector::sources::sriov::sysfs::{self, VfCounters};
use dataplane_collector::sources::sriov::{self, Config, StatsOrigin, VfStatsSource, tree};
use std::path::{Path, PathBuf};
use std::time::Duration;

const TREE: &str = include_str!("fixtures/sriov/sys.tree");

fn unpacked() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    tree::unpack(TREE, tmp.path()).unwrap_or_else(|e| panic!("{e}"));
    tmp
}

fn config(root: &Path, netlink: bool) -> Config {
    Config {
        sysclassnet: root.join("class/net"),
        sysbuspci: root.join("bus/pci/devices"),
        netlink,
        kubelet_socket: PathBuf::from("/nonexistent/kubelet.sock"),
        cpu_checkpoint: PathBuf::from("/nonexistent/cpu_manager_state"),
        kube_cgroup: PathBuf::from("/nonexistent/kubepods"),
        node_cpu_info: PathBuf::from("/nonexistent/node"),
    }
}

#[test]
fn discovers_network_pfs_with_vfs_numa_and_driver() {
    let tmp = unpacked();
    let pfs =
        sysfs::discover(&tmp.path().join("bus/pci/devices")).unwrap_or_else(|e| panic!("{e}"));
    let summary: Vec<_> = pfs
        .iter()
        .map(|p| {
            (
                p.pci_addr.as_str(),
                p.name.as_str(),
                p.numa_node.as_str(),
                p.driver.as_deref().unwrap_or(""),
                p.num_vfs,
                p.total_vfs,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("0000:3b:00.0", "ens785f0", "0", "i40e", Some(2), Some(64)),
            ("0000:af:00.0", "ens801f0", "1", "i40e", Some(2), Some(64)),
            (
                "0000:d8:00.0",
                "ens802f0np0",
                "",
                "mlx5_core",
                Some(0),
                Some(8)
            ),
        ]
    );
    let vfs = |i: usize| -> Vec<(u32, &str)> {
        pfs[i]
            .vfs
            .iter()
            .map(|v| (v.id, v.pci_addr.as_str()))
            .collect()
    };
    assert_eq!(vfs(0), [(0, "0000:3b:02.0"), (1, "0000:3b:02.1")]);
    assert_eq!(vfs(1), [(0, "0000:af:02.0"), (1, "0000:af:02.1")]);
    assert!(vfs(2).is_empty());
}

#[test]
fn i40e_stats_files_with_and_without_the_directory() {
    let tmp = unpacked();
    let net = tmp.path().join("class/net");
    let vf0 = sysfs::read_sysfs_stats(&net, "ens785f0", 0).unwrap_or_else(|| panic!("no stats"));
    assert_eq!(
        vf0,
        VfCounters {
            rx_packets: Some(1001),
            tx_packets: Some(2002),
            rx_bytes: Some(123_456_789),
            tx_bytes: Some(987_654_321),
            rx_broadcast: Some(6),
            rx_multicast: Some(8),
            tx_broadcast: Some(7),
            tx_multicast: Some(9),
            rx_dropped: Some(3),
            tx_dropped: Some(4),
            tx_errors: Some(5),
        }
    );
    // VF 1: rx_dropped is a symlink and tx_errors is not a number: both left out.
    let vf1 = sysfs::read_sysfs_stats(&net, "ens785f0", 1).unwrap_or_else(|| panic!("no stats"));
    assert_eq!(vf1.rx_dropped, None);
    assert_eq!(vf1.tx_errors, None);
    assert_eq!(vf1.rx_bytes, Some(11));
    // The other i40e PF has no sriov/ directory; a VF that does not exist has none either.
    assert_eq!(sysfs::read_sysfs_stats(&net, "ens801f0", 0), None);
    assert_eq!(sysfs::read_sysfs_stats(&net, "ens785f0", 7), None);
    assert_eq!(sysfs::read_sysfs_stats(&net, "", 0), None);
}

fn scrape_text(src: &VfStatsSource) -> (Status, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let req = ScrapeRequest::new(tokio::time::Instant::now() + Duration::from_secs(5));
    let snap = rt
        .block_on(src.fetch(&req))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut w = Writer::new();
    src.encode(&snap, &mut w);
    (src.status(&snap), w.into_string())
}

#[test]
fn sysfs_only_source_emits_i40e_counters_with_seed_labels() {
    let tmp = unpacked();
    let src = VfStatsSource::new(config(tmp.path(), false));
    let (status, text) = scrape_text(&src);
    assert_eq!(status, Status::Ok);
    for line in [
        "sriov_vf_tx_errors_total{pf=\"ens785f0\",vf=\"0\",pciAddr=\"0000:3b:02.0\",numa_node=\"0\"} 5\n",
        "sriov_vf_rx_bytes_total{pf=\"ens785f0\",vf=\"0\",pciAddr=\"0000:3b:02.0\",numa_node=\"0\"} 123456789\n",
        "sriov_vf_tx_packets_total{pf=\"ens785f0\",vf=\"1\",pciAddr=\"0000:3b:02.1\",numa_node=\"0\"} 2\n",
        "sriov_pf_vfs{pf=\"ens785f0\",pciAddr=\"0000:3b:00.0\",numa_node=\"0\"} 2\n",
        "sriov_pf_vfs{pf=\"ens801f0\",pciAddr=\"0000:af:00.0\",numa_node=\"1\"} 2\n",
        "sriov_pf_vfs{pf=\"ens802f0np0\",pciAddr=\"0000:d8:00.0\",numa_node=\"\"} 0\n",
        "sriov_pf_stats_source{pf=\"ens785f0\",pciAddr=\"0000:3b:00.0\",driver=\"i40e\",source=\"sysfs\"} 1\n",
        "sriov_pf_stats_source{pf=\"ens801f0\",pciAddr=\"0000:af:00.0\",driver=\"i40e\",source=\"none\"} 1\n",
        "# TYPE sriov_vf_rx_packets_total counter\n",
    ] {
        assert!(text.contains(line), "missing {line}in\n{text}");
    }
    // No counters for the PF without the stats directory, none for ignored devices.
    assert!(!text.contains("pciAddr=\"0000:af:02.0\""), "{text}");
    assert!(
        !text.contains("eno1") && !text.contains("0000:5e:00.0"),
        "{text}"
    );
    // VF 1's unreadable counters are absent, not zero.
    assert!(
        !text.contains("sriov_vf_tx_errors_total{pf=\"ens785f0\",vf=\"1\""),
        "{text}"
    );
}

#[test]
fn no_sriov_devices_is_unavailable() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let text = "f bus/pci/devices/0000:00:1f.6/class 0x020000\n";
    tree::unpack(text, tmp.path()).unwrap_or_else(|e| panic!("{e}"));
    let err = sriov::read_vfstats(&config(tmp.path(), false), Duration::from_secs(1)).err();
    assert!(matches!(&err, Some(e) if e.is_unavailable()), "{err:?}");
    let err = sriov::read_vfstats(
        &config(&tmp.path().join("nope"), false),
        Duration::from_secs(1),
    )
    .err();
    assert!(matches!(&err, Some(e) if e.is_unavailable()), "{err:?}");
}

fn counters(seed: u64) -> VfCounters {
    VfCounters {
        rx_packets: Some(seed),
        tx_packets: Some(seed + 1),
        rx_bytes: Some(seed + 2),
        tx_bytes: Some(seed + 3),
        rx_broadcast: Some(seed + 4),
        rx_multicast: Some(seed + 5),
        rx_dropped: Some(seed + 7),
        tx_dropped: Some(seed + 8),
        ..VfCounters::default()
    }
}

#[test]
fn netlink_first_then_sysfs_per_pf_and_malformed_links_reported() {
    let tmp = unpacked();
    let net = tmp.path().join("class/net");
    let pfs =
        sysfs::discover(&tmp.path().join("bus/pci/devices")).unwrap_or_else(|e| panic!("{e}"));
    let links = vec![
        // ens785f0: the driver lists its VFs but gives no IFLA_VF_STATS → sysfs.
        Ok(Link {
            index: 4,
            name: "ens785f0".into(),
            num_vf: Some(2),
            vfs: vec![VfInfo { id: 0, stats: None }, VfInfo { id: 1, stats: None }],
        }),
        // ens801f0: netlink counters for both VFs (it has no sysfs ones).
        Ok(Link {
            index: 6,
            name: "ens801f0".into(),
            num_vf: Some(2),
            vfs: vec![
                VfInfo {
                    id: 0,
                    stats: Some(counters(100)),
                },
                VfInfo {
                    id: 1,
                    stats: Some(counters(200)),
                },
            ],
        }),
        // ens802f0np0 (ifindex 8): a malformed message.
        Err((8, VfParseError::NoVfNumber)),
    ];
    let snap = sriov::assemble(pfs, Some(&links), &net);
    let origins: Vec<_> = snap
        .pfs
        .iter()
        .map(|p| (p.pf.name.as_str(), p.origin))
        .collect();
    assert_eq!(
        origins,
        [
            ("ens785f0", StatsOrigin::Sysfs),
            ("ens801f0", StatsOrigin::Netlink),
            ("ens802f0np0", StatsOrigin::None),
        ]
    );
    let ens801 = &snap.pfs[1];
    assert_eq!(ens801.vfs[1].0.pci_addr, "0000:af:02.1");
    assert_eq!(ens801.vfs[1].1, counters(200));
    assert_eq!(snap.problems.len(), 1, "{:?}", snap.problems);
    assert!(
        snap.problems[0].starts_with("ens802f0np0 (ifindex 8)"),
        "{:?}",
        snap.problems
    );
    let mut w = Writer::new();
    sriov::encode::encode_vfstats(&snap, &mut w);
    let text = w.into_string();
    assert!(text.contains(
        "sriov_vf_rx_multicast_total{pf=\"ens801f0\",vf=\"1\",pciAddr=\"0000:af:02.1\",numa_node=\"1\"} 205\n"
    ), "{text}");
    assert!(text.contains("source=\"netlink\""), "{text}");
}
